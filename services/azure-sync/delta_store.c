#include "delta_store.h"

#include "log.h"
#include "pg.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct delta_store {
    PGconn *conn;
};

struct delta_store *delta_store_new(const char *pg_url, char *err, size_t errlen)
{
    struct delta_store *ds = calloc(1, sizeof *ds);
    if (!ds) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ds->conn = pgx_connect(pg_url, 30, err, errlen);
    if (!ds->conn || pgx_check_schema(ds->conn, err, errlen)) {
        delta_store_destroy(ds);
        return NULL;
    }
    return ds;
}

void delta_store_destroy(struct delta_store *ds)
{
    if (!ds)
        return;
    if (ds->conn)
        PQfinish(ds->conn);
    free(ds);
}

/* Run a parameterised statement, reconnecting once when the connection was lost. */
static PGresult *exec(struct delta_store *ds, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(ds->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQstatus(ds->conn) == CONNECTION_BAD) {
        char err[256];
        PQclear(res);
        if (pgx_reset(ds->conn, err, sizeof err) != 0)
            log_warn("delta links: %s", err);
        res = PQexecParams(ds->conn, sql, n, NULL, params, NULL, NULL, 0);
    }
    return res;
}

int delta_store_load(struct delta_store *ds, const char *tenant, char **link, int64_t *last_full_s,
                     char *err, size_t errlen)
{
    const char *params[] = {tenant};
    int rc = -1;
    *link = NULL;
    *last_full_s = 0;
    PGresult *res = exec(ds,
                         "SELECT d.delta_link, extract(epoch FROM d.last_full_at)::bigint "
                         "FROM azure_delta_state d JOIN connections c ON c.tenant_id = "
                         "d.tenant_id AND c.provider = 'azure' WHERE d.tenant_id = $1 AND "
                         "lower(d.directory_id) = lower(c.provider_tenant)",
                         1, params);
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    if (PQntuples(res) == 0) {
        rc = 1;
        goto out;
    }
    *link = strdup(PQgetvalue(res, 0, 0));
    if (!*link) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    *last_full_s = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    rc = 0;
out:
    PQclear(res);
    return rc;
}

int delta_store_save(struct delta_store *ds, const char *tenant, const char *directory,
                     const char *link, int full, char *err, size_t errlen)
{
    const char *params[] = {tenant, link, full ? "t" : "f",
                            directory && *directory ? directory : NULL};
    PGresult *res = exec(ds,
                         "INSERT INTO azure_delta_state (tenant_id, delta_link, last_full_at, "
                         "directory_id) VALUES ($1, $2, CASE WHEN $3::boolean THEN now() ELSE "
                         "'epoch' END, $4) ON CONFLICT (tenant_id) DO UPDATE SET "
                         "delta_link = EXCLUDED.delta_link, updated_at = now(), "
                         "directory_id = EXCLUDED.directory_id, "
                         "last_full_at = CASE WHEN $3::boolean THEN now() "
                         "ELSE azure_delta_state.last_full_at END",
                         4, params);
    int rc = pgx_ok(res, PGRES_COMMAND_OK, err, errlen) ? 0 : -1;
    PQclear(res);
    return rc;
}

int delta_store_forget(struct delta_store *ds, const char *tenant, char *err, size_t errlen)
{
    const char *params[] = {tenant};
    PGresult *res = exec(ds, "DELETE FROM azure_delta_state WHERE tenant_id = $1", 1, params);
    int rc = pgx_ok(res, PGRES_COMMAND_OK, err, errlen) ? 0 : -1;
    PQclear(res);
    return rc;
}
