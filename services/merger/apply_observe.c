/* apply_observe: see apply_observe.h. */
#include "apply_observe.h"

#include <stddef.h>
#include <string.h>
#include <time.h>

const char *observe_kind(const Envelope *env, const char **source_id)
{
    const char *kind = NULL;
    *source_id = NULL;
    if (!env)
        return NULL;
    switch (env->payload_case) {
    case PB_PAYLOAD_PERSON_OBSERVED:
        if (env->person_observed) {
            kind = "person";
            if (env->person_observed->person)
                *source_id = env->person_observed->person->source_id;
        }
        break;
    case PB_PAYLOAD_DEVICE_OBSERVED:
        if (env->device_observed) {
            kind = "device";
            if (env->device_observed->device)
                *source_id = env->device_observed->device->device_id;
        }
        break;
    case PB_PAYLOAD_ORG_UNIT_OBSERVED:
        if (env->org_unit_observed) {
            kind = "org_unit";
            if (env->org_unit_observed->org_unit)
                *source_id = env->org_unit_observed->org_unit->org_unit_id;
        }
        break;
    default:
        break;
    }
    return kind;
}

const char *observe_date(const char *s, bool with_time)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s)
        return NULL;
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (!end)
        return NULL;
    if (!with_time)
        return *end == '\0' && tm.tm_year > 0 && tm.tm_year < 8000 ? s : NULL;
    if (*end != 'T' || !strptime(end + 1, "%H:%M:%S", &tm))
        return NULL;
    struct tm chk = tm;
    time_t tt = timegm(&chk);
    struct tm back;
    gmtime_r(&tt, &back);
    if (back.tm_mday != tm.tm_mday || tm.tm_year < 0 || tm.tm_year > 8000)
        return NULL;
    return s;
}
