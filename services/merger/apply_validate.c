/* apply_validate: the check of a panel.source.events message beyond events_decode
 * (apply.h). Pure: no database. */
#include "apply.h"
#include "ids.h"

#include <stdio.h>
#include <string.h>

static bool text_ok(const char *s, size_t max)
{
    return s && *s && strlen(s) <= max;
}

/* Every string of a decoded message is valid UTF-8 (PostgreSQL refuses anything else). */
static bool strings_ok(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        size_t n = 1;
        void *const *items = (void *const *)(base + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)(base + f->quantifier_offset);
            items = *(void *const *const *)(base + f->offset);
        }
        for (size_t k = 0; k < n; k++) {
            if (!items[k])
                continue;
            if (f->type == PROTOBUF_C_TYPE_STRING ? !ids_utf8_valid(items[k], strlen(items[k]))
                                                  : !strings_ok(items[k]))
                return false;
        }
    }
    return true;
}

uint32_t apply_end_partition_count(const Envelope *env)
{
    if (env->payload_case == PB_PAYLOAD_RUN_COMPLETED && env->run_completed)
        return env->run_completed->partition_count;
    if (env->payload_case == PB_PAYLOAD_RUN_FAILED && env->run_failed)
        return env->run_failed->partition_count;
    return 0;
}

int apply_validate(const Envelope *env, int32_t topic_partitions, char *err, size_t errlen)
{
    const char *problem = NULL;
    if (!strings_ok(&env->base)) {
        snprintf(err, errlen, "a string field is not valid UTF-8");
        return -1;
    }
    switch (env->payload_case) {
    case PB_PAYLOAD_RUN_STARTED:
        break;
    case PB_PAYLOAD_RUN_COMPLETED:
    case PB_PAYLOAD_RUN_FAILED:
        if (apply_end_partition_count(env) > APPLY_PARTITION_COUNT_MAX)
            problem = "partition_count of a run's end above 65535";
        else if (topic_partitions > 0 &&
                 apply_end_partition_count(env) > (uint32_t)topic_partitions)
            problem = "partition_count of a run's end above the topic's partitions";
        break;
    case PB_PAYLOAD_PERSON_OBSERVED:
        if (!env->person_observed->person || !text_ok(env->person_observed->person->source_id, 256))
            problem = "PersonObserved without person.source_id";
        break;
    case PB_PAYLOAD_ORG_UNIT_OBSERVED:
        if (!env->org_unit_observed->org_unit ||
            !text_ok(env->org_unit_observed->org_unit->org_unit_id, 256) ||
            !text_ok(env->org_unit_observed->org_unit->path, 4096))
            problem = "OrgUnitObserved without org_unit_id or path";
        else if (env->source != PB_SOURCE_GOOGLE)
            problem = "OrgUnitObserved from a source other than google";
        break;
    case PB_PAYLOAD_DEVICE_OBSERVED:
        if (!env->device_observed->device || !text_ok(env->device_observed->device->device_id, 256))
            problem = "DeviceObserved without device.device_id";
        else if (env->source != PB_SOURCE_GOOGLE)
            problem = "DeviceObserved from a source other than google";
        break;
    case PB_PAYLOAD_OBJECT_REMOVED:
        if (!text_ok(env->object_removed->source_id, 256) ||
            env->object_removed->kind == PB_OBJECT_KIND_UNSPECIFIED)
            problem = "ObjectRemoved without kind or source_id";
        break;
    default:
        problem = "payload does not belong on panel.source.events";
    }
    if (!problem && !ids_tenant_valid(env->tenant_id))
        problem = "tenant_id is not a valid tenant id";
    else if (!problem && !ids_uuid_valid(env->run_id))
        problem = "run_id missing or not a UUID";
    else if (!problem && env->source != PB_SOURCE_GOOGLE && env->source != PB_SOURCE_AZURE)
        problem = "source must be google or azure";
    if (problem) {
        snprintf(err, errlen, "%s", problem);
        return -1;
    }
    return 0;
}
