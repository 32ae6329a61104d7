#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

json_t *json_parse(const char *data, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!v && err)
        snprintf(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
    return v;
}

const char *json_str(const json_t *obj, const char *key)
{
    const char *s = NULL;
    return json_get_str(obj, key, &s) == JSON_GET_OK ? s : NULL;
}

static enum json_get member(const json_t *obj, const char *key, json_t **v)
{
    if (!json_is_object(obj))
        return JSON_GET_WRONG_TYPE;
    *v = json_object_get(obj, key);
    if (!*v)
        return JSON_GET_ABSENT;
    if (json_is_null(*v))
        return JSON_GET_NULL;
    return JSON_GET_OK;
}

enum json_get json_get_str(const json_t *obj, const char *key, const char **out)
{
    json_t *v;
    enum json_get rc = member(obj, key, &v);
    if (rc != JSON_GET_OK)
        return rc;
    if (!json_is_string(v))
        return JSON_GET_WRONG_TYPE;
    *out = json_string_value(v);
    return JSON_GET_OK;
}

enum json_get json_get_bool(const json_t *obj, const char *key, bool *out)
{
    json_t *v;
    enum json_get rc = member(obj, key, &v);
    if (rc != JSON_GET_OK)
        return rc;
    if (!json_is_boolean(v))
        return JSON_GET_WRONG_TYPE;
    *out = json_is_true(v);
    return JSON_GET_OK;
}

enum json_get json_get_int(const json_t *obj, const char *key, int64_t *out)
{
    json_t *v;
    enum json_get rc = member(obj, key, &v);
    if (rc != JSON_GET_OK)
        return rc;
    if (!json_is_integer(v))
        return JSON_GET_WRONG_TYPE;
    *out = (int64_t)json_integer_value(v);
    return JSON_GET_OK;
}

enum json_get json_get_int_string(const json_t *obj, const char *key, int64_t *out)
{
    const char *s;
    enum json_get rc = json_get_str(obj, key, &s);
    if (rc != JSON_GET_OK)
        return rc;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || errno || *end)
        return JSON_GET_WRONG_TYPE;
    *out = (int64_t)v;
    return JSON_GET_OK;
}

char *json_dump_compact(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}
