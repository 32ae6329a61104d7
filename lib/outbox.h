/* outbox: the one writer of outbox rows (transactional outbox, docs/events.md). Every service
 * that makes a public event (merger, api, auth) queues its envelopes in a batch and writes the
 * batch on its own connection inside its own transaction; the merger's relay publishes the
 * rows in outbox_id order once that transaction commits. The rows go to PostgreSQL as a
 * binary COPY (lib/pg.h pgx_copy): the packed envelope's bytes as they are, so the bytes the
 * relay publishes are exactly the bytes events_pack made. */
#ifndef PANEL_OUTBOX_H
#define PANEL_OUTBOX_H

#include "events.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* Rows per COPY statement (a merger batch of 2,000 events is one). */
#define OUTBOX_ROWS_PER_STATEMENT 2000

struct outbox_batch;

/* One queued row, as it will be written; every member is owned by the batch. */
struct outbox_row {
    char *tenant, *event_id, *topic, *key;
    uint8_t *payload; /* the packed envelope (events_pack) */
    size_t payload_len;
};

/* An empty batch; NULL when out of memory. Free with outbox_batch_free. */
struct outbox_batch *outbox_batch_new(void);
void outbox_batch_free(struct outbox_batch *b);

/* Pack env (borrowed; its tenant and event id become the row's) and queue it for topic with
 * the whole message key given (e.g. the district alone, for a topic ordered per district).
 * 0, or -1 with a message (out of memory, no tenant or event id). */
int outbox_batch_add(struct outbox_batch *b, const Envelope *env, const char *topic,
                     const char *key, char *err, size_t errlen) __attribute__((warn_unused_result));
/* The same keyed "<env tenant>/<entity_id>": one entity's events stay in order. */
int outbox_batch_add_entity(struct outbox_batch *b, const Envelope *env, const char *topic,
                            const char *entity_id, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Rows queued and not yet written. */
size_t outbox_batch_count(const struct outbox_batch *b);
/* Row i (borrowed until the batch changes), NULL past the end: for tests and logs. */
const struct outbox_row *outbox_batch_row(const struct outbox_batch *b, size_t i);
/* Drop the queued rows (e.g. after a rolled-back preview). */
void outbox_batch_clear(struct outbox_batch *b);

/* Insert the queued rows on pg, in the caller's transaction, in the order they were added
 * (outbox_id grows in that order), then empty the batch. 0, or -1 with a message; when the
 * database refused and failed is not NULL, *failed gets its result (caller PQclear-s; its
 * SQLSTATE says why), else *failed is NULL. On failure the batch keeps its rows and the
 * caller rolls its transaction back (a part may have been written). */
int outbox_batch_write(struct outbox_batch *b, PGconn *pg, PGresult **failed, char *err,
                       size_t errlen) __attribute__((warn_unused_result));

/* One envelope written at once (outbox_batch_add + outbox_batch_write). */
int outbox_write(PGconn *pg, const Envelope *env, const char *topic, const char *key,
                 PGresult **failed, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
