/* The JSON helpers the merger's unit tests share: include after <cmocka.h>. */
#ifndef TEST_MERGER_JSON_FIXTURES_H
#define TEST_MERGER_JSON_FIXTURES_H

#include <jansson.h>

/* The JSON value of text, which the test wrote and which must read: a new reference. */
static inline json_t *obj(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    return v;
}

/* The string member k of o; NULL when absent or not a string. */
static inline const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

#endif
