/* metrics: a thread-safe registry of counters, gauges and latency histograms rendered in
 * Prometheus' text format. Series are created on first use. */
#ifndef PANEL_METRICS_H
#define PANEL_METRICS_H

#include "buf.h"

struct metrics;

struct metrics *metrics_new(void);
void metrics_destroy(struct metrics *m);
/* Histogram bucket sets, one per kind of duration. */
enum metrics_buckets {
    METRICS_BUCKETS_REQUEST, /* 1 ms .. 60 s: HTTP requests, batches, statements (default) */
    METRICS_BUCKETS_RUN,     /* 1 s .. 12 h: whole fetch runs */
};

/* Describe a metric family once (HELP/TYPE lines, rendered even before its first series).
 * type: counter|gauge|histogram. A family never described is rendered with its name as help and
 * the type of its first series. */
void metrics_describe(struct metrics *m, const char *name, const char *type, const char *help);
/* Describe a histogram and choose its buckets; before its first observation. */
void metrics_describe_histogram(struct metrics *m, const char *name, const char *help,
                                enum metrics_buckets buckets);
/* labels: NULL or a Prometheus label list without braces, e.g. `route="/v1/people",code="200"`.
 * Names and labels are copied. */
void metrics_counter_add(struct metrics *m, const char *name, const char *labels, double v);
void metrics_gauge_set(struct metrics *m, const char *name, const char *labels, double v);
/* Observe a duration in seconds in a histogram (buckets as described; by default
 * METRICS_BUCKETS_REQUEST). */
void metrics_observe(struct metrics *m, const char *name, const char *labels, double seconds);
/* Append the exposition text to out, each family's HELP, TYPE and series together (as
 * `promtool check metrics` requires). Returns 0 or -1 (out of room). */
int metrics_render(struct metrics *m, struct buf *out) __attribute__((warn_unused_result));

#endif
