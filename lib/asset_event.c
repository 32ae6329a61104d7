/* asset_event: see asset_event.h. */
#include "asset_event.h"

#include "kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LIFECYCLE_PREFIX "ASSET_LIFECYCLE_"

Panel__V1__AssetLifecycle asset_lifecycle_from_text(const char *text)
{
    const ProtobufCEnumDescriptor *d = &panel__v1__asset_lifecycle__descriptor;
    size_t plen = strlen(LIFECYCLE_PREFIX);
    if (!text || !*text)
        return PB_ASSET_LIFECYCLE_UNSPECIFIED;
    for (unsigned i = 0; i < d->n_values; i++)
        if (d->values[i].value != 0 && strncmp(d->values[i].name, LIFECYCLE_PREFIX, plen) == 0 &&
            strcasecmp(d->values[i].name + plen, text) == 0)
            return (Panel__V1__AssetLifecycle)d->values[i].value;
    return PB_ASSET_LIFECYCLE_UNSPECIFIED;
}

const char *asset_lifecycle_text(Panel__V1__AssetLifecycle lifecycle, char *out, size_t outlen)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&panel__v1__asset_lifecycle__descriptor, lifecycle);
    size_t plen = strlen(LIFECYCLE_PREFIX), o = 0;
    if (outlen == 0)
        return out;
    if (v && lifecycle != 0 && strncmp(v->name, LIFECYCLE_PREFIX, plen) == 0)
        for (const char *p = v->name + plen; *p && o + 1 < outlen; p++)
            out[o++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    out[o] = '\0';
    return out;
}

/* Google's ChromeOsDevice.status -> lifecycle. Google's own guidance: disable a device that
 * is lost or stolen; deprovision one that is no longer used, resold or sent for return. */
static const struct {
    const char *status, *lifecycle;
    bool blocks_checkout;
} status_map[] = {
    {"ACTIVE", "deployed", false},
    {"DELINQUENT", "deployed", false},
    {"PRE_PROVISIONED", "in_storage", false},
    {"SHIPPED", "in_storage", false},
    {"INACTIVE", "in_storage", false},
    {"RETURN_REQUESTED", "in_repair", false},
    {"RETURN_ARRIVED", "in_repair", false},
    {"DISABLED", "lost_stolen", true},
    {"DEPROVISIONED", "retired", true},
};

static int status_index(const char *google_status)
{
    for (size_t i = 0; google_status && i < sizeof status_map / sizeof *status_map; i++)
        if (strcasecmp(status_map[i].status, google_status) == 0)
            return (int)i;
    return -1;
}

const char *asset_status_lifecycle(const char *google_status)
{
    int i = status_index(google_status);
    return i < 0 ? NULL : status_map[i].lifecycle;
}

bool asset_status_blocks_checkout(const char *google_status)
{
    int i = status_index(google_status);
    return i >= 0 && status_map[i].blocks_checkout;
}

const char *asset_auto_update_expiry(const Panel__V1__Device *d, char out[11])
{
    const char *s = d ? d->auto_update_through : NULL;
    out[0] = '\0';
    if (s && strlen(s) == 10 && s[4] == '-' && s[7] == '-') {
        struct tm tm = {0};
        int y = 0, m = 0, day = 0;
        bool digits = true;
        for (int i = 0; i < 10; i++)
            if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
                digits = false;
        if (digits && sscanf(s, "%4d-%2d-%2d", &y, &m, &day) == 3 && y >= 1970 && m >= 1 &&
            m <= 12 && day >= 1 && day <= 31) {
            tm.tm_year = y - 1900;
            tm.tm_mon = m - 1;
            tm.tm_mday = day;
            time_t t = timegm(&tm);
            struct tm back;
            if (gmtime_r(&t, &back) && back.tm_mday == day && back.tm_mon == m - 1) {
                memcpy(out, s, 11);
                return out;
            }
        }
    }
    /* the deprecated field: years 1970 to 9999 only (a wild value is left out, not clamped) */
    if (d && d->has_auto_update_expiration_ms && d->auto_update_expiration_ms >= 0 &&
        d->auto_update_expiration_ms < 253402300800000LL) {
        time_t t = (time_t)(d->auto_update_expiration_ms / 1000);
        struct tm tm;
        if (gmtime_r(&t, &tm) && strftime(out, 11, "%Y-%m-%d", &tm) == 10)
            return out;
        out[0] = '\0';
    }
    return NULL;
}

int asset_event_add(struct outbox_batch *batch, const char *tenant, const char *run_id,
                    const json_t *asset, Panel__V1__AssetChangeKind kind, const json_t *changed,
                    char *err, size_t errlen)
{
    int rc = -1;
    char id[EVENTS_ID_LEN], perr[256];
    Envelope env;
    Panel__V1__AssetChanged ac = PANEL__V1__ASSET_CHANGED__INIT;
    ProtobufCMessage *msg = NULL;
    json_t *copy = json_deep_copy(asset);
    size_t nch;
    char **ch = events_strings_from_json(changed, &nch);
    if (!copy || !ch || !json_is_object(copy)) {
        snprintf(err, errlen, "building AssetChanged: %s",
                 copy ? "not an object" : "out of memory");
        goto out;
    }
    /* the lifecycle's text becomes the enum's name (events_from_json takes enums by name) */
    const char *lc = json_string_value(json_object_get(copy, "lifecycle"));
    if (lc) {
        Panel__V1__AssetLifecycle l = asset_lifecycle_from_text(lc);
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value(&panel__v1__asset_lifecycle__descriptor, l);
        if (l == 0 || !v)
            json_object_del(copy, "lifecycle");
        else
            json_object_set_new(copy, "lifecycle", json_string(v->name));
    }
    msg = events_from_json_value(&panel__v1__asset__descriptor, copy, perr, sizeof perr);
    if (!msg) {
        snprintf(err, errlen, "building AssetChanged: %s", perr);
        goto out;
    }
    if (events_envelope_init(&env, id, tenant, PB_SOURCE_PANEL, run_id)) {
        snprintf(err, errlen, "building AssetChanged: no event id");
        goto out;
    }
    ac.has_kind = 1;
    ac.kind = kind;
    ac.asset = (Panel__V1__Asset *)msg;
    ac.n_changed_fields = nch;
    ac.changed_fields = ch;
    env.payload_case = PB_PAYLOAD_ASSET_CHANGED;
    env.asset_changed = &ac;
    const char *asset_id = ac.asset->asset_id;
    if (!asset_id) {
        snprintf(err, errlen, "building AssetChanged: no asset_id");
        goto out;
    }
    rc = outbox_batch_add_entity(batch, &env, TOPIC_ASSETS_EVENTS, asset_id, err, errlen);
out:
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
    json_decref(copy);
    free(ch);
    return rc;
}
