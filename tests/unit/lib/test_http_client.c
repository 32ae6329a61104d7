#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "http_client.h"

static void retry_after_forms(void **state)
{
    (void)state;
    assert_true(http_parse_retry_after("2") == 2.0);
    assert_true(http_parse_retry_after("2.128") > 2.12 && http_parse_retry_after("2.128") < 2.13);
    assert_true(http_parse_retry_after("") < 0);
    assert_true(http_parse_retry_after("soon") < 0);
    assert_true(http_parse_retry_after("-5") < 0);
    /* An HTTP date in the past means "now". */
    assert_true(http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0);
}

static void backoff_grows_with_jitter_and_honours_retry_after(void **state)
{
    (void)state;
    struct http_client_opts o = {.backoff_base_ms = 100, .backoff_max_ms = 1000};
    for (int i = 0; i < 50; i++) {
        long w1 = http_backoff_ms(&o, 1, -1);
        long w3 = http_backoff_ms(&o, 3, -1);
        long w9 = http_backoff_ms(&o, 9, -1);
        assert_in_range(w1, 50, 100);
        assert_in_range(w3, 200, 400);
        assert_in_range(w9, 500, 1000); /* capped */
        assert_true(http_backoff_ms(&o, 1, 2.5) >= 2500);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retry_after_forms),
        cmocka_unit_test(backoff_grows_with_jitter_and_honours_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
