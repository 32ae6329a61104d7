#include "events.h"
#include "crypto.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

int64_t events_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int events_envelope_init(Envelope *env, char id_buf[EVENTS_ID_LEN], const char *tenant,
                         Panel__V1__Source source, const char *run_id)
{
    panel__v1__envelope__init(env);
    if (crypto_uuid(id_buf))
        return -1;
    env->event_id = id_buf;
    env->tenant_id = (char *)tenant;
    env->has_source = 1;
    env->source = source;
    env->run_id = (char *)run_id;
    env->has_occurred_at_ms = 1;
    env->occurred_at_ms = events_now_ms();
    env->has_schema_version = 1;
    env->schema_version = EVENTS_SCHEMA_VERSION;
    return 0;
}

uint8_t *events_pack(const Envelope *env, size_t *len)
{
    size_t n = panel__v1__envelope__get_packed_size(env);
    uint8_t *out = malloc(n ? n : 1);
    if (!out)
        return NULL;
    *len = panel__v1__envelope__pack(env, out);
    return out;
}

int events_publish(struct kafka_producer *p, const char *topic, const char *key,
                   const Envelope *env, char *err, size_t errlen)
{
    size_t len = 0;
    uint8_t *data = events_pack(env, &len);
    if (!data) {
        snprintf(err, errlen, "out of memory packing an event");
        return -1;
    }
    int rc = kafka_produce(p, topic, key, strlen(key), data, len, err, errlen);
    free(data);
    return rc;
}

Envelope *events_decode(const void *data, size_t len, char *err, size_t errlen)
{
    if (!data || len == 0) {
        snprintf(err, errlen, "empty message");
        return NULL;
    }
    if (len > KAFKA_MAX_MESSAGE) {
        snprintf(err, errlen, "message of %zu bytes exceeds the %d byte limit", len,
                 KAFKA_MAX_MESSAGE);
        return NULL;
    }
    Envelope *env = panel__v1__envelope__unpack(NULL, len, data);
    if (!env) {
        snprintf(err, errlen, "not a panel.v1.Envelope (protobuf decoding failed)");
        return NULL;
    }
    const char *problem = NULL;
    if (!env->has_schema_version || env->schema_version != EVENTS_SCHEMA_VERSION)
        problem = "unsupported schema_version";
    else if (!env->event_id || strlen(env->event_id) != 36)
        problem = "event_id missing or not a UUID";
    else if (!env->tenant_id || !*env->tenant_id || strlen(env->tenant_id) > 128)
        problem = "tenant_id missing or longer than 128";
    else if (env->payload_case == PANEL__V1__ENVELOPE__PAYLOAD__NOT_SET)
        problem = "no payload";
    if (problem) {
        snprintf(err, errlen, "invalid envelope: %s", problem);
        panel__v1__envelope__free_unpacked(env, NULL);
        return NULL;
    }
    return env;
}

void events_free(Envelope *env)
{
    if (env)
        panel__v1__envelope__free_unpacked(env, NULL);
}

const char *events_source_str(Panel__V1__Source s)
{
    switch (s) {
    case PANEL__V1__SOURCE__SOURCE_GOOGLE: return "google";
    case PANEL__V1__SOURCE__SOURCE_AZURE: return "azure";
    case PANEL__V1__SOURCE__SOURCE_PANEL: return "panel";
    default: return "unspecified";
    }
}

static int scalar_to_json(const ProtobufCFieldDescriptor *f, const void *p, struct buf *out)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return buf_appendf(out, "%" PRId32, *(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return buf_appendf(out, "%" PRIu32, *(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return buf_appendf(out, "%" PRId64, *(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return buf_appendf(out, "%" PRIu64, *(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return buf_appendf(out, "%g", (double)*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return buf_appendf(out, "%.17g", *(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return buf_appends(out, *(const protobuf_c_boolean *)p ? "true" : "false");
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        if (ev)
            return buf_append_json_string(out, ev->name);
        return buf_appendf(out, "%d", *(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING:
        return buf_append_json_string(out, *(char *const *)p ? *(char *const *)p : "");
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = p;
        char *tmp = malloc(bd->len * 4 / 3 + 8);
        if (!tmp)
            return -1;
        int rc = crypto_base64(bd->data, bd->len, tmp, bd->len * 4 / 3 + 8) < 0 ||
                 buf_append_json_string(out, tmp);
        free(tmp);
        return rc ? -1 : 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? events_to_json(m, out) : buf_appends(out, "null");
    }
    }
    return -1;
}

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    default:
        return 4;
    }
}

int events_to_json(const ProtobufCMessage *msg, struct buf *out)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    int first = 1, rc = buf_appends(out, "{");
    for (unsigned i = 0; i < d->n_fields && rc == 0; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *member = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            if (n == 0)
                continue;
            const char *arr = *(char *const *)member;
            rc |= buf_appendf(out, "%s\"%s\":[", first ? "" : ",", f->name);
            for (size_t k = 0; k < n && rc == 0; k++) {
                if (k)
                    rc |= buf_appends(out, ",");
                rc |= scalar_to_json(f, arr + k * type_size(f->type), out);
            }
            rc |= buf_appends(out, "]");
            first = 0;
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
        } else if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (!*(void *const *)member)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset) {
            if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset))
                continue;
        }
        rc |= buf_appendf(out, "%s\"%s\":", first ? "" : ",", f->name);
        rc |= scalar_to_json(f, member, out);
        first = 0;
    }
    rc |= buf_appends(out, "}");
    return rc ? -1 : 0;
}

static int fill_message(ProtobufCMessage *msg, const json_t *obj, int depth, char *err,
                        size_t errlen);

/* Store one JSON value into the slot of field f (a scalar slot or one array element). */
static int fill_value(const ProtobufCFieldDescriptor *f, void *slot, const json_t *v, int depth,
                      char *err, size_t errlen)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            goto wrong;
        *(char **)slot = strdup(json_string_value(v));
        return *(char **)slot ? 0 : -1;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            goto wrong;
        *(protobuf_c_boolean *)slot = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev = NULL;
        if (json_is_string(v))
            ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor,
                                                              json_string_value(v));
        else if (json_is_integer(v))
            ev = protobuf_c_enum_descriptor_get_value(f->descriptor,
                                                      (int)json_integer_value(v));
        if (!ev) {
            snprintf(err, errlen, "%s: unknown enum value", f->name);
            return -1;
        }
        *(int *)slot = ev->value;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *d = f->descriptor;
        ProtobufCMessage *sub = malloc(d->sizeof_message);
        if (!sub)
            return -1;
        protobuf_c_message_init(d, sub);
        *(ProtobufCMessage **)slot = sub;
        return fill_message(sub, v, depth + 1, err, errlen);
    }
    case PROTOBUF_C_TYPE_BYTES:
        snprintf(err, errlen, "%s: bytes fields are not supported in JSON", f->name);
        return -1;
    default: {
        long long n;
        if (json_is_integer(v)) {
            n = json_integer_value(v);
        } else if (json_is_string(v)) {
            char *end = NULL;
            n = strtoll(json_string_value(v), &end, 10);
            if (!*json_string_value(v) || *end)
                goto wrong;
        } else if (json_is_real(v) && (f->type == PROTOBUF_C_TYPE_DOUBLE ||
                                       f->type == PROTOBUF_C_TYPE_FLOAT)) {
            if (f->type == PROTOBUF_C_TYPE_DOUBLE)
                *(double *)slot = json_real_value(v);
            else
                *(float *)slot = (float)json_real_value(v);
            return 0;
        } else {
            goto wrong;
        }
        switch (type_size(f->type)) {
        case 8:
            if (f->type == PROTOBUF_C_TYPE_DOUBLE)
                *(double *)slot = (double)n;
            else
                *(int64_t *)slot = n;
            break;
        default:
            if (f->type == PROTOBUF_C_TYPE_FLOAT)
                *(float *)slot = (float)n;
            else
                *(int32_t *)slot = (int32_t)n;
        }
        return 0;
    }
    }
wrong:
    snprintf(err, errlen, "%s: wrong JSON type", f->name);
    return -1;
}

static int fill_message(ProtobufCMessage *msg, const json_t *obj, int depth, char *err,
                        size_t errlen)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj) || depth > 16) {
        snprintf(err, errlen, "%s: expected a JSON object", msg->descriptor->name);
        return -1;
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, key);
        char *base = (char *)msg;
        if (!f) {
            snprintf(err, errlen, "%s has no field '%s'", msg->descriptor->name, key);
            return -1;
        }
        if (json_is_null(v))
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = json_array_size(v);
            if (!json_is_array(v)) {
                snprintf(err, errlen, "%s: expected an array", f->name);
                return -1;
            }
            char *arr = calloc(n ? n : 1, type_size(f->type));
            if (!arr)
                return -1;
            *(char **)(base + f->offset) = arr;
            for (size_t i = 0; i < n; i++) {
                *(size_t *)(base + f->quantifier_offset) = i + 1;
                if (fill_value(f, arr + i * type_size(f->type), json_array_get(v, i), depth,
                               err, errlen))
                    return -1;
            }
            continue;
        }
        if (fill_value(f, base + f->offset, v, depth, err, errlen))
            return -1;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            *(uint32_t *)(base + f->quantifier_offset) = f->id;
        else if (f->quantifier_offset && f->type != PROTOBUF_C_TYPE_STRING &&
                 f->type != PROTOBUF_C_TYPE_MESSAGE)
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    }
    return 0;
}

Envelope *events_from_json(const json_t *obj, const char *default_tenant, char *err,
                           size_t errlen)
{
    Envelope *env = malloc(sizeof *env);
    char id[EVENTS_ID_LEN];
    if (!env) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    panel__v1__envelope__init(env);
    if (fill_message(&env->base, obj, 0, err, errlen))
        goto fail;
    if (!env->event_id) {
        if (crypto_uuid(id) || !(env->event_id = strdup(id)))
            goto fail;
    }
    if (!env->tenant_id && default_tenant && !(env->tenant_id = strdup(default_tenant)))
        goto fail;
    if (!env->has_occurred_at_ms) {
        env->has_occurred_at_ms = 1;
        env->occurred_at_ms = events_now_ms();
    }
    if (!env->has_schema_version) {
        env->has_schema_version = 1;
        env->schema_version = EVENTS_SCHEMA_VERSION;
    }
    return env;
fail:
    panel__v1__envelope__free_unpacked(env, NULL);
    return NULL;
}
