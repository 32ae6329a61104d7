/* ratelimit: a caller's bursts, the refill over time, callers independent of each other, a
 * full table, no limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>

#include "ratelimit.h"

/* 60 a minute = one a second, bursts of 3: three at once, the fourth waits a second. */
static void a_burst_then_one_a_second(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(60, 3);
    assert_non_null(rl);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_take(rl, "apikey:a", 1000), 0);
    assert_int_equal(ratelimit_take(rl, "apikey:a", 1000), 1);
    assert_int_equal(ratelimit_take(rl, "apikey:a", 1500), 1); /* half a token: still waits */
    assert_int_equal(ratelimit_take(rl, "apikey:a", 2001), 0);
    assert_int_equal(ratelimit_take(rl, "apikey:a", 2001), 1);
    /* a long pause refills up to the burst, not beyond */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_take(rl, "apikey:a", 100000), 0);
    assert_int_equal(ratelimit_take(rl, "apikey:a", 100000), 1);
    ratelimit_free(rl);
}

/* The wait said is the time to the next token, in whole seconds, at least 1. */
static void the_wait_is_the_time_to_the_next_token(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(6, 1); /* one per 10 s */
    assert_int_equal(ratelimit_take(rl, "person:x@d.example", 0), 0);
    assert_int_equal(ratelimit_take(rl, "person:x@d.example", 0), 10);
    assert_int_equal(ratelimit_take(rl, "person:x@d.example", 9500), 1);
    assert_int_equal(ratelimit_take(rl, "person:x@d.example", 10000), 0);
    ratelimit_free(rl);
}

static void callers_do_not_share_a_bucket(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(60, 1);
    assert_int_equal(ratelimit_take(rl, "apikey:a", 0), 0);
    assert_int_not_equal(ratelimit_take(rl, "apikey:a", 0), 0);
    assert_int_equal(ratelimit_take(rl, "apikey:b", 0), 0);
    assert_int_equal(ratelimit_take(rl, "person:a@d.example", 0), 0);
    ratelimit_free(rl);
}

/* More callers than the table holds: each still gets its burst, and a caller seen recently
 * keeps its (empty) bucket. */
static void a_full_table_forgets_the_least_recent(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(60, 1);
    char name[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "apikey:k%d", i);
        assert_int_equal(ratelimit_take(rl, name, i), 0);
    }
    assert_int_not_equal(ratelimit_take(rl, "apikey:k19999", 19999), 0);
    ratelimit_free(rl);
}

static void no_limit(void **state)
{
    (void)state;
    assert_null(ratelimit_new(0, 10));
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ratelimit_take(NULL, "apikey:a", 0), 0);
    ratelimit_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_burst_then_one_a_second),
        cmocka_unit_test(the_wait_is_the_time_to_the_next_token),
        cmocka_unit_test(callers_do_not_share_a_bucket),
        cmocka_unit_test(a_full_table_forgets_the_least_recent),
        cmocka_unit_test(no_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
