/* outbox: the api's one writer of outbox rows. An event the api makes (an Asset's change,
 * an alert) is written in the caller's transaction; the merger's relay publishes it. */
#ifndef API_OUTBOX_H
#define API_OUTBOX_H

#include "db_pool.h"
#include "events.h"

#include <stdbool.h>

/* The one prepared statement inserting outbox rows (OUTBOX_INSERT_SQL, one JSON array of
 * rows as $1). The pool knows a prepared statement by its struct, so every writer uses this
 * one: a second struct with the same name would be prepared again ("already exists"). */
extern const struct db_stmt outbox_insert_stmt;

/* Queue env for topic with key, on conn inside the caller's transaction, in the one outbox
 * encoding of lib/asset_event.h (the row's tenant and event id are the envelope's). Returns
 * NULL with *oom false on success; the failed result (caller PQclear-s) on a database error;
 * NULL with *oom true when memory ran out. */
PGresult *outbox_put(struct db_pool *db, PGconn *conn, const char *topic, const char *key,
                     const Envelope *env, bool *oom) __attribute__((warn_unused_result));

#endif
