/* outbox: the api's one writer of outbox rows. An event the api makes (an Asset's change,
 * an alert) is written in the caller's transaction; the merger's relay publishes it. */
#ifndef API_OUTBOX_H
#define API_OUTBOX_H

#include "db.h"
#include "events.h"

#include <stdbool.h>

/* Every outbox row the api writes goes through these two. */
/* Queue env for topic with key, on db inside the caller's transaction, in the one outbox
 * encoding of lib/asset_event.h (the row's tenant and event id are the envelope's). Returns
 * NULL with *oom false on success; the failed result (caller PQclear-s) on a database error;
 * NULL with *oom true when memory ran out. */
PGresult *outbox_put(struct db_conn *db, const char *topic, const char *key, const Envelope *env,
                     bool *oom) __attribute__((warn_unused_result));
/* Queue the rows of rows_json (a JSON array of outbox_row_new objects, lib/asset_event.h) the
 * same way: NULL on success, else the failed result (caller PQclear-s). */
PGresult *outbox_put_rows(struct db_conn *db, const char *rows_json)
    __attribute__((warn_unused_result));

#endif
