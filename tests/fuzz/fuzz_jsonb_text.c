/* Fuzz target: pjson_dump_jsonb_text (lib/json.h), which must print a value exactly as
 * PostgreSQL's value::jsonb::text does (the merger compares md5 of both). Without a server
 * here, the target checks what that promise implies: it succeeds unless the value holds a
 * real or a NUL (and then leaves the buffer as it was); its text parses back to an equal value;
 * printing that value again gives the same bytes; object keys come shorter first, then
 * bytewise. tests/integration/test_jsonb_text.c compares with the real server's output. */
#include "fuzz_common.h"
#include "json.h"

#include <jansson.h>

/* True when v holds a real number or a string or key with a NUL byte. */
static int refused(const json_t *v)
{
    const char *key;
    json_t *member;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_REAL:
        return 1;
    case JSON_STRING:
        return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL;
    case JSON_ARRAY:
        json_array_foreach((json_t *)v, i, member) if (refused(member)) return 1;
        return 0;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, key, member)
        {
            if (refused(member))
                return 1;
        }
        return 0;
    default:
        return 0;
    }
}

/* Every object of v (parsed from our text, jansson keeps the order read) has its keys in
 * jsonb's order. */
static int keys_in_jsonb_order(const json_t *v)
{
    const char *key, *prev = NULL;
    json_t *member;
    size_t i;
    if (json_is_array(v)) {
        json_array_foreach((json_t *)v, i, member) if (!keys_in_jsonb_order(member)) return 0;
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, member)
        {
            if (prev) {
                size_t a = strlen(prev), b = strlen(key);
                if (a > b || (a == b && memcmp(prev, key, a) >= 0))
                    return 0;
            }
            prev = key;
            if (!keys_in_jsonb_order(member))
                return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!v)
        return 0;
    struct buf b, again;
    buf_init(&b, 0);
    buf_init(&again, 0);
    if (buf_appends(&b, "prefix"))
        abort();
    int rc = pjson_dump_jsonb_text(v, &b);
    if (rc != 0) {
        if (!refused(v))
            abort(); /* only reals and NULs are refused */
        if (b.len != 6 || strcmp(b.data, "prefix") != 0)
            abort(); /* a refusal leaves the buffer as it was */
    } else {
        if (refused(v))
            abort();
        json_t *back = json_loadb(b.data + 6, b.len - 6, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!back || !json_equal(v, back) || !keys_in_jsonb_order(back))
            abort();
        if (pjson_dump_jsonb_text(back, &again) != 0 || again.len != b.len - 6 ||
            memcmp(again.data, b.data + 6, again.len) != 0)
            abort(); /* the printed form is canonical */
        json_decref(back);
    }
    buf_free(&b);
    buf_free(&again);
    json_decref(v);
    return 0;
}
