/* connections: rows of the connections table. */
#include "connections.h"

#include "crypto.h"
#include "db.h"
#include "json.h"
#include "ms_consent.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every SQL text of this module (lib/db prepares each by its name). */
static const struct db_stmt st_tenant_exists = {"conn_tenant_exists",
                                                "SELECT 1 FROM tenants WHERE tenant_id = $1"};
static const struct db_stmt st_touch = {
    "conn_touch", "INSERT INTO connections (tenant_id, provider) VALUES ($1, $2) "
                  "ON CONFLICT (tenant_id, provider) DO UPDATE SET updated_at = now() "
                  "RETURNING (SELECT status FROM connections WHERE tenant_id = $1 AND "
                  "provider = $2)"};
static const struct db_stmt st_store_google = {
    "conn_store_google",
    "UPDATE connections c SET status = $2, granted_scopes = $3::text[], "
    "missing_scopes = $4::text[], grant_sealed = decode($5, 'hex'), grant_key_id = $6, "
    "authorized_by = $7, authorized_at = now(), revoked_at = NULL, status_message = $8, "
    "next_sync_at = CASE WHEN $2 = 'connected' THEN now() + make_interval(secs => "
    "coalesce(c.sync_interval_seconds, t.sync_interval_seconds)) END, "
    "updated_at = now() FROM tenants t "
    "WHERE c.tenant_id = $1 AND c.provider = 'google' AND t.tenant_id = c.tenant_id"};
static const struct db_stmt st_store_azure = {
    "conn_store_azure",
    "UPDATE connections c SET status = 'connected', provider_tenant = $3, "
    "granted_scopes = ARRAY['" MS_PERMISSION "'], missing_scopes = '{}', "
    "grant_sealed = NULL, grant_key_id = NULL, authorized_by = $2, authorized_at = now(), "
    "revoked_at = NULL, status_message = NULL, "
    "next_sync_at = now() + make_interval(secs => coalesce(c.sync_interval_seconds, "
    "t.sync_interval_seconds)), updated_at = now() FROM tenants t "
    "WHERE c.tenant_id = $1 AND c.provider = 'azure' AND t.tenant_id = c.tenant_id"};
static const struct db_stmt st_load = {
    "conn_load", "SELECT status, coalesce(provider_tenant, ''), encode(grant_sealed, 'hex'), "
                 "coalesce(grant_key_id, ''), grant_sealed IS NULL FROM connections "
                 "WHERE tenant_id = $1 AND provider = $2"};
static const struct db_stmt st_mark_revoked = {
    "conn_mark_revoked", "UPDATE connections SET status = 'revoked', revoked_at = now(), "
                         "status_message = $3, grant_sealed = NULL, grant_key_id = NULL, "
                         "next_sync_at = NULL, updated_at = now() "
                         "WHERE tenant_id = $1 AND provider = $2 AND status = 'connected'"};
static const struct db_stmt st_deauthorize = {
    "conn_deauthorize",
    "WITH old AS (SELECT tenant_id, provider, coalesce(grant_sealed, revoke_sealed) AS s, "
    "  CASE WHEN grant_sealed IS NOT NULL THEN grant_key_id ELSE revoke_key_id END AS k "
    "  FROM connections WHERE tenant_id = $1 AND provider = $2 FOR UPDATE) "
    "UPDATE connections c SET status = 'deauthorized', grant_sealed = NULL, "
    "grant_key_id = NULL, revoke_sealed = CASE WHEN c.provider = 'google' THEN old.s END, "
    "revoke_key_id = CASE WHEN c.provider = 'google' THEN old.k END, "
    "remote_revoke_pending = (c.provider = 'google' AND old.s IS NOT NULL), "
    "provider_tenant = CASE WHEN c.provider = 'azure' THEN NULL ELSE c.provider_tenant END, "
    "next_sync_at = NULL, status_message = 'de-authorized by ' || $3, updated_at = now() "
    "FROM old WHERE c.tenant_id = old.tenant_id AND c.provider = old.provider "
    "RETURNING encode(old.s, 'hex'), coalesce(old.k, ''), old.s IS NULL"};
static const struct db_stmt st_delta_forget = {
    "conn_delta_forget", "DELETE FROM azure_delta_state WHERE tenant_id = $1"};
static const struct db_stmt st_revoke_done = {
    "conn_revoke_done", "UPDATE connections SET revoke_sealed = NULL, revoke_key_id = NULL, "
                        "remote_revoke_pending = false, updated_at = now() "
                        "WHERE tenant_id = $1 AND provider = $2"};
static const struct db_stmt st_list = {
    "conn_list",
    "SELECT json_build_object('connections', coalesce(json_agg(to_jsonb(x) - 'ord' ORDER BY "
    "x.ord), '[]')) "
    "FROM (SELECT (pr.p = 'azure')::int AS ord, pr.p AS provider, "
    "  connection_shown_status(coalesce(c.status, 'never'), mp.missing) AS status, "
    "  coalesce(c.granted_scopes, '{}') AS granted_scopes, "
    "  coalesce(c.missing_scopes, '{}') AS missing_scopes, "
    "  mp.missing AS missing_permissions, c.authorized_at, "
    "  c.authorized_by, c.revoked_at, c.status_message, c.next_sync_at, "
    "  coalesce(c.remote_revoke_pending, false) AS remote_revoke_pending, "
    "  EXISTS (SELECT 1 FROM pause_windows w WHERE w.tenant_id = $1 "
    "          AND now() >= w.starts_at AND now() < w.ends_at) AS paused, "
    "  (SELECT json_build_object('run_id', r.run_id, 'status', r.status, 'reason', r.reason, "
    "          'preview', r.preview, 'requested_at', r.requested_at, "
    "          'started_at', r.started_at, 'finished_at', r.finished_at, "
    "          'failure_reason', r.failure_reason, 'message', r.message, "
    "          'forbidden_listings', r.forbidden_listings) "
    "     FROM sync_runs r WHERE r.tenant_id = $1 AND r.source = pr.p "
    "     ORDER BY r.requested_at DESC LIMIT 1) AS last_run "
    "  FROM (VALUES ('google'), ('azure')) pr(p) "
    "  LEFT JOIN connections c ON c.tenant_id = $1 AND c.provider = pr.p "
    "  CROSS JOIN LATERAL (SELECT connection_missing_permissions($1, pr.p) AS missing) mp) x"};

bool conn_provider_valid(const char *provider)
{
    return provider && (strcmp(provider, "google") == 0 || strcmp(provider, "azure") == 0);
}

int conn_tenant_exists(struct db_conn *db, const char *tenant, char *err, size_t errlen)
{
    const char *p[] = {tenant};
    PGresult *res = db_query(db, PGRES_TUPLES_OK, &st_tenant_exists, 1, p, err, errlen);
    if (!res)
        return -1;
    int n = PQntuples(res);
    PQclear(res);
    return n == 1;
}

static void grant_aad(char *aad, size_t n, const char *tenant, const char *provider)
{
    snprintf(aad, n, "grant:%s/%s", tenant, provider);
}

/* Postgres text[] literal from a list: {"a","b"} (scopes are URLs: no quotes or braces). */
static int text_array(char *out, size_t n, const char *const *items, size_t count)
{
    size_t used = 0;
    int w = snprintf(out, n, "{");
    if (w < 0 || (size_t)w >= n)
        return -1;
    used = (size_t)w;
    for (size_t i = 0; i < count; i++) {
        if (strpbrk(items[i], "\"{},\\"))
            return -1;
        w = snprintf(out + used, n - used, "%s\"%s\"", i ? "," : "", items[i]);
        if (w < 0 || (size_t)w >= n - used)
            return -1;
        used += (size_t)w;
    }
    w = snprintf(out + used, n - used, "}");
    return (w < 0 || (size_t)w >= n - used) ? -1 : 0;
}

static enum conn_result was_connected(struct db_conn *db, const char *tenant, const char *provider,
                                      bool *first, char *err, size_t errlen)
{
    const char *p[] = {tenant, provider};
    PGresult *res = db_query(db, PGRES_TUPLES_OK, &st_touch, 2, p, err, errlen);
    if (!res)
        return CONN_ERROR;
    *first = PQgetisnull(res, 0, 0) || strcmp(PQgetvalue(res, 0, 0), "connected") != 0;
    PQclear(res);
    return CONN_OK;
}

enum conn_result conn_store_google(struct db_conn *db, const struct grants *g, const char *tenant,
                                   const char *admin, const char *refresh_token,
                                   const char *granted_scopes, const char *const *missing,
                                   size_t nmissing, bool *first, char *err, size_t errlen)
{
    enum conn_result r = CONN_ERROR;
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    char *hex = NULL, aad[160], missing_arr[1024], granted_arr[4096];
    PGresult *res = NULL;
    const char *granted[16];
    size_t ngranted = 0;
    char scopes_copy[2048];
    snprintf(scopes_copy, sizeof scopes_copy, "%s", granted_scopes ? granted_scopes : "");
    for (char *p = scopes_copy; *p && ngranted < 16;) {
        while (*p == ' ')
            *p++ = '\0';
        if (!*p)
            break;
        granted[ngranted++] = p;
        p += strcspn(p, " ");
    }
    if (text_array(missing_arr, sizeof missing_arr, missing, nmissing) ||
        text_array(granted_arr, sizeof granted_arr, granted, ngranted)) {
        snprintf(err, errlen, "granted scopes cannot be stored");
        goto out;
    }
    if (was_connected(db, tenant, "google", first, err, errlen) != CONN_OK)
        goto out;
    grant_aad(aad, sizeof aad, tenant, "google");
    if (grants_seal(g, refresh_token, strlen(refresh_token), aad, &sealed, &sealed_len) ||
        !(hex = malloc(sealed_len * 2 + 1))) {
        snprintf(err, errlen, "sealing the grant failed");
        goto out;
    }
    crypto_hex(sealed, sealed_len, hex);
    const char *status = nmissing ? "scope_missing" : "connected";
    char msg[512];
    if (nmissing)
        snprintf(msg, sizeof msg, "consent did not grant: %s%s%s", missing[0],
                 nmissing > 1 ? " and " : "", nmissing > 1 ? missing[1] : "");
    const char *p[] = {tenant,      status,
                       granted_arr, missing_arr,
                       hex,         grants_active_id(g),
                       admin,       nmissing ? msg : NULL};
    /* A scope-missing grant is kept sealed (so de-authorize can revoke it) but never used. */
    res = db_query(db, PGRES_COMMAND_OK, &st_store_google, 8, p, err, errlen);
    if (!res)
        goto out;
    if (nmissing)
        *first = false;
    r = CONN_OK;
out:
    PQclear(res);
    free(sealed);
    free(hex);
    return r;
}

enum conn_result conn_store_azure(struct db_conn *db, const char *tenant, const char *admin,
                                  const char *provider_tenant, bool *first, char *err,
                                  size_t errlen)
{
    if (was_connected(db, tenant, "azure", first, err, errlen) != CONN_OK)
        return CONN_ERROR;
    const char *p[] = {tenant, admin, provider_tenant};
    PGresult *res = db_exec(db, &st_store_azure, 3, p);
    enum conn_result r = CONN_OK;
    if (!pgx_ok(res, PGRES_COMMAND_OK, err, errlen)) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        r = state && strcmp(state, "23505") == 0 ? CONN_TAKEN : CONN_ERROR;
    }
    PQclear(res);
    return r;
}

static enum conn_result open_sealed(const struct grants *g, const char *tenant,
                                    const char *provider, const char *hex, const char *key_id,
                                    char **out, char *err, size_t errlen)
{
    char aad[160];
    size_t hl = strlen(hex);
    uint8_t *sealed = malloc(hl / 2 + 1);
    enum conn_result r = CONN_ERROR;
    long n = sealed ? crypto_hex_decode(hex, sealed, hl / 2 + 1) : -1;
    grant_aad(aad, sizeof aad, tenant, provider);
    int o = n < 0 ? -2 : grants_open(g, key_id, sealed, (size_t)n, aad, out);
    if (o == -1)
        snprintf(err, errlen, "the grant is sealed with key '%s', which is not configured", key_id);
    else if (o)
        snprintf(err, errlen, "the grant cannot be opened (wrong key or damaged)");
    else
        r = CONN_OK;
    free(sealed);
    return r;
}

enum conn_result conn_load(struct db_conn *db, const struct grants *g, const char *tenant,
                           const char *provider, struct conn_grant *out, char *err, size_t errlen)
{
    enum conn_result r = CONN_ERROR;
    const char *p[] = {tenant, provider};
    memset(out, 0, sizeof *out);
    PGresult *res = db_query(db, PGRES_TUPLES_OK, &st_load, 2, p, err, errlen);
    if (!res)
        return CONN_ERROR;
    if (PQntuples(res) != 1) {
        r = CONN_NOT_FOUND;
        goto out;
    }
    snprintf(out->status, sizeof out->status, "%s", PQgetvalue(res, 0, 0));
    snprintf(out->provider_tenant, sizeof out->provider_tenant, "%s", PQgetvalue(res, 0, 1));
    if (strcmp(PQgetvalue(res, 0, 4), "f") == 0) {
        r = open_sealed(g, tenant, provider, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
                        &out->secret, err, errlen);
        goto out;
    }
    r = CONN_OK;
out:
    PQclear(res);
    return r;
}

enum conn_result conn_mark_revoked(struct db_conn *db, const char *tenant, const char *provider,
                                   const char *message, bool *changed, char *err, size_t errlen)
{
    const char *p[] = {tenant, provider, message};
    PGresult *res = db_query(db, PGRES_COMMAND_OK, &st_mark_revoked, 3, p, err, errlen);
    if (!res)
        return CONN_ERROR;
    *changed = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return CONN_OK;
}

enum conn_result conn_deauthorize(struct db_conn *db, const struct grants *g, const char *tenant,
                                  const char *provider, const char *admin, char **revoke_token,
                                  char *err, size_t errlen)
{
    enum conn_result r = CONN_ERROR;
    const char *p[] = {tenant, provider, admin};
    *revoke_token = NULL;
    /* The grant to revoke is the current one, or one kept from an earlier failed revoke. */
    PGresult *res = db_query(db, PGRES_TUPLES_OK, &st_deauthorize, 3, p, err, errlen);
    if (!res)
        return CONN_ERROR;
    if (PQntuples(res) != 1) {
        r = CONN_NOT_FOUND;
        goto out;
    }
    if (strcmp(provider, "azure") == 0) {
        /* the delta position belongs to the forgotten directory */
        PGresult *d = db_query(db, PGRES_COMMAND_OK, &st_delta_forget, 1, p, err, errlen);
        if (!d)
            goto out;
        PQclear(d);
    }
    if (strcmp(provider, "google") == 0 && strcmp(PQgetvalue(res, 0, 2), "f") == 0) {
        r = open_sealed(g, tenant, "google", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                        revoke_token, err, errlen);
        goto out;
    }
    r = CONN_OK;
out:
    PQclear(res);
    return r;
}

int conn_revoke_done(struct db_conn *db, const char *tenant, const char *provider, char *err,
                     size_t errlen)
{
    const char *p[] = {tenant, provider};
    PGresult *res = db_query(db, PGRES_COMMAND_OK, &st_revoke_done, 2, p, err, errlen);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

json_t *conn_list_json(struct db_conn *db, const char *tenant, char *err, size_t errlen)
{
    const char *p[] = {tenant};
    json_t *out = NULL;
    /* PostgreSQL builds the JSON; both providers are listed (status 'never' when absent). */
    PGresult *res = db_query(db, PGRES_TUPLES_OK, &st_list, 1, p, err, errlen);
    if (!res)
        return NULL;
    out = pjson_parse(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), err, errlen);
    PQclear(res);
    return out;
}
