#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "json.h"

static void absent_null_and_wrong_type_differ(void **state)
{
    (void)state;
    char err[200];
    const char *doc = "{\"s\":\"x\",\"n\":null,\"i\":5,\"b\":true,\"is\":\"1700000000000\","
                      "\"bad\":\"12x\"}";
    json_t *o = json_parse(doc, strlen(doc), err, sizeof err);
    assert_non_null(o);
    const char *s = NULL;
    bool b = false;
    int64_t i = 0;
    assert_int_equal(json_get_str(o, "s", &s), JSON_GET_OK);
    assert_string_equal(s, "x");
    assert_int_equal(json_get_str(o, "missing", &s), JSON_GET_ABSENT);
    assert_int_equal(json_get_str(o, "n", &s), JSON_GET_NULL);
    assert_int_equal(json_get_str(o, "i", &s), JSON_GET_WRONG_TYPE);
    assert_null(json_str(o, "n"));
    assert_int_equal(json_get_bool(o, "b", &b), JSON_GET_OK);
    assert_true(b);
    assert_int_equal(json_get_bool(o, "s", &b), JSON_GET_WRONG_TYPE);
    /* A number sent as a string is not silently read as a number, and vice versa. */
    assert_int_equal(json_get_int(o, "is", &i), JSON_GET_WRONG_TYPE);
    assert_int_equal(json_get_int_string(o, "is", &i), JSON_GET_OK);
    assert_true(i == 1700000000000LL);
    assert_int_equal(json_get_int_string(o, "bad", &i), JSON_GET_WRONG_TYPE);
    assert_int_equal(json_get_int_string(o, "i", &i), JSON_GET_WRONG_TYPE);
    json_decref(o);
}

static void parse_errors_say_where(void **state)
{
    (void)state;
    char err[200];
    assert_null(json_parse("{\"a\":", 5, err, sizeof err));
    assert_non_null(strstr(err, "line 1"));
    assert_null(json_parse("{\"a\":1,\"a\":2}", 13, err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(absent_null_and_wrong_type_differ),
        cmocka_unit_test(parse_errors_say_where),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
