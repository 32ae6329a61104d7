/* metrics: a thread-safe registry of counters, gauges and latency histograms rendered in
 * Prometheus' text format. Series are created on first use. */
#ifndef PANEL_METRICS_H
#define PANEL_METRICS_H

#include "buf.h"

struct metrics;

struct metrics *metrics_new(void);
void metrics_destroy(struct metrics *m);
/* Describe a metric family once (optional; HELP/TYPE lines). type: counter|gauge|histogram. */
void metrics_describe(struct metrics *m, const char *name, const char *type, const char *help);
/* labels: NULL or a Prometheus label list without braces, e.g. `route="/v1/people",code="200"`.
 * Names and labels are copied. */
void metrics_counter_add(struct metrics *m, const char *name, const char *labels, double v);
void metrics_gauge_set(struct metrics *m, const char *name, const char *labels, double v);
/* Observe a duration in seconds in a histogram with buckets from 1 ms to 60 s. */
void metrics_observe(struct metrics *m, const char *name, const char *labels, double seconds);
/* Append the exposition text to out. Returns 0 or -1 (out of room). */
int metrics_render(struct metrics *m, struct buf *out) __attribute__((warn_unused_result));

#endif
