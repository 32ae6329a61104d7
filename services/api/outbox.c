/* outbox: see outbox.h. */
#include "outbox.h"

#include "asset_event.h"
#include "json.h"

#include <stdlib.h>

static const struct db_stmt st_outbox = {"outbox_put", OUTBOX_INSERT_SQL};

PGresult *outbox_put_rows(struct db_conn *db, const char *rows_json)
{
    const char *p[1] = {rows_json};
    PGresult *res = db_exec(db, &st_outbox, 1, p);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        res = NULL;
    }
    return res;
}

PGresult *outbox_put(struct db_conn *db, const char *topic, const char *key, const Envelope *env,
                     bool *oom)
{
    PGresult *res = NULL;
    char *text = NULL;
    json_t *rows = json_array(), *row = outbox_row_keyed(env, topic, key);
    *oom = !rows || !row || json_array_append(rows, row) || !(text = json_dump_compact(rows));
    if (*oom)
        goto out;
    res = outbox_put_rows(db, text);
out:
    free(text);
    json_decref(row);
    json_decref(rows);
    return res;
}
