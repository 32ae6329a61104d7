/* outbox: see outbox.h. */
#include "outbox.h"

#include "asset_event.h"
#include "json.h"

#include <stdlib.h>

const struct db_stmt outbox_insert_stmt = {"outbox_put", OUTBOX_INSERT_SQL};

PGresult *outbox_put(struct db_pool *db, PGconn *conn, const char *topic, const char *key,
                     const Envelope *env, bool *oom)
{
    PGresult *res = NULL;
    char *text = NULL;
    json_t *rows = json_array(), *row = outbox_row_keyed(env, topic, key);
    *oom = !rows || !row || json_array_append(rows, row) || !(text = json_dump_compact(rows));
    if (*oom)
        goto out;
    const char *p[1] = {text};
    res = db_exec(db, conn, &outbox_insert_stmt, 1, p);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        res = NULL;
    }
out:
    free(text);
    json_decref(row);
    json_decref(rows);
    return res;
}
