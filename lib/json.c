#include "json.h"
#include "buf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *pjson_parse(const char *data, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!v && err)
        snprintf(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
    return v;
}

/* The end of the string starting at data[i] == '"' (the index of its closing quote), or
 * len when it does not end; *escaped tells whether it holds a backslash. */
static size_t scan_string_end(const char *data, size_t len, size_t i, bool *escaped)
{
    *escaped = false;
    for (i++; i < len; i++) {
        if (data[i] == '\\') {
            *escaped = true;
            i++;
        } else if (data[i] == '"') {
            return i;
        }
    }
    return len;
}

static size_t scan_space(const char *data, size_t len, size_t i)
{
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
        i++;
    return i;
}

int pjson_scan_member_string(const char *data, size_t len, const char *name, const char **value,
                             size_t *value_len)
{
    size_t namelen = strlen(name), i = scan_space(data, len, 0);
    int depth = 1, found = 0;
    bool want_key = true, escaped;
    if (i >= len || data[i] != '{')
        return 0;
    for (i++; i < len; i++) {
        char c = data[i];
        if (c == '"') {
            size_t end = scan_string_end(data, len, i, &escaped);
            if (end >= len)
                return 0;
            bool key = depth == 1 && want_key;
            bool match = key && !escaped && end - i - 1 == namelen &&
                         memcmp(data + i + 1, name, namelen) == 0;
            i = end;
            if (key)
                want_key = false;
            if (!match)
                continue;
            i = scan_space(data, len, i + 1);
            if (i >= len || data[i] != ':')
                return 0;
            i = scan_space(data, len, i + 1);
            if (found || i >= len || data[i] != '"')
                return 0; /* twice, or not a string */
            end = scan_string_end(data, len, i, &escaped);
            if (end >= len || escaped)
                return 0;
            *value = data + i + 1;
            *value_len = end - i - 1;
            found = 1;
            i = end;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return found;
        } else if (c == ',' && depth == 1) {
            want_key = true;
        }
    }
    return 0; /* the document does not end */
}

const char *pjson_str(const json_t *obj, const char *key)
{
    const char *s = NULL;
    return pjson_get_str(obj, key, &s) == PJSON_OK ? s : NULL;
}

static enum pjson_get member(const json_t *obj, const char *key, json_t **v)
{
    if (!json_is_object(obj))
        return PJSON_WRONG_TYPE;
    *v = json_object_get(obj, key);
    if (!*v)
        return PJSON_ABSENT;
    if (json_is_null(*v))
        return PJSON_NULL;
    return PJSON_OK;
}

/* member(), and PJSON_WRONG_TYPE when the value is none of the JSON types in mask (bits
 * 1u << json_type). */
static enum pjson_get member_of(const json_t *obj, const char *key, unsigned mask, json_t **v)
{
    enum pjson_get rc = member(obj, key, v);
    if (rc == PJSON_OK && !(mask & (1u << json_typeof(*v))))
        return PJSON_WRONG_TYPE;
    return rc;
}

enum pjson_get pjson_get_str(const json_t *obj, const char *key, const char **out)
{
    json_t *v;
    enum pjson_get rc = member_of(obj, key, 1u << JSON_STRING, &v);
    if (rc == PJSON_OK)
        *out = json_string_value(v);
    return rc;
}

enum pjson_get pjson_get_bool(const json_t *obj, const char *key, bool *out)
{
    json_t *v;
    enum pjson_get rc = member_of(obj, key, 1u << JSON_TRUE | 1u << JSON_FALSE, &v);
    if (rc == PJSON_OK)
        *out = json_is_true(v);
    return rc;
}

enum pjson_get pjson_get_int(const json_t *obj, const char *key, int64_t *out)
{
    json_t *v;
    enum pjson_get rc = member_of(obj, key, 1u << JSON_INTEGER, &v);
    if (rc == PJSON_OK)
        *out = (int64_t)json_integer_value(v);
    return rc;
}

enum pjson_get pjson_get_int_string(const json_t *obj, const char *key, int64_t *out)
{
    const char *s;
    enum pjson_get rc = pjson_get_str(obj, key, &s);
    if (rc != PJSON_OK)
        return rc;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || errno || *end)
        return PJSON_WRONG_TYPE;
    *out = (int64_t)v;
    return PJSON_OK;
}

#define JSON_DUMP_MAX_DEPTH 2048

/* ------------------------------------------ writing: compact text, PostgreSQL's jsonb text */

/* A string as PostgreSQL's escape_json writes it: the short escapes for \b \f \n \r \t " and
 * \\, \u00xx (lower-case hex) for the other control characters, everything else as is. */
static int append_pg_string(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    if (memchr(s, '\0', n)) /* jsonb cannot hold \u0000 */
        return -1;
    if (buf_append(b, "\"", 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
        size_t escn = 6;
        char letter = ch == '\b'   ? 'b'
                      : ch == '\f' ? 'f'
                      : ch == '\n' ? 'n'
                      : ch == '\r' ? 'r'
                      : ch == '\t' ? 't'
                                   : (char)(ch == '"' || ch == '\\' ? ch : 0);
        if (letter) {
            esc[1] = letter;
            escn = 2;
        }
        if (buf_append(b, s + start, i - start) || buf_append(b, esc, escn))
            return -1;
        start = i + 1;
    }
    if (buf_append(b, s + start, n - start))
        return -1;
    return buf_append(b, "\"", 1);
}

struct pg_key {
    const char *key;
    size_t len;
    json_t *value;
};

/* jsonb's key order: shorter keys first, then bytewise. */
static int pg_key_cmp(const void *a, const void *b)
{
    const struct pg_key *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->key, y->key, x->len);
}

/* The two text forms of a value: jansson's compact text (pjson_dump_compact) and PostgreSQL's
 * jsonb text (pjson_dump_jsonb_text). */
struct dump_form {
    const char *comma; /* between items */
    size_t comma_len;
    const char *colon; /* after a key */
    size_t colon_len;
    bool jsonb; /* PostgreSQL's string escapes, keys in jsonb's order, reals refused (numeric's
                   text is not reproduced) */
};

static int dump(struct buf *b, const json_t *v, const struct dump_form *form, int depth);

static int dump_string(const struct dump_form *form, struct buf *b, const char *s, size_t n)
{
    return form->jsonb ? append_pg_string(b, s, n) : buf_append_json_stringn(b, s, n);
}

/* Members in insertion order. */
static int dump_members(struct buf *b, const json_t *v, const struct dump_form *form, int depth)
{
    const char *key;
    json_t *member;
    bool first = true;
    json_object_foreach((json_t *)v, key, member)
    {
        if ((!first && buf_append(b, form->comma, form->comma_len)) ||
            dump_string(form, b, key, strlen(key)) || buf_append(b, form->colon, form->colon_len) ||
            dump(b, member, form, depth + 1))
            return -1;
        first = false;
    }
    return 0;
}

/* Members in jsonb's order. */
static int dump_members_sorted(struct buf *b, const json_t *v, const struct dump_form *form,
                               int depth)
{
    size_t n = json_object_size(v), i = 0;
    struct pg_key *keys = malloc((n ? n : 1) * sizeof *keys);
    const char *key;
    json_t *member;
    int rc = 0;
    if (!keys)
        return -1;
    json_object_foreach((json_t *)v, key, member)
    {
        keys[i].key = key;
        keys[i].len = strlen(key);
        keys[i].value = member;
        i++;
    }
    qsort(keys, n, sizeof *keys, pg_key_cmp);
    for (i = 0; i < n && rc == 0; i++)
        rc = (i && buf_append(b, form->comma, form->comma_len)) ||
             dump_string(form, b, keys[i].key, keys[i].len) ||
             buf_append(b, form->colon, form->colon_len) || dump(b, keys[i].value, form, depth + 1);
    free(keys);
    return rc ? -1 : 0;
}

/* Reals as "%.17g" with a ".0" when they would read back as integers and jansson's exponent
 * (no '+', no leading zeros: "1e300", "3e-7"). */
static int dump_real(struct buf *b, double d)
{
    char num[64];
    if (!isfinite(d))
        return -1;
    int n = snprintf(num, sizeof num, "%.17g", d);
    if (n < 0 || (size_t)n >= sizeof num)
        return -1;
    char *exp = strchr(num, 'e');
    if (!exp && !strchr(num, '.') && (size_t)n + 3 <= sizeof num)
        memcpy(num + n, ".0", 3);
    if (exp) {
        char *digits = exp + 1 + (exp[1] == '-');
        char *from = exp[1] == '+' ? exp + 2 : digits;
        while (*from == '0' && from[1])
            from++;
        memmove(digits, from, strlen(from) + 1);
    }
    return buf_appends(b, num);
}

static int dump(struct buf *b, const json_t *v, const struct dump_form *form, int depth)
{
    if (depth > JSON_DUMP_MAX_DEPTH)
        return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (buf_append(b, "{", 1) || (form->jsonb ? dump_members_sorted(b, v, form, depth)
                                                  : dump_members(b, v, form, depth)))
            return -1;
        return buf_append(b, "}", 1);
    case JSON_ARRAY:
        if (buf_append(b, "[", 1))
            return -1;
        for (size_t i = 0; i < json_array_size(v); i++)
            if ((i && buf_append(b, form->comma, form->comma_len)) ||
                dump(b, json_array_get(v, i), form, depth + 1))
                return -1;
        return buf_append(b, "]", 1);
    case JSON_STRING:
        return dump_string(form, b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return buf_appendf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return form->jsonb ? -1 : dump_real(b, json_real_value(v));
    case JSON_TRUE:
        return buf_append(b, "true", 4);
    case JSON_FALSE:
        return buf_append(b, "false", 5);
    case JSON_NULL:
        return buf_append(b, "null", 4);
    }
    return -1;
}

/* Our values are trees built in this process, so this writer skips jansson's cycle detection
 * (a hash table of the containers on the path, keyed by their formatted addresses), which made
 * json_dumps most of the merger's CPU. Same output as json_dumps(JSON_COMPACT): members in
 * insertion order, UTF-8 as is, reals as dump_real() writes them. */
static const struct dump_form compact_form = {",", 1, ":", 1, false};
/* As PostgreSQL prints a jsonb value (", ", ": ", keys shorter first then bytewise, its string
 * escapes). */
static const struct dump_form jsonb_form = {", ", 2, ": ", 2, true};

/* Append v in form; a failed dump appends nothing (b is as it was). 0 or -1. */
static int dump_into(struct buf *b, const json_t *v, const struct dump_form *form)
{
    size_t len = b->len;
    if (v && dump(b, v, form, 0) == 0)
        return 0;
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
    return -1;
}

int pjson_dump_compact_into(const json_t *v, struct buf *b)
{
    return dump_into(b, v, &compact_form);
}

char *pjson_dump_compact(const json_t *v)
{
    struct buf b;
    buf_init(&b, PJSON_DUMP_MAX_BYTES);
    if (pjson_dump_compact_into(v, &b)) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b);
}

int pjson_dump_jsonb_text(const json_t *v, struct buf *b)
{
    return dump_into(b, v, &jsonb_form);
}
