/* retention: a background thread that deletes old rows in small batches, each batch a short
 * transaction of its own, so that no writer (the outbox relay, the consumer) waits on it.
 * Safe with several replicas: a round runs only while its replica holds the owner's
 * advisory lock (pg_try_advisory_lock); the others skip the round.
 *
 * Metrics: retention_pruned_rows_total{table=...} (rows deleted) and
 * retention_errors_total{table=...} (failed batches); one log line per round that deleted. */
#ifndef PANEL_RETENTION_H
#define PANEL_RETENTION_H

#include "metrics.h"

#include <stddef.h>

/* One table's rule. sql deletes at most $2 rows past the retention age $1 (seconds, as
 * bigint) and returns no rows, e.g.
 *   DELETE FROM t WHERE ctid IN (SELECT ctid FROM t WHERE at < now() - make_interval(secs => $1)
 *                                LIMIT $2)
 * Rules run in the given order (children before their parents). */
struct retention_rule {
    const char *table; /* metric label and log name */
    const char *sql;
    long long age_s; /* <= 0: the rule is off */
};

struct retention;

/* Start the thread. owner names the log lines; lock_key is the owner's advisory lock key
 * (one per owning service); rules (copied, their strings must outlive the thread) run every
 * interval_s seconds, `batch` rows per statement. metrics is borrowed. NULL with a message. */
struct retention *retention_start(const char *owner, long long lock_key, const char *pg_url,
                                  const struct retention_rule *rules, size_t nrules, int batch,
                                  int interval_s, struct metrics *metrics, char *err,
                                  size_t errlen);
/* Stop the thread (after the current batch) and free everything. NULL is allowed. */
void retention_stop(struct retention *r);

/* The two rows of a service's option table (lib/config.h) that tune its retention thread:
 * the pause between rounds and the batch size, read into members interval and batch (long
 * long) of the service's config type. Every service that prunes has them, written once here. */
/* clang-format off */
#define RETENTION_CFG_OPTIONS(type, interval, batch)                                              \
    {"PANEL_RETENTION_INTERVAL_S", CFG_INT, "300", 1, 86400, offsetof(type, interval),            \
     "pause (s) between retention rounds"},                                                       \
    {"PANEL_RETENTION_BATCH", CFG_INT, "1000", 1, 100000, offsetof(type, batch),                  \
     "rows deleted per retention statement (each its own short transaction)"}
/* clang-format on */

#endif
