/* outbox: see outbox.h. */
#include "outbox.h"

#include "crypto.h"

#include <stdlib.h>

static const struct db_stmt st_outbox = {
    "outbox_put", "INSERT INTO outbox (tenant_id, event_id, topic, msg_key, payload) "
                  "VALUES ($1, $2::uuid, $3, $4, $5::bytea)"};

PGresult *outbox_put(struct db_pool *db, PGconn *conn, const char *tenant, const char *event_id,
                     const char *topic, const char *key, const Envelope *env, bool *oom)
{
    size_t len = 0;
    PGresult *res = NULL;
    uint8_t *packed = events_pack(env, &len);
    char *hex = packed ? malloc(len * 2 + 3) : NULL;
    *oom = !hex;
    if (!hex)
        goto out;
    /* bytea's hex input form */
    hex[0] = '\\';
    hex[1] = 'x';
    crypto_hex(packed, len, hex + 2);
    const char *p[5] = {tenant, event_id, topic, key, hex};
    res = db_exec(db, conn, &st_outbox, 5, p);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        res = NULL;
    }
out:
    free(packed);
    free(hex);
    return res;
}
