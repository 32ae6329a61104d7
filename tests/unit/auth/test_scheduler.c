/* scheduler: next due time and pause windows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "scheduler.h"

static void test_next(void **state)
{
    (void)state;
    const int64_t h4 = 4 * 3600;
    /* On time: one interval later. */
    assert_int_equal(sched_next(1000, 1000, h4), 1000 + h4);
    /* Fired a little late: the cadence stays anchored on the due time. */
    assert_int_equal(sched_next(1030, 1000, h4), 1000 + h4);
    /* After a long outage: one run now, the next on the cadence, no burst of catch-ups. */
    assert_int_equal(sched_next(1000 + 3 * h4 + 5, 1000, h4), 1000 + 4 * h4);
    assert_int_equal(sched_next(1000 + 3 * h4, 1000, h4), 1000 + 4 * h4);
    /* Defensive: a zero interval never loops forever. */
    assert_true(sched_next(10, 5, 0) > 10);
}

static void test_pause(void **state)
{
    (void)state;
    struct pause_window w[] = {{100, 200}, {500, 600}};
    assert_false(sched_paused(99, w, 2));
    assert_true(sched_paused(100, w, 2));
    assert_true(sched_paused(199, w, 2));
    assert_false(sched_paused(200, w, 2)); /* the end is exclusive */
    assert_true(sched_paused(550, w, 2));
    assert_false(sched_paused(550, w, 0));
    assert_int_equal(sched_decide(150, w, 2), SCHED_PAUSED);
    assert_int_equal(sched_decide(300, w, 2), SCHED_REQUEST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next),
        cmocka_unit_test(test_pause),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
