#include "events.h"
#include "crypto.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Pack env and queue it (partition RD_KAFKA_PARTITION_UA: by key; d may be NULL). */
static int publish_packed(struct kafka_producer *p, const char *topic, int32_t partition,
                          const char *key, const Envelope *env, struct kafka_delivery *d, char *err,
                          size_t errlen)
{
    size_t len = 0;
    uint8_t *data = events_pack(env, &len);
    if (!data) {
        snprintf(err, errlen, "out of memory packing an event");
        return -1;
    }
    int rc =
        kafka_produce_partition(p, topic, partition, key, strlen(key), data, len, d, err, errlen);
    free(data);
    return rc;
}

int events_publish_tracked(struct kafka_producer *p, const char *topic, const char *key,
                           const Envelope *env, struct kafka_delivery *d, char *err, size_t errlen)
{
    return publish_packed(p, topic, RD_KAFKA_PARTITION_UA, key, env, d, err, errlen);
}

int events_publish_partition(struct kafka_producer *p, const char *topic, int32_t partition,
                             const char *key, const Envelope *env, char *err, size_t errlen)
{
    return publish_packed(p, topic, partition, key, env, NULL, err, errlen);
}

int events_publish(struct kafka_producer *p, const char *topic, const char *key,
                   const Envelope *env, char *err, size_t errlen)
{
    return events_publish_tracked(p, topic, key, env, NULL, err, errlen);
}

/* protobuf-c keeps an unknown field whose tag is an overlong encoding of field number 0 and
 * writes it back as the one-byte tag 0, which no decoder accepts: such a message would decode
 * here and not after being packed again (found by the envelope fuzz target). Field number 0
 * is invalid protobuf, so the message is refused. Walks nested messages too. */
static bool has_field_number_zero(const ProtobufCMessage *m, int depth)
{
    if (!m || depth > 32)
        return false;
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (has_field_number_zero(items[k], depth + 1))
                    return true;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        if (has_field_number_zero(*(ProtobufCMessage *const *)(base + f->offset), depth + 1))
            return true;
    }
    return false;
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
    if (has_field_number_zero(&env->base, 0))
        problem = "a field numbered 0";
    else if (!env->has_schema_version || env->schema_version != EVENTS_SCHEMA_VERSION)
        problem = "unsupported schema_version";
    else if (!env->event_id || strlen(env->event_id) != 36)
        problem = "event_id missing or not a UUID";
    else if (!env->tenant_id || !*env->tenant_id || strlen(env->tenant_id) > 128)
        problem = "tenant_id missing or longer than 128";
    else if (env->payload_case == PB_PAYLOAD__NOT_SET)
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
    case PB_SOURCE_GOOGLE:
        return "google";
    case PB_SOURCE_AZURE:
        return "azure";
    case PB_SOURCE_PANEL:
        return "panel";
    default:
        return "unspecified";
    }
}

Panel__V1__Source events_source_from_str(const char *s)
{
    static const char prefix[] = "SOURCE_";
    char name[48];
    size_t n = sizeof prefix - 1;
    memcpy(name, prefix, n);
    for (; s && *s; s++) {
        if (n + 1 >= sizeof name || !((*s >= 'a' && *s <= 'z') || *s == '_'))
            return PB_SOURCE_UNSPECIFIED;
        name[n++] = (char)(*s == '_' ? '_' : *s - 'a' + 'A');
    }
    name[n] = '\0';
    const ProtobufCEnumValue *v =
        s ? protobuf_c_enum_descriptor_get_value_by_name(&panel__v1__source__descriptor, name)
          : NULL;
    return v ? (Panel__V1__Source)v->value : PB_SOURCE_UNSPECIFIED;
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

/* Whether a field of the message at base is written: a repeated field with elements, the set
 * member of a oneof, a present string or message, an optional scalar that has its value. */
static bool field_present(const ProtobufCFieldDescriptor *f, const char *base)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)(base + f->quantifier_offset) > 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(void *const *)(base + f->offset) != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    return true;
}

int events_to_json(const ProtobufCMessage *msg, struct buf *out)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    int first = 1, rc = buf_appends(out, "{");
    for (unsigned i = 0; i < d->n_fields && rc == 0; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *member = base + f->offset;
        if (!field_present(f, base))
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
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
        rc |= buf_appendf(out, "%s\"%s\":", first ? "" : ",", f->name);
        rc |= scalar_to_json(f, member, out);
        first = 0;
    }
    rc |= buf_appends(out, "}");
    return rc ? -1 : 0;
}

/* One value of field f at p as a new jansson value (NULL when out of memory or when the value
 * cannot be represented exactly as events_to_json's text would read back). */
static json_t *scalar_to_value(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: /* the text of one above INT64_MAX does not parse back */
        return *(const uint64_t *)p > INT64_MAX ? NULL
                                                : json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        return ev ? json_string(ev->name) : json_integer(*(const int *)p);
    }
    case PROTOBUF_C_TYPE_STRING:
        return json_string(*(char *const *)p ? *(char *const *)p : "");
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? events_to_json_value(m) : json_null();
    }
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
    case PROTOBUF_C_TYPE_BYTES: { /* rare: through the text, so both forms agree exactly */
        struct buf b;
        buf_init(&b, 0);
        json_t *v =
            scalar_to_json(f, p, &b) == 0 ? json_loads(b.data, JSON_DECODE_ANY, NULL) : NULL;
        buf_free(&b);
        return v;
    }
    }
    return NULL;
}

char **events_strings_from_json(const json_t *strings, size_t *n)
{
    size_t count = json_array_size(strings);
    char **out = calloc(count ? count : 1, sizeof *out);
    *n = out ? count : 0;
    for (size_t i = 0; out && i < count; i++)
        out[i] = (char *)json_string_value(json_array_get(strings, i));
    return out;
}

json_t *events_to_json_value(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    json_t *obj = json_object();
    for (unsigned i = 0; obj && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *member = base + f->offset;
        json_t *v;
        if (!field_present(f, base))
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)member;
            v = json_array();
            for (size_t k = 0; v && k < n; k++)
                if (json_array_append_new(v, scalar_to_value(f, arr + k * type_size(f->type)))) {
                    json_decref(v);
                    v = NULL;
                }
        } else {
            v = scalar_to_value(f, member);
        }
        if (json_object_set_new_nocheck(obj, f->name, v)) { /* a NULL v fails here too */
            json_decref(obj);
            obj = NULL;
        }
    }
    return obj;
}

/* ---------------------------------------------------------------- JSON -> message */

static int field_from_json(const ProtobufCFieldDescriptor *f, const json_t *v, void *p, char *err,
                           size_t errlen);

static int msg_fill(const ProtobufCMessageDescriptor *d, const json_t *obj, ProtobufCMessage *m,
                    char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    char *base = (char *)m;
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "%s: expected a JSON object", d->name);
        return -1;
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
        if (!f) {
            snprintf(err, errlen, "%s: unknown field \"%s\"", d->name, key);
            return -1;
        }
        if (json_is_null(v))
            continue;
        void *member = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(v)) {
                snprintf(err, errlen, "%s.%s: expected an array", d->name, key);
                return -1;
            }
            size_t n = json_array_size(v), sz = type_size(f->type);
            char *arr = calloc(n ? n : 1, sz);
            if (!arr) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            *(void **)member = arr;
            *(size_t *)(base + f->quantifier_offset) = 0;
            for (size_t k = 0; k < n; k++) {
                if (field_from_json(f, json_array_get(v, k), arr + k * sz, err, errlen))
                    return -1;
                *(size_t *)(base + f->quantifier_offset) = k + 1;
            }
            continue;
        }
        if (field_from_json(f, v, member, err, errlen))
            return -1;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            *(uint32_t *)(base + f->quantifier_offset) = f->id;
        else if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE &&
                 f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    }
    return 0;
}

static int json_integer_value_any(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) { /* int64 written as a decimal string */
        const char *s = json_string_value(v);
        char *end = NULL;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (*s && end && !*end && errno == 0) {
            *out = x;
            return 0;
        }
    }
    return -1;
}

static int field_from_json(const ProtobufCFieldDescriptor *f, const json_t *v, void *p, char *err,
                           size_t errlen)
{
    int64_t i = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX)
            goto bad;
        *(int32_t *)p = (int32_t)json_integer_value(v);
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
            goto bad;
        *(uint32_t *)p = (uint32_t)json_integer_value(v);
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (json_integer_value_any(v, &i))
            goto bad;
        *(int64_t *)p = i;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (json_integer_value_any(v, &i) || i < 0)
            goto bad;
        *(uint64_t *)p = (uint64_t)i;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        if (!json_is_number(v))
            goto bad;
        *(float *)p = (float)json_number_value(v);
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (!json_is_number(v))
            goto bad;
        *(double *)p = json_number_value(v);
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            goto bad;
        *(protobuf_c_boolean *)p = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev = NULL;
        if (json_is_string(v))
            ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
        else if (json_is_integer(v) && json_integer_value(v) >= INT32_MIN &&
                 json_integer_value(v) <= INT32_MAX) {
            *(int *)p = (int)json_integer_value(v);
            return 0;
        }
        if (!ev)
            goto bad;
        *(int *)p = ev->value;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v))
            goto bad;
        char *s = strdup(json_string_value(v));
        if (!s)
            goto oom;
        *(char **)p = s;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v))
            goto bad;
        const char *s = json_string_value(v);
        size_t cap = strlen(s) * 3 / 4 + 4;
        uint8_t *data = malloc(cap);
        if (!data)
            goto oom;
        long n = crypto_base64_decode(s, data, cap);
        if (n < 0) {
            free(data);
            goto bad;
        }
        ((ProtobufCBinaryData *)p)->data = data;
        ((ProtobufCBinaryData *)p)->len = (size_t)n;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *sd = f->descriptor;
        ProtobufCMessage *sub = calloc(1, sd->sizeof_message);
        if (!sub)
            goto oom;
        sd->message_init(sub);
        *(ProtobufCMessage **)p = sub;
        return msg_fill(sd, v, sub, err, errlen);
    }
    }
bad:
    snprintf(err, errlen, "field %s: wrong JSON type or value", f->name);
    return -1;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

ProtobufCMessage *events_from_json_value(const ProtobufCMessageDescriptor *d, const json_t *root,
                                         char *err, size_t errlen)
{
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->message_init(m);
    if (msg_fill(d, root, m, err, errlen)) {
        protobuf_c_message_free_unpacked(m, NULL);
        m = NULL;
    }
    return m;
}

ProtobufCMessage *events_from_json(const ProtobufCMessageDescriptor *d, const char *json,
                                   size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!root) {
        snprintf(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    ProtobufCMessage *m = events_from_json_value(d, root, err, errlen);
    json_decref(root);
    return m;
}
