#include "fetch_map.h"

#include "ids.h"

#include "panel/v1/pb_short_names.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *fmap_strndup_utf8(const char *s, size_t max, bool *cut)
{
    size_t n = strlen(s);
    if (cut)
        *cut = false;
    if (n > max) {
        n = max;
        /* Step back over continuation bytes so that no sequence is split. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        if (cut)
            *cut = true;
    }
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

char *fmap_normalize_email(const char *email)
{
    size_t cap = strlen(email) + 1;
    char *out = malloc(cap);
    if (out && ids_email_normalize(email, out, cap) != 0)
        out[0] = '\0'; /* only blanks: an empty address, as the mapping tables expect */
    return out;
}

/* The member named by path ("a", "a.b", "a.b.c"); NULL when absent. */
static json_t *lookup(const json_t *obj, const char *path)
{
    const char *dot;
    while ((dot = strchr(path, '.'))) {
        size_t n = (size_t)(dot - path);
        obj = json_object_getn(obj, path, n);
        if (!json_is_object(obj))
            return NULL;
        path = dot + 1;
    }
    return json_object_get(obj, path);
}

static void *field_ptr(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    return (char *)m + fd->offset;
}

static void set_has(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
    if (fd->quantifier_offset && fd->label == PROTOBUF_C_LABEL_OPTIONAL &&
        fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)((char *)m + fd->quantifier_offset) = 1;
}

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = calloc(1, desc->sizeof_message);
    if (m)
        desc->message_init(m);
    return m;
}

/* Set a string field to a truncated copy of s. 0 or -1 (memory). */
static int set_str(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, const char *s,
                   size_t max, struct fmap_stats *stats)
{
    bool cut = false;
    char *copy = fmap_strndup_utf8(s, max ? max : FMAP_MAX_TEXT, &cut);
    if (!copy)
        return -1;
    char **slot = field_ptr(m, fd);
    free(*slot);
    *slot = copy;
    if (cut && stats)
        stats->truncated++;
    return 0;
}

/* Append a copy of s to a repeated string field. 0 or -1. */
static int append_str(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, const char *s,
                      size_t max, struct fmap_stats *stats)
{
    size_t *n = (size_t *)((char *)m + fd->quantifier_offset);
    char ***arr = field_ptr(m, fd);
    bool cut = false;
    char *copy = fmap_strndup_utf8(s, max, &cut);
    if (!copy)
        return -1;
    char **grown = realloc(*arr, (*n + 1) * sizeof *grown);
    if (!grown) {
        free(copy);
        return -1;
    }
    grown[(*n)++] = copy;
    *arr = grown;
    if (cut && stats)
        stats->truncated++;
    return 0;
}

static int map_str_list(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd, const json_t *v,
                        size_t max, struct fmap_stats *stats)
{
    const ProtobufCMessageDescriptor *ld = fd->descriptor;
    ProtobufCMessage *list = new_message(ld);
    if (!list)
        return -1;
    const ProtobufCFieldDescriptor *vals =
        protobuf_c_message_descriptor_get_field_by_name(ld, "values");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            continue;
        if (i >= FMAP_MAX_LIST) {
            if (stats)
                stats->truncated++;
            break;
        }
        if (append_str(list, vals, json_string_value(e), max, stats)) {
            protobuf_c_message_free_unpacked(list, NULL);
            return -1;
        }
    }
    ProtobufCMessage **slot = field_ptr(m, fd);
    if (*slot)
        protobuf_c_message_free_unpacked(*slot, NULL);
    *slot = list;
    return 0;
}

static int map_recent_users(ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
                            const json_t *v, const char *present_field, struct fmap_stats *stats)
{
    const ProtobufCMessageDescriptor *rd = fd->descriptor;
    const ProtobufCFieldDescriptor *tf =
        protobuf_c_message_descriptor_get_field_by_name(rd, "type");
    const ProtobufCFieldDescriptor *ef =
        protobuf_c_message_descriptor_get_field_by_name(rd, "email");
    size_t *n = (size_t *)((char *)m + fd->quantifier_offset);
    ProtobufCMessage ***arr = field_ptr(m, fd);
    size_t cnt = json_array_size(v);
    if (cnt > FMAP_MAX_LIST) {
        cnt = FMAP_MAX_LIST;
        if (stats)
            stats->truncated++;
    }
    if (cnt) {
        *arr = calloc(cnt, sizeof **arr);
        if (!*arr)
            return -1;
    }
    for (size_t i = 0; i < cnt; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_object(e))
            continue;
        ProtobufCMessage *ru = new_message(rd);
        if (!ru)
            return -1;
        (*arr)[(*n)++] = ru;
        const char *s;
        if ((s = json_string_value(json_object_get(e, "type"))) &&
            set_str(ru, tf, s, FMAP_MAX_NAME, stats))
            return -1;
        if ((s = json_string_value(json_object_get(e, "email"))) &&
            set_str(ru, ef, s, FMAP_MAX_EMAIL, stats))
            return -1;
    }
    if (present_field) {
        const ProtobufCFieldDescriptor *pf =
            protobuf_c_message_descriptor_get_field_by_name(m->descriptor, present_field);
        if (pf && pf->type == PROTOBUF_C_TYPE_BOOL) {
            *(protobuf_c_boolean *)field_ptr(m, pf) = 1;
            set_has(m, pf);
        }
    }
    return 0;
}

/* A year as FMAP_YEAR reads it: true with *year set, false for anything else (a real number,
 * a sign, spaces, other text, out of range). */
static bool parse_year(const json_t *v, int32_t *year)
{
    json_int_t x = 0;
    if (json_is_array(v)) /* Google's multi-valued custom field: [{"value": ...}, ...] */
        v = json_object_get(json_array_get(v, 0), "value");
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0 || n > 9)
            return false;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return false;
            x = x * 10 + (s[i] - '0');
        }
    } else {
        return false;
    }
    if (x < FMAP_YEAR_MIN || x > FMAP_YEAR_MAX)
        return false;
    *year = (int32_t)x;
    return true;
}

static int map_field(ProtobufCMessage *m, const struct fmap_field *f,
                     const ProtobufCFieldDescriptor *fd, const json_t *v, struct fmap_stats *stats)
{
    switch (f->type) {
    case FMAP_STR:
        if (!json_is_string(v))
            return 1;
        return set_str(m, fd, json_string_value(v), f->max, stats);
    case FMAP_TIME: {
        if (!json_is_string(v))
            return 1;
        const char *s = json_string_value(v);
        if (strncmp(s, "1970-01-01T00:00:00", 19) == 0)
            return 0; /* Google: never signed in */
        return set_str(m, fd, s, f->max ? f->max : 64, stats);
    }
    case FMAP_BOOL:
    case FMAP_BOOL_NOT:
        if (!json_is_boolean(v))
            return 1;
        *(protobuf_c_boolean *)field_ptr(m, fd) =
            f->type == FMAP_BOOL ? json_is_true(v) : !json_is_true(v);
        set_has(m, fd);
        return 0;
    case FMAP_INT_STRING: {
        int64_t x;
        if (json_is_integer(v)) {
            x = (int64_t)json_integer_value(v);
        } else if (json_is_string(v)) {
            const char *s = json_string_value(v);
            char *end = NULL;
            long long ll = strtoll(s, &end, 10);
            if (!*s || *end)
                return 1;
            x = (int64_t)ll;
        } else {
            return 1;
        }
        *(int64_t *)field_ptr(m, fd) = x;
        set_has(m, fd);
        return 0;
    }
    case FMAP_STR_LIST:
        if (!json_is_array(v))
            return 1;
        return map_str_list(m, fd, v, f->max ? f->max : FMAP_MAX_EMAIL, stats);
    case FMAP_EXTERNAL_ID: {
        if (!json_is_array(v))
            return 1;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            const char *type = json_string_value(json_object_get(e, "type"));
            const char *value = json_string_value(json_object_get(e, "value"));
            if (type && value && f->arg && strcmp(type, f->arg) == 0)
                return set_str(m, fd, value, f->max, stats);
        }
        return 0;
    }
    case FMAP_RECENT_USERS:
        if (!json_is_array(v))
            return 1;
        return map_recent_users(m, fd, v, f->arg, stats);
    case FMAP_YEAR: {
        int32_t year;
        if (!parse_year(v, &year))
            return 1;
        *(int32_t *)field_ptr(m, fd) = year;
        set_has(m, fd);
        return 0;
    }
    }
    return 1;
}

static int record_cleared(ProtobufCMessage *m, const char *proto)
{
    const ProtobufCFieldDescriptor *cf =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "cleared_fields");
    if (!cf)
        return 0;
    return append_str(m, cf, proto, FMAP_MAX_NAME, NULL);
}

/* Map every field of one table whose member obj has. 0, or -1 with reason set. */
static int map_fields(ProtobufCMessage *m, const struct fmap_spec *spec,
                      const struct fmap_field *fields, size_t n, const json_t *obj,
                      struct fmap_stats *stats, char *reason, size_t reasonlen)
{
    for (size_t i = 0; i < n; i++) {
        const struct fmap_field *f = &fields[i];
        if (!f->json)
            continue; /* a configured field the district did not name */
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field_by_name(spec->desc, f->proto);
        if (!fd) {
            snprintf(reason, reasonlen, "mapping table names unknown field %s", f->proto);
            return -1;
        }
        json_t *v = lookup(obj, f->json);
        if (!v)
            continue;
        if (json_is_null(v)) {
            if (spec->nulls_clear && record_cleared(m, f->proto)) {
                snprintf(reason, reasonlen, "out of memory");
                return -1;
            }
            continue;
        }
        int rc = map_field(m, f, fd, v, stats);
        if (rc < 0) {
            snprintf(reason, reasonlen, "out of memory");
            return -1;
        }
        /* rc > 0: a value of the wrong type is left out rather than coerced. */
        if (rc > 0 && stats)
            stats->ignored++;
    }
    return 0;
}

ProtobufCMessage *fmap_map(const struct fmap_spec *spec, const json_t *obj, int flags,
                           struct fmap_stats *stats, char *reason, size_t reasonlen)
{
    ProtobufCMessage *m = NULL;
    const char *id = NULL;
    if (!json_is_object(obj)) {
        snprintf(reason, reasonlen, "not a JSON object");
        goto fail;
    }
    id = json_string_value(json_object_get(obj, spec->id_json));
    if (!id || !*id) {
        snprintf(reason, reasonlen, "missing %s", spec->id_json);
        goto fail;
    }
    if (strlen(id) > FMAP_MAX_ID) {
        snprintf(reason, reasonlen, "%s longer than %d bytes", spec->id_json, FMAP_MAX_ID);
        goto fail;
    }
    m = new_message(spec->desc);
    if (!m) {
        snprintf(reason, reasonlen, "out of memory");
        goto fail;
    }
    const ProtobufCFieldDescriptor *idf =
        protobuf_c_message_descriptor_get_field_by_name(spec->desc, spec->id_proto);
    if (!idf || set_str(m, idf, id, FMAP_MAX_ID, stats)) {
        snprintf(reason, reasonlen, "cannot set %s", spec->id_proto);
        goto fail;
    }
    if (map_fields(m, spec, spec->fields, spec->nfields, obj, stats, reason, reasonlen) ||
        map_fields(m, spec, spec->configured, spec->nconfigured, obj, stats, reason, reasonlen))
        goto fail;
    if (spec->email_from) {
        const char *email = NULL;
        for (size_t i = 0; spec->email_from[i] && !email; i++) {
            const json_t *v = json_object_get(obj, spec->email_from[i]);
            if (!v && (flags & FMAP_PARTIAL))
                break; /* unchanged in a delta: the earlier choice stands */
            const char *s = json_string_value(v);
            if (s && *s)
                email = s;
        }
        if (!email && !(flags & FMAP_PARTIAL)) {
            snprintf(reason, reasonlen, "id %s has no email (%s)", id, spec->email_from[0]);
            goto fail;
        }
        if (email) {
            const ProtobufCFieldDescriptor *ef =
                protobuf_c_message_descriptor_get_field_by_name(spec->desc, "email");
            const ProtobufCFieldDescriptor *nf =
                protobuf_c_message_descriptor_get_field_by_name(spec->desc, "email_normalized");
            char *norm = fmap_normalize_email(email);
            int bad = !ef || !nf || !norm || set_str(m, ef, email, FMAP_MAX_EMAIL, stats) ||
                      set_str(m, nf, norm, FMAP_MAX_EMAIL, stats);
            free(norm);
            if (bad) {
                snprintf(reason, reasonlen, "cannot set email");
                goto fail;
            }
        }
    }
    return m;
fail:
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return NULL;
}

void fmap_spec_configure(struct fmap_spec *out, const struct fmap_spec *base,
                         struct fmap_field *fields, const struct fmap_field *configured, size_t n)
{
    *out = *base;
    memcpy(fields, configured, n * sizeof *fields);
    out->configured = fields;
    out->nconfigured = n;
}
