/* relay: the outbox relay that publishes unsent outbox rows, in outbox_id order, with the
 * idempotent producer and then marks them sent. Safe with several replicas: one relay at a
 * time holds a transaction-scoped advisory lock, so per-entity order is kept. */
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

#endif
