/* relay: the outbox relay that publishes unsent outbox rows, in outbox_id order, with the
 * idempotent producer and then marks them sent. Safe with several replicas: one relay at a
 * time holds a session-level advisory lock, so per-entity order is kept. */
#ifndef MERGER_RELAY_H
#define MERGER_RELAY_H

#include "kafka.h"
#include "metrics.h"

#include <stddef.h>

struct outbox_relay;

/* Start the relay thread. pg_url and brokers are copied; metrics is borrowed. Returns NULL
 * with a message in err. */
struct outbox_relay *outbox_relay_start(const char *pg_url, const char *brokers, int batch,
                                        int idle_ms, struct metrics *metrics, char *err,
                                        size_t errlen);
/* Stop the thread (finishing the current round) and free everything. */
void outbox_relay_stop(struct outbox_relay *r);

/* The backlog gauges (merger_outbox_unsent, merger_outbox_oldest_unsent_seconds) without a
 * count on every round: a round that found fewer rows than a full batch published every row
 * it saw (caught up: 0); after a full or a failed round (-1) they are counted again at most
 * every OUTBOX_GAUGE_COUNT_INTERVAL_S seconds, and keep their value in between. */
#define OUTBOX_GAUGE_COUNT_INTERVAL_S 10.0
enum outbox_gauge_action { OUTBOX_GAUGE_KEEP, OUTBOX_GAUGE_ZERO, OUTBOX_GAUGE_COUNT };
/* What to do with the gauges after a round that published round_rows of at most batch (-1:
 * the round failed), at now_s, last counted at last_count_s (negative: never); seconds on
 * one monotonic clock. */
enum outbox_gauge_action outbox_gauge_next(long round_rows, int batch, double now_s,
                                           double last_count_s);

#endif
