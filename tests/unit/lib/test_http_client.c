#include <setjmp.h>
#include <stdbool.h>
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

/* Jitter that never varies would let every fetcher of a throttled tenant retry in step: the
 * waits of one retry number spread over their range, both halves of it. */
static void backoff_jitter_varies(void **state)
{
    (void)state;
    struct http_client_opts o = {.backoff_base_ms = 1000, .backoff_max_ms = 60000};
    long lo = 1000000, hi = -1, low_half = 0, high_half = 0;
    bool seen[101] = {false};
    int distinct = 0;
    for (int i = 0; i < 400; i++) {
        long w = http_backoff_ms(&o, 2, -1); /* 2000 ms: 1000..2000 */
        assert_in_range(w, 1000, 2000);
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
        low_half += w < 1500;
        high_half += w >= 1500;
        if (!seen[(w - 1000) / 10]) {
            seen[(w - 1000) / 10] = true;
            distinct++;
        }
    }
    assert_true(hi - lo >= 800); /* spread over most of the range */
    assert_true(low_half >= 100 && high_half >= 100);
    assert_true(distinct >= 50); /* of 101 buckets of 10 ms */
    /* a Retry-After above the jittered wait is the wait, exactly */
    assert_int_equal(http_backoff_ms(&o, 1, 7.25), 7250);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retry_after_forms),
        cmocka_unit_test(backoff_grows_with_jitter_and_honours_retry_after),
        cmocka_unit_test(backoff_jitter_varies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
