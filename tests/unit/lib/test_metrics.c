#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "metrics.h"

/* Offset of needle in the text, or -1. */
static long at(const struct buf *b, const char *needle)
{
    const char *p = strstr(b->data, needle);
    return p ? (long)(p - b->data) : -1;
}

static void families_are_contiguous_with_help_and_type_first(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct buf b;
    buf_init(&b, 1 << 20);
    metrics_describe(m, "reqs_total", "counter", "Requests");
    /* interleaved creation: reqs, lat, reqs (another label), undescribed gauge */
    metrics_counter_add(m, "reqs_total", "route=\"a\"", 1);
    metrics_observe(m, "lat_seconds", "route=\"a\"", 0.002);
    metrics_counter_add(m, "reqs_total", "route=\"b\"", 2);
    metrics_gauge_set(m, "plain_gauge", NULL, 3);
    assert_int_equal(metrics_render(m, &b), 0);
    long help = at(&b, "# HELP reqs_total Requests\n# TYPE reqs_total counter\n");
    long a = at(&b, "reqs_total{route=\"a\"} 1\n");
    long bb = at(&b, "reqs_total{route=\"b\"} 2\n");
    long lat = at(&b, "# TYPE lat_seconds histogram\n");
    assert_true(help >= 0 && a > help && bb > a && lat > bb);
    assert_true(
        at(&b, "# HELP plain_gauge plain_gauge\n# TYPE plain_gauge gauge\nplain_gauge 3\n") > lat);
    assert_true(at(&b, "lat_seconds_bucket{route=\"a\",le=\"0.0025\"} 1\n") > lat);
    assert_true(at(&b, "lat_seconds_bucket{route=\"a\",le=\"0.001\"} 0\n") > lat);
    buf_free(&b);
    metrics_destroy(m);
}

static void run_histograms_have_hour_buckets(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct buf b;
    buf_init(&b, 1 << 20);
    metrics_describe_histogram(m, "run_seconds", "Runs", METRICS_BUCKETS_RUN);
    metrics_observe(m, "run_seconds", NULL, 5400);
    assert_int_equal(metrics_render(m, &b), 0);
    assert_true(at(&b, "run_seconds_bucket{le=\"3600\"} 0\n") >= 0);
    assert_true(at(&b, "run_seconds_bucket{le=\"7200\"} 1\n") >= 0);
    assert_true(at(&b, "run_seconds_sum 5400\nrun_seconds_count 1\n") >= 0);
    assert_true(at(&b, "{}") < 0);
    buf_free(&b);
    metrics_destroy(m);
}

/* A family described at start shows its HELP and TYPE before its first series, once. */
static void described_family_without_series_is_announced(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct buf b;
    buf_init(&b, 1 << 20);
    metrics_describe(m, "revocations_total", "counter", "Grants found revoked");
    metrics_describe(m, "reqs_total", "counter", "Requests");
    metrics_counter_add(m, "reqs_total", NULL, 1);
    assert_int_equal(metrics_render(m, &b), 0);
    long help = at(&b, "# HELP revocations_total Grants found revoked\n"
                       "# TYPE revocations_total counter\n");
    assert_true(help >= 0);
    assert_null(strstr(b.data + help + 1, "# HELP revocations_total"));
    assert_true(at(&b, "# HELP reqs_total Requests\n# TYPE reqs_total counter\nreqs_total 1\n") >=
                0);
    assert_null(strstr(strstr(b.data, "reqs_total 1\n") + 1, "# HELP reqs_total"));
    buf_free(&b);
    metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(families_are_contiguous_with_help_and_type_first),
        cmocka_unit_test(run_histograms_have_hour_buckets),
        cmocka_unit_test(described_family_without_series_is_announced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
