#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "httpd.h"

static void a_clean_incoming_id_is_kept(void **state)
{
    (void)state;
    char out[HTTPD_REQUEST_ID_MAX + 1];
    assert_int_equal(httpd_request_id("gw-7f3a:42/abc", out), 1);
    assert_string_equal(out, "gw-7f3a:42/abc");
    char longest[HTTPD_REQUEST_ID_MAX + 1];
    memset(longest, 'x', HTTPD_REQUEST_ID_MAX);
    longest[HTTPD_REQUEST_ID_MAX] = '\0';
    assert_int_equal(httpd_request_id(longest, out), 1);
    assert_string_equal(out, longest);
}

static void a_missing_long_or_unprintable_id_is_replaced(void **state)
{
    (void)state;
    char out[HTTPD_REQUEST_ID_MAX + 1], other[HTTPD_REQUEST_ID_MAX + 1];
    char too_long[HTTPD_REQUEST_ID_MAX + 2];
    memset(too_long, 'x', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const char *bad[] = {
        NULL,          "",     too_long, "a b", "a\r\nSet-Cookie: x", "q\"uote", "back\\slash",
        "caf\xc3\xa9", "tab\t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(httpd_request_id(bad[i], out), 0);
        assert_int_equal(strlen(out), 32);
        assert_int_equal(strspn(out, "0123456789abcdef"), 32);
    }
    assert_int_equal(httpd_request_id(NULL, other), 0);
    assert_string_not_equal(out, other);
}

static void query_parameters_are_decoded_and_bounded(void **state)
{
    (void)state;
    struct mg_request_info ri;
    char out[8];
    memset(&ri, 0, sizeof ri);
    snprintf(out, sizeof out, "junk");
    assert_int_equal(httpd_query_param(&ri, "state", out, sizeof out), 0);
    assert_string_equal(out, ""); /* no query at all */
    ri.query_string = "state=a%2Fb+c&code=x";
    assert_int_equal(httpd_query_param(&ri, "state", out, sizeof out), 0);
    assert_string_equal(out, "a/b c");
    assert_int_equal(httpd_query_param(&ri, "error", out, sizeof out), 0);
    assert_string_equal(out, ""); /* absent */
    ri.query_string = "state=12345678";
    assert_int_equal(httpd_query_param(&ri, "state", out, sizeof out), -1); /* too long */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_clean_incoming_id_is_kept),
        cmocka_unit_test(a_missing_long_or_unprintable_id_is_replaced),
        cmocka_unit_test(query_parameters_are_decoded_and_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
