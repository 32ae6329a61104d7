/* The outbox relay's backlog gauges (services/merger/relay.h): counted only when a round does
 * not tell, and 0 as soon as a round shows the outbox drained. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "relay.h"

#define BATCH 1000

static void a_round_short_of_a_full_batch_drained_the_outbox(void **state)
{
    (void)state;
    /* whatever the time since the last count: no count needed, the backlog is 0 */
    assert_int_equal(outbox_gauge_next(0, BATCH, 100.0, 99.0), OUTBOX_GAUGE_ZERO);
    assert_int_equal(outbox_gauge_next(0, BATCH, 100.0, -1), OUTBOX_GAUGE_ZERO);
    assert_int_equal(outbox_gauge_next(BATCH - 1, BATCH, 100.0, 0.0), OUTBOX_GAUGE_ZERO);
    /* a full batch is never taken for the end: more rows may wait behind it */
    assert_int_equal(outbox_gauge_next(BATCH, BATCH, 100.0, 99.0), OUTBOX_GAUGE_KEEP);
}

static void a_full_or_failed_round_counts_at_most_every_interval(void **state)
{
    (void)state;
    double t0 = 50.0, i = OUTBOX_GAUGE_COUNT_INTERVAL_S;
    assert_int_equal(outbox_gauge_next(BATCH, BATCH, t0, -1), OUTBOX_GAUGE_COUNT);
    assert_int_equal(outbox_gauge_next(-1, BATCH, t0, -1), OUTBOX_GAUGE_COUNT);
    assert_int_equal(outbox_gauge_next(BATCH, BATCH, t0 + 0.2, t0), OUTBOX_GAUGE_KEEP);
    assert_int_equal(outbox_gauge_next(-1, BATCH, t0 + i - 0.01, t0), OUTBOX_GAUGE_KEEP);
    assert_int_equal(outbox_gauge_next(BATCH, BATCH, t0 + i, t0), OUTBOX_GAUGE_COUNT);
    assert_int_equal(outbox_gauge_next(-1, BATCH, t0 + 3 * i, t0), OUTBOX_GAUGE_COUNT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_round_short_of_a_full_batch_drained_the_outbox),
        cmocka_unit_test(a_full_or_failed_round_counts_at_most_every_interval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
