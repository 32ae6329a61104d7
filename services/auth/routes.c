/* routes: HTTP handlers of the auth service. */
#include "routes.h"

#include "callers.h"
#include "connections.h"
#include "consent_session.h"
#include "crypto.h"
#include "db.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "pg.h"
#include "publish.h"
#include "router.h"
#include "states.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every SQL text of this module (lib/db prepares each by its name). */
static const struct db_stmt st_directory_taken = {
    "routes_directory_taken", "SELECT 1 FROM connections WHERE provider = 'azure' AND "
                              "lower(provider_tenant) = lower($2) AND tenant_id <> $1"};
static const struct db_stmt st_conn_pending = {
    "routes_conn_pending", "INSERT INTO connections (tenant_id, provider, status) VALUES ($1, $2, "
                           "'pending') ON CONFLICT (tenant_id, provider) DO UPDATE SET status = "
                           "'pending', updated_at = now() WHERE connections.status = 'never'"};
static const struct db_stmt st_conn_connected = {
    "routes_conn_connected", "SELECT 1 FROM connections WHERE tenant_id = $1 AND "
                             "provider = $2 AND status = 'connected' FOR SHARE"};
static const struct db_stmt st_interval_set = {
    "routes_interval_set",
    "WITH t AS (UPDATE tenants SET sync_interval_seconds = $2::int "
    "WHERE tenant_id = $1 RETURNING tenant_id) "
    "UPDATE connections c SET next_sync_at = least(c.next_sync_at, "
    "coalesce(c.last_requested_at, now()) + make_interval(secs => $2::int)), "
    "updated_at = now() FROM t WHERE c.tenant_id = t.tenant_id "
    "AND c.status = 'connected' AND c.sync_interval_seconds IS NULL"};
static const struct db_stmt st_windows_clear = {"routes_windows_clear",
                                                "DELETE FROM pause_windows WHERE tenant_id = $1"};
static const struct db_stmt st_window_add = {
    "routes_window_add", "INSERT INTO pause_windows (tenant_id, starts_at, ends_at, reason) "
                         "VALUES ($1, $2::timestamptz, $3::timestamptz, $4)"};
static const struct db_stmt st_settings = {
    "routes_settings",
    "SELECT json_build_object('sync_interval_seconds', t.sync_interval_seconds, "
    "'pause_windows', coalesce((SELECT json_agg(json_build_object('starts_at', "
    "w.starts_at, 'ends_at', w.ends_at, 'reason', w.reason) ORDER BY w.starts_at) "
    "FROM pause_windows w WHERE w.tenant_id = t.tenant_id), '[]')) "
    "FROM tenants t WHERE t.tenant_id = $1"};

#define BODY_MAX  (16 * 1024)
#define PARAM_MAX 4096

bool routes_valid_actor(const char *s)
{
    if (!s)
        return false;
    if (strncmp(s, "person:", 7) == 0)
        return ids_email_valid(s + 7);
    if (strncmp(s, "apikey:", 7) != 0)
        return false;
    size_t n = strlen(s + 7);
    if (n < 1 || n > 40)
        return false;
    for (const char *k = s + 7; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '-' || *k == '_'))
            return false;
    return true;
}

/* ------------------------------------------------------------------ helpers */

static int reply_err(struct mg_connection *conn, int status, const char *code, const char *msg)
{
    return httpd_reply_error(conn, status, code, msg);
}

static int reply_db(struct mg_connection *conn, const char *tenant, const char *err)
{
    log_error_t(tenant, NULL, "database: %s", err);
    return reply_err(conn, 503, "unavailable", "the database is unavailable");
}

static void rollback(struct db_conn *db)
{
    if (db && PQtransactionStatus(db_pg(db)) != PQTRANS_IDLE)
        PQclear(PQexec(db_pg(db), "ROLLBACK"));
}

/* Redirect the browser to the admin page with the flow's outcome. */
static int redirect_admin(struct mg_connection *conn, struct auth_ctx *c, const char *provider,
                          const char *result, const char *message)
{
    struct buf loc;
    int status;
    buf_init(&loc, 8192);
    if (buf_appends(&loc, "Location: ") || buf_appends(&loc, c->admin_url) ||
        buf_appendf(&loc, "#cloud-sync?provider=%s&result=%s", provider, result) ||
        (message && (buf_appends(&loc, "&message=") || buf_append_urlencoded(&loc, message))) ||
        buf_appends(&loc, "\r\nCache-Control: no-store\r\n")) {
        buf_free(&loc);
        return reply_err(conn, 500, "internal", "redirect too long");
    }
    status = httpd_reply(conn, 302, "text/plain", "", 0, loc.data);
    buf_free(&loc);
    return status;
}

/* Parse the body the router read (within BODY_MAX) as a JSON object. Replies and returns
 * NULL on failure. */
static json_t *read_json(struct router_req *q, bool required)
{
    char err[160];
    if (q->body.len == 0 && !required)
        return json_object();
    json_t *j = pjson_parse(q->body.data ? q->body.data : "", q->body.len, err, sizeof err);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        reply_err(q->conn, 400, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* The {tenant} of the path; NULL after a 400 invalid_tenant reply when it is not a tenant
 * id. */
static const char *path_tenant(struct router_req *q)
{
    const char *tenant = router_param(q, "tenant");
    if (!ids_tenant_valid(tenant)) {
        reply_err(q->conn, 400, "invalid_tenant", "invalid tenant id");
        return NULL;
    }
    return tenant;
}

/* The "actor" member: required; who acts, as the api authenticated them ("person:<email>" or
 * "apikey:<key_id>"), recorded in the audit fields. Replies and returns NULL when invalid. */
static const char *body_actor(struct mg_connection *conn, const json_t *body)
{
    const char *actor = NULL;
    if (pjson_get_str(body, "actor", &actor) != PJSON_OK || !routes_valid_actor(actor)) {
        reply_err(conn, 400, "invalid_argument",
                  "\"actor\" must be \"person:<email>\" or \"apikey:<key id>\"");
        return NULL;
    }
    return actor;
}

static int tenant_check(struct mg_connection *conn, struct db_conn *db, const char *tenant)
{
    char err[256];
    int e = conn_tenant_exists(db, tenant, err, sizeof err);
    if (e < 0)
        return reply_db(conn, tenant, err);
    if (e == 0)
        return reply_err(conn, 404, "unknown_tenant", "no such tenant");
    return 0;
}

/* What every admin action starts with: the {tenant} of the path, the JSON body and who acts
 * (its "actor"). 0 with all three set (caller json_decref-s *body), or the status of the 400
 * sent (nothing to free then). */
static int admin_action(struct router_req *q, const char **tenant, json_t **body,
                        const char **actor)
{
    if (!(*tenant = path_tenant(q)) || !(*body = read_json(q, true)))
        return 400;
    if (!(*actor = body_actor(q->conn, *body))) {
        json_decref(*body);
        *body = NULL;
        return 400;
    }
    return 0;
}

/* ------------------------------------------------------------------ authorize */

/* Whether another district holds the Microsoft directory: 1 yes, 0 no, -1 database error. */
static int directory_taken(struct db_conn *db, const char *tenant, const char *directory, char *err,
                           size_t errlen)
{
    const char *p[] = {tenant, directory};
    PGresult *res = db_query(db, PGRES_TUPLES_OK, &st_directory_taken, 2, p, err, errlen);
    if (!res)
        return -1;
    int taken = PQntuples(res) > 0;
    PQclear(res);
    return taken;
}

/* A consent is started by a signed-in admin (never an API key) and bound to that session;
 * a Microsoft consent is for the directory of the session's own Microsoft sign-in. */
static int handle_authorize(struct router_req *q, const char *provider)
{
    struct db_conn *db = NULL;
    struct mg_connection *conn = q->conn;
    struct auth_ctx *c = q->ctx;
    const char *tenant, *admin, *session_hash = NULL;
    int status;
    char err[256];
    struct buf url;
    struct state_new st;
    struct consent_session cs;
    json_t *body = NULL, *out = NULL;
    if ((status = admin_action(q, &tenant, &body, &admin)))
        return status;
    buf_init(&url, 8192);
    if (strncmp(admin, "person:", 7) != 0) {
        status = reply_err(conn, 403, "session_required",
                           "a cloud is connected by a signed-in admin, not with an API key");
        goto out;
    }
    if (pjson_get_str(body, "session_hash", &session_hash) != PJSON_OK ||
        !consent_session_hash_valid(session_hash)) {
        status = reply_err(conn, 400, "invalid_argument",
                           "\"session_hash\" (the signed-in session that starts the consent) "
                           "is required");
        goto out;
    }
    if (!(db = router_db(q, c->db, AUTH_DB_WAIT_MS, &status)))
        goto out;
    if ((status = tenant_check(conn, db, tenant)))
        goto out;
    enum consent_session_result sr =
        consent_session_load(db, tenant, session_hash, &cs, err, sizeof err);
    if (sr == CONSENT_SESSION_ERROR) {
        status = reply_db(conn, tenant, err);
        goto out;
    }
    if (sr != CONSENT_SESSION_OK) {
        status = reply_err(conn, 403, "session_required",
                           "the session has ended; sign in again to connect a cloud");
        goto out;
    }
    bool google = strcmp(provider, "google") == 0;
    const char *client_id = google ? c->google.client_id : c->ms.client_id;
    if (!client_id || !*client_id) {
        status = reply_err(conn, 503, "not_configured",
                           google ? "PANEL_GOOGLE_CLIENT_ID is not configured"
                                  : "PANEL_MS_CLIENT_ID is not configured");
        goto out;
    }
    /* The directory comes from the admin's verified Microsoft sign-in, never from a value
     * the browser can edit. */
    const char *directory = NULL;
    if (!google) {
        if (strcmp(cs.provider, "microsoft") != 0 || !ids_directory_valid(cs.provider_tenant)) {
            status = reply_err(conn, 409, "microsoft_signin_required",
                               "sign in with Microsoft first: Panel connects the Microsoft "
                               "directory of the account you sign in with");
            goto out;
        }
        directory = cs.provider_tenant;
        int t = directory_taken(db, tenant, directory, err, sizeof err);
        if (t < 0) {
            status = reply_db(conn, tenant, err);
            goto out;
        }
        if (t) {
            status = reply_err(conn, 409, "directory_taken",
                               "this Microsoft directory is already connected to another "
                               "district");
            goto out;
        }
    }
    const char *redirect = google ? c->google.redirect_uri : c->ms.redirect_uri;
    struct state_binding b = {admin, session_hash, directory};
    if (states_create(db, c->grants, tenant, provider, &b, redirect, c->state_ttl_s, &st, err,
                      sizeof err)) {
        status = reply_db(conn, tenant, err);
        goto out;
    }
    const char *p[] = {tenant, provider};
    PQclear(db_query(db, PGRES_COMMAND_OK, &st_conn_pending, 2, p, err, sizeof err));
    /* The signed-in person is the likely cloud admin: offered as the login hint. */
    const char *hint = admin + 7;
    int u = google ? google_consent_url(&url, &c->google, st.state, st.nonce, st.challenge, hint)
                   : ms_consent_url(&url, &c->ms, directory, st.state, hint);
    if (u) {
        status = reply_err(conn, 500, "internal", "consent URL too long");
        goto out;
    }
    log_info_t(tenant, NULL, "%s authorization started by %s", provider, admin);
    out = json_pack("{s:s}", "consent_url", url.data);
    status = httpd_reply_json(conn, 200, out);
out:
    db_put(db);
    json_decref(body);
    json_decref(out);
    buf_free(&url);
    return status;
}

/* ------------------------------------------------------------------ callbacks */

static int state_error(struct mg_connection *conn, enum state_result sr)
{
    if (sr == STATE_ERROR)
        return reply_err(conn, 503, "unavailable", "the state could not be checked");
    return reply_err(conn, 400, "invalid_state", state_result_str(sr));
}

/* The callback must come from the browser of the live session that started the consent.
 * Replies (400 invalid_state, nothing stored) and returns non-zero when it does not. */
static int session_refused(struct mg_connection *conn, struct db_conn *db, const char *provider,
                           const struct state_info *si)
{
    char err[256];
    struct consent_session cs;
    if (!consent_session_cookie_matches(mg_get_header(conn, "Cookie"), si->session_hash)) {
        log_warn_t(si->tenant, NULL,
                   "%s callback refused: not in the browser of the session that started it",
                   provider);
        return reply_err(conn, 400, "invalid_state",
                         "this consent was started in another browser or by another "
                         "session; sign in and start it again from the admin page");
    }
    enum consent_session_result r =
        consent_session_load(db, si->tenant, si->session_hash, &cs, err, sizeof err);
    if (r == CONSENT_SESSION_ERROR)
        return reply_db(conn, si->tenant, err);
    if (r != CONSENT_SESSION_OK) {
        log_warn_t(si->tenant, NULL, "%s callback refused: the session has ended", provider);
        return reply_err(conn, 400, "invalid_state",
                         "the session that started this consent has ended; sign in and start "
                         "it again");
    }
    return 0;
}

/* Every consent callback starts here: consume its state (provider as stored, "google" or
 * "azure"; label names it in the logs) and check the browser's session. 0 with si filled, or
 * the status of the refusal sent. */
static int callback_state(struct mg_connection *conn, struct auth_ctx *c, struct db_conn *db,
                          const char *provider, const char *label, const char *state,
                          struct state_info *si)
{
    char err[512];
    enum state_result sr = states_consume(db, c->grants, provider, state, si, err, sizeof err);
    if (sr != STATE_OK) {
        log_warn("%s callback refused: %s", label, state_result_str(sr));
        return state_error(conn, sr);
    }
    return session_refused(conn, db, label, si);
}

/* After a connection was stored inside the open transaction: request the first sync and
 * write the AUTHORIZED event when this is the first authorization, commit, publish. */
static int finish_authorized(struct auth_ctx *c, struct db_conn *db, const char *tenant,
                             const char *provider, const char *admin, bool first,
                             const char *const *scopes, size_t nscopes, char *err, size_t errlen)
{
    char run_id[37];
    bool coalesced = false;
    if (first && (sync_request_add(c, db, tenant, provider, "authorized", false, admin, run_id,
                                   &coalesced, err, errlen) ||
                  outbox_auth_event(db, tenant, provider, PB_AUTH_EVENT_KIND_AUTHORIZED, scopes,
                                    nscopes, NULL, admin, err, errlen)))
        return -1;
    if (pgx_exec(db_pg(db), "COMMIT", err, errlen))
        return -1;
    if (first) {
        char perr[256];
        if (publish_pending_requests(c, db, perr, sizeof perr) < 0)
            log_error_t(tenant, NULL,
                        "first sync request not published yet (the scheduler retries): %s", perr);
    }
    log_info_t(tenant, NULL, "%s connected by %s", provider, admin);
    return 0;
}

static int handle_google_callback(struct router_req *q)
{
    struct mg_connection *conn = q->conn;
    struct auth_ctx *c = q->ctx;
    const struct mg_request_info *ri = q->ri;
    char state[STATE_LEN_MAX], code[PARAM_MAX], error[256], scope[PARAM_MAX], err[512];
    struct state_info si;
    struct google_tokens tok = {0};
    int status;
    struct db_conn *db = NULL;
    if (httpd_query_param(ri, "state", state, sizeof state) ||
        httpd_query_param(ri, "code", code, sizeof code) ||
        httpd_query_param(ri, "error", error, sizeof error) ||
        httpd_query_param(ri, "scope", scope, sizeof scope))
        return reply_err(conn, 400, "invalid_state", "a parameter is too long or invalid");
    if (!(db = router_db(q, c->db, AUTH_DB_WAIT_MS, &status)))
        return status;
    if ((status = callback_state(conn, c, db, "google", "google", state, &si)))
        goto out;
    if (*error) {
        bool denied = strcmp(error, "access_denied") == 0;
        log_info_t(si.tenant, NULL, "google consent not given: %s", error);
        status = redirect_admin(conn, c, "google", denied ? "denied" : "error",
                                denied ? "consent was denied at Google" : error);
        goto out;
    }
    if (!*code) {
        status = redirect_admin(conn, c, "google", "error", "Google returned no code");
        goto out;
    }
    struct http_client *h = ctx_http(c, err, sizeof err);
    enum google_result gr =
        h ? google_exchange_code(h, &c->google, code, si.verifier, &tok) : GOOGLE_UNAVAILABLE;
    if (gr != GOOGLE_OK) {
        log_warn_t(si.tenant, NULL, "google code exchange failed: %s (%s)", google_result_str(gr),
                   tok.message);
        status = redirect_admin(conn, c, "google", "error", "the code exchange at Google failed");
        goto out;
    }
    if (!tok.refresh_token) {
        status = redirect_admin(conn, c, "google", "error",
                                "Google returned no refresh token; authorize again");
        goto out;
    }
    /* Who consented, for which Workspace. A refused grant is dropped, not revoked: at Google
     * it may be the same grant another district's connection uses. */
    char customer[CONSENT_CUSTOMER_MAX], why[512];
    if (consent_identity_check(&c->google_identity, h, tok.id_token, si.nonce, si.admin,
                               tok.access_token, customer, why, sizeof why) != CONSENT_ID_OK) {
        log_warn_t(si.tenant, NULL, "google consent refused: %s", why);
        status = redirect_admin(conn, c, "google", "error", why);
        goto out;
    }
    const char *missing[GOOGLE_NSCOPES];
    size_t nmissing = google_missing_scopes(tok.scope ? tok.scope : scope, missing);
    bool first = false;
    if (pgx_exec(db_pg(db), "BEGIN", err, sizeof err) ||
        conn_store_google(db, c->grants, si.tenant, si.admin, tok.refresh_token,
                          tok.scope ? tok.scope : scope, missing, nmissing, &first, err,
                          sizeof err) != CONN_OK) {
        rollback(db);
        log_error_t(si.tenant, NULL, "storing the google grant failed: %s", err);
        status = redirect_admin(conn, c, "google", "error", "the grant could not be stored");
        goto out;
    }
    if (consent_identity_bind(db, si.tenant, customer, why, sizeof why) != CONSENT_ID_OK) {
        rollback(db);
        log_warn_t(si.tenant, NULL, "google consent refused: %s", why);
        status = redirect_admin(conn, c, "google", "error", why);
        goto out;
    }
    if (nmissing) {
        char msg[512];
        snprintf(msg, sizeof msg, "consent did not grant %s", missing[0]);
        if (outbox_auth_event(db, si.tenant, "google", PB_AUTH_EVENT_KIND_SCOPE_MISSING, missing,
                              nmissing, msg, si.admin, err, sizeof err) ||
            pgx_exec(db_pg(db), "COMMIT", err, sizeof err)) {
            rollback(db);
            log_error_t(si.tenant, NULL, "storing the google grant failed: %s", err);
            status = redirect_admin(conn, c, "google", "error", "the grant could not be stored");
            goto out;
        }
        log_warn_t(si.tenant, NULL, "google consent is missing %zu scope(s)", nmissing);
        status = redirect_admin(conn, c, "google", "error", msg);
        goto out;
    }
    if (finish_authorized(c, db, si.tenant, "google", si.admin, first, google_scopes,
                          GOOGLE_NSCOPES, err, sizeof err)) {
        rollback(db);
        log_error_t(si.tenant, NULL, "finishing the google authorization failed: %s", err);
        status = redirect_admin(conn, c, "google", "error", "the grant could not be stored");
        goto out;
    }
    status = redirect_admin(conn, c, "google", "connected", NULL);
out:
    db_put(db);
    google_tokens_clear(&tok);
    memset(&si, 0, sizeof si);
    memset(code, 0, sizeof code);
    return status;
}

static int handle_ms_callback(struct router_req *q)
{
    struct db_conn *db = NULL;
    struct mg_connection *conn = q->conn;
    struct auth_ctx *c = q->ctx;
    const struct mg_request_info *ri = q->ri;
    char state[STATE_LEN_MAX], error[256], consent[16], tenant_id[160], err[512];
    struct state_info si;
    struct ms_token tok = {0};
    int status;
    if (httpd_query_param(ri, "state", state, sizeof state) ||
        httpd_query_param(ri, "error", error, sizeof error) ||
        httpd_query_param(ri, "admin_consent", consent, sizeof consent) ||
        httpd_query_param(ri, "tenant", tenant_id, sizeof tenant_id))
        return reply_err(conn, 400, "invalid_state", "a parameter is too long or invalid");
    if (!(db = router_db(q, c->db, AUTH_DB_WAIT_MS, &status)))
        return status;
    /* Never trust the returned tenant before the state is checked. */
    if ((status = callback_state(conn, c, db, "azure", "microsoft", state, &si)))
        goto out;
    if (*error) {
        bool denied = strcmp(error, "access_denied") == 0 || strcmp(error, "consent_required") == 0;
        log_info_t(si.tenant, NULL, "microsoft consent not given: %s", error);
        status = redirect_admin(conn, c, "azure", denied ? "denied" : "error",
                                denied ? "consent was denied at Microsoft" : error);
        goto out;
    }
    if (strcasecmp(consent, "true") != 0 || !ids_directory_valid(tenant_id)) {
        status = redirect_admin(conn, c, "azure", "error", "Microsoft did not confirm consent");
        goto out;
    }
    /* The returned tenant is only a claim: it must be the directory of the admin's own
     * verified Microsoft sign-in, which the state carries. */
    if (!ids_directory_valid(si.provider_tenant) ||
        strcasecmp(tenant_id, si.provider_tenant) != 0) {
        log_warn_t(si.tenant, NULL,
                   "microsoft callback refused: it names directory %s, the consent was started "
                   "for %s",
                   tenant_id, *si.provider_tenant ? si.provider_tenant : "(none)");
        status = redirect_admin(conn, c, "azure", "error",
                                "the consent came back for another Microsoft directory than the "
                                "one you signed in with; nothing was connected");
        goto out;
    }
    /* The consent is proven by a client-credentials token for that directory. */
    struct http_client *h = ctx_http(c, err, sizeof err);
    enum ms_result mr = h ? ms_client_token(h, &c->ms, tenant_id, &tok) : MS_UNAVAILABLE;
    if (mr != MS_OK) {
        log_warn_t(si.tenant, NULL, "microsoft consent check failed: %s (%s)", ms_result_str(mr),
                   tok.message);
        status = redirect_admin(conn, c, "azure", "error",
                                "the consent could not be confirmed with Microsoft");
        goto out;
    }
    bool first = false;
    static const char *const scopes[] = {MS_PERMISSION};
    if (pgx_exec(db_pg(db), "BEGIN", err, sizeof err)) {
        status = redirect_admin(conn, c, "azure", "error", "the consent could not be stored");
        goto out;
    }
    enum conn_result cr =
        conn_store_azure(db, si.tenant, si.admin, si.provider_tenant, &first, err, sizeof err);
    if (cr == CONN_TAKEN) {
        rollback(db);
        log_warn_t(si.tenant, NULL, "microsoft consent refused: directory %s has another district",
                   si.provider_tenant);
        status = redirect_admin(conn, c, "azure", "error",
                                "this Microsoft directory is already connected to another "
                                "district; nothing was connected");
        goto out;
    }
    if (cr != CONN_OK ||
        finish_authorized(c, db, si.tenant, "azure", si.admin, first, scopes, 1, err, sizeof err)) {
        rollback(db);
        log_error_t(si.tenant, NULL, "storing the microsoft consent failed: %s", err);
        status = redirect_admin(conn, c, "azure", "error", "the consent could not be stored");
        goto out;
    }
    status = redirect_admin(conn, c, "azure", "connected", NULL);
out:
    db_put(db);
    ms_token_clear(&tok);
    return status;
}

/* ------------------------------------------------------------------ token */

/* The provider refused the grant: mark the connection revoked. Borrows its own database
 * connection: the token request gave its back before calling the provider. */
static int revoked_now(struct router_req *q, const char *tenant, const char *provider,
                       const char *message)
{
    struct mg_connection *conn = q->conn;
    struct auth_ctx *c = q->ctx;
    char err[256], labels[64];
    bool changed = false;
    int status;
    struct db_conn *db = router_db(q, c->db, AUTH_DB_WAIT_MS, &status);
    if (!db)
        return status;
    /* the status change and its REVOKED event commit together */
    if (pgx_exec(db_pg(db), "BEGIN", err, sizeof err) ||
        conn_mark_revoked(db, tenant, provider, message, &changed, err, sizeof err) != CONN_OK ||
        (changed && outbox_auth_event(db, tenant, provider, PB_AUTH_EVENT_KIND_REVOKED, NULL, 0,
                                      message, NULL, err, sizeof err)) ||
        pgx_exec(db_pg(db), "COMMIT", err, sizeof err)) {
        rollback(db);
        db_put(db);
        return reply_db(conn, tenant, err);
    }
    db_put(db);
    if (changed) {
        log_warn_t(tenant, NULL, "%s grant revoked at the provider: %s", provider, message);
        snprintf(labels, sizeof labels, "provider=\"%s\"", provider);
        metrics_counter_add(c->metrics, "auth_revocations_total", labels, 1);
    }
    return reply_err(conn, 409, "revoked", "the authorization was revoked at the provider");
}

static int status_reply(struct mg_connection *conn, const char *status)
{
    if (strcmp(status, "revoked") == 0)
        return reply_err(conn, 409, "revoked", "the authorization was revoked; re-authorize");
    if (strcmp(status, "scope_missing") == 0)
        return reply_err(conn, 409, "scope_missing",
                         "the consent is missing a required scope; re-authorize");
    return reply_err(conn, 404, "not_connected", "the tenant has not connected this cloud");
}

/* auth_token_requests_total: the result follows from the status answered. */
static void count_token_request(struct auth_ctx *c, const char *provider, int status)
{
    char labels[96];
    const char *result = status == 200   ? "ok"
                         : status == 400 ? "invalid"
                         : status == 403 ? "refused"
                         : status == 404 ? "not_connected"
                         : status == 409 ? "not_usable"
                         : status == 502 ? "provider_error"
                                         : "error";
    /* Only the two provider names become label values: the body is untrusted. */
    snprintf(labels, sizeof labels, "provider=\"%s\",result=\"%s\"",
             provider && conn_provider_valid(provider) ? provider : "none", result);
    metrics_counter_add(c->metrics, "auth_token_requests_total", labels, 1);
}

/* A fetcher obtains its own cloud's access tokens only. */
static bool token_provider_allowed(enum caller_id who, const char *provider)
{
    return (who == CALLER_GOOGLE_SYNC && strcmp(provider, "google") == 0) ||
           (who == CALLER_AZURE_SYNC && strcmp(provider, "azure") == 0);
}

static int handle_token(struct router_req *q)
{
    struct db_conn *db = NULL;
    struct mg_connection *conn = q->conn;
    struct auth_ctx *c = q->ctx;
    enum caller_id who = q->caller;
    char err[512];
    int status;
    struct conn_grant cg = {0};
    struct google_tokens gt = {0};
    struct ms_token mt = {0};
    json_t *out = NULL, *body = read_json(q, true);
    const char *tenant = NULL, *provider = NULL;
    if (!body) {
        count_token_request(c, NULL, 400);
        return 400;
    }
    if (pjson_get_str(body, "tenant_id", &tenant) != PJSON_OK || !ids_tenant_valid(tenant) ||
        pjson_get_str(body, "provider", &provider) != PJSON_OK || !conn_provider_valid(provider)) {
        status = reply_err(conn, 400, "invalid_argument",
                           "\"tenant_id\" and \"provider\" (google|azure) are required");
        goto out;
    }
    if (!token_provider_allowed(who, provider)) {
        status = callers_reply_refused(conn, CALLERS_FORBIDDEN, who);
        goto out;
    }
    if (!(db = router_db(q, c->db, AUTH_DB_WAIT_MS, &status)))
        goto out;
    enum conn_result cr = conn_load(db, c->grants, tenant, provider, &cg, err, sizeof err);
    if (cr == CONN_NOT_FOUND) {
        status = reply_err(conn, 404, "not_connected", "the tenant has not connected this cloud");
        goto out;
    }
    if (cr != CONN_OK) {
        log_error_t(tenant, NULL, "loading the %s grant failed: %s", provider, err);
        status = reply_err(conn, 500, "internal", "the grant could not be loaded");
        goto out;
    }
    if (strcmp(cg.status, "connected") != 0) {
        status = status_reply(conn, cg.status);
        goto out;
    }
    /* The provider's token endpoint may take seconds: give the connection back first, so a
     * slow provider cannot use up the pool that every other request needs. */
    db_put(db);
    db = NULL;
    struct http_client *h = ctx_http(c, err, sizeof err);
    if (!h) {
        status = reply_err(conn, 500, "internal", "no HTTP client");
        goto out;
    }
    if (strcmp(provider, "google") == 0) {
        if (!cg.secret) {
            status = reply_err(conn, 404, "not_connected", "no grant is stored");
            goto out;
        }
        enum google_result gr = google_refresh(h, &c->google, cg.secret, &gt);
        if (gr == GOOGLE_INVALID_GRANT) {
            status = revoked_now(q, tenant, provider, gt.message);
            goto out;
        }
        if (gr != GOOGLE_OK) {
            log_warn_t(tenant, NULL, "google refresh failed: %s (%s)", google_result_str(gr),
                       gt.message);
            status = reply_err(conn, 502, "provider_unavailable",
                               "Google's token endpoint did not answer usefully");
            goto out;
        }
        out = json_pack("{s:s, s:I, s:s, s:n}", "access_token", gt.access_token, "expires_in",
                        (json_int_t)gt.expires_in, "token_type", "Bearer", "provider_tenant");
    } else {
        enum ms_result mr = ms_client_token(h, &c->ms, cg.provider_tenant, &mt);
        if (mr == MS_REVOKED) {
            status = revoked_now(q, tenant, provider, mt.message);
            goto out;
        }
        if (mr != MS_OK) {
            if (mr == MS_SECRET_INVALID)
                log_error_t(tenant, NULL,
                            "microsoft rejected the app's client secret (%s): the operator must "
                            "rotate PANEL_MS_CLIENT_SECRET",
                            mt.message);
            else
                log_warn_t(tenant, NULL, "microsoft token failed: %s (%s)", ms_result_str(mr),
                           mt.message);
            status = reply_err(conn, 502, "provider_unavailable",
                               mr == MS_SECRET_INVALID
                                   ? "the app's client secret is invalid or expired"
                                   : "Microsoft's token endpoint did not answer usefully");
            goto out;
        }
        out = json_pack("{s:s, s:I, s:s, s:s}", "access_token", mt.access_token, "expires_in",
                        (json_int_t)mt.expires_in, "token_type", "Bearer", "provider_tenant",
                        cg.provider_tenant);
    }
    if (!out) {
        status = reply_err(conn, 500, "internal", "out of memory");
        goto out;
    }
    status = httpd_reply_json(conn, 200, out);
out:
    count_token_request(c, provider, status);
    db_put(db);
    grants_free_secret(cg.secret);
    google_tokens_clear(&gt);
    ms_token_clear(&mt);
    json_decref(out);
    json_decref(body);
    return status;
}

/* ------------------------------------------------------------------ deauthorize */

static int handle_deauthorize(struct router_req *q, const char *provider)
{
    struct db_conn *db = NULL;
    struct mg_connection *conn = q->conn;
    struct auth_ctx *c = q->ctx;
    const char *tenant, *admin;
    char err[512], msg[256] = "";
    char *token = NULL;
    int status;
    json_t *out = NULL, *body = NULL;
    if ((status = admin_action(q, &tenant, &body, &admin)))
        return status;
    if (!(db = router_db(q, c->db, AUTH_DB_WAIT_MS, &status)))
        goto out;
    /* The connection's change and its DEAUTHORIZED event commit together; the remote revoke
     * (an HTTP call) comes after the commit. */
    if (pgx_exec(db_pg(db), "BEGIN", err, sizeof err)) {
        status = reply_db(conn, tenant, err);
        goto out;
    }
    enum conn_result cr =
        conn_deauthorize(db, c->grants, tenant, provider, admin, &token, err, sizeof err);
    if (cr == CONN_NOT_FOUND) {
        rollback(db);
        status = reply_err(conn, 404, "not_connected", "the tenant has not connected this cloud");
        goto out;
    }
    char oerr[512];
    if (outbox_auth_event(db, tenant, provider, PB_AUTH_EVENT_KIND_DEAUTHORIZED, NULL, 0, NULL,
                          admin, oerr, sizeof oerr) ||
        pgx_exec(db_pg(db), "COMMIT", oerr, sizeof oerr)) {
        rollback(db);
        grants_free_secret(token);
        token = NULL;
        status = reply_db(conn, tenant, oerr);
        goto out;
    }
    if (cr != CONN_OK) {
        /* The grant is deleted even when it cannot be opened; only the remote revoke waits. */
        log_error_t(tenant, NULL, "de-authorize: %s", err);
    }
    const char *remote = "done";
    if (token) {
        struct http_client *h = ctx_http(c, err, sizeof err);
        enum google_result gr =
            h ? google_revoke(h, &c->google, token, msg, sizeof msg) : GOOGLE_UNAVAILABLE;
        if (gr == GOOGLE_OK) {
            if (conn_revoke_done(db, tenant, provider, err, sizeof err))
                log_error_t(tenant, NULL, "de-authorize: %s", err);
        } else {
            remote = "pending";
            log_warn_t(tenant, NULL, "revoke at Google failed (%s); it will be retried", msg);
        }
    } else if (cr != CONN_OK) {
        remote = "pending";
    }
    log_info_t(tenant, NULL, "%s de-authorized by %s (remote revoke %s)", provider, admin, remote);
    out = json_pack("{s:s, s:s}", "status", "deauthorized", "remote_revoke", remote);
    if (out && strcmp(provider, "azure") == 0)
        json_object_set_new(out, "message",
                            json_string("Syncing stopped and the consent is forgotten. To remove "
                                        "the app from your directory, delete it in the Microsoft "
                                        "Entra admin center under Enterprise applications."));
    status = httpd_reply_json(conn, 200, out);
out:
    db_put(db);
    grants_free_secret(token);
    json_decref(out);
    json_decref(body);
    return status;
}

/* ------------------------------------------------------------------ connections, sync, settings */

static int handle_connections(struct router_req *q)
{
    struct mg_connection *conn = q->conn;
    struct auth_ctx *c = q->ctx;
    const char *tenant = path_tenant(q);
    char err[512];
    int status;
    json_t *out = NULL;
    if (!tenant)
        return 400;
    struct db_conn *db = router_db(q, c->db, AUTH_DB_WAIT_MS, &status);
    if (!db)
        return status;
    if ((status = tenant_check(conn, db, tenant)))
        goto out;
    out = conn_list_json(db, tenant, err, sizeof err);
    status = out ? httpd_reply_json(conn, 200, out) : reply_db(conn, tenant, err);
out:
    db_put(db);
    json_decref(out);
    return status;
}

static int handle_sync(struct router_req *q)
{
    struct db_conn *db = NULL;
    struct mg_connection *conn = q->conn;
    struct auth_ctx *c = q->ctx;
    const char *tenant, *admin, *provider = NULL;
    char err[512];
    int status;
    json_t *out = NULL, *reqs = NULL, *body = NULL;
    if ((status = admin_action(q, &tenant, &body, &admin)))
        return status;
    bool preview = false;
    enum pjson_get pg_ = pjson_get_str(body, "provider", &provider);
    if ((pg_ == PJSON_OK && !conn_provider_valid(provider)) || pg_ == PJSON_WRONG_TYPE) {
        status = reply_err(conn, 400, "invalid_argument",
                           "\"provider\" must be \"google\", \"azure\" or null");
        goto out;
    }
    if (pg_ != PJSON_OK)
        provider = NULL;
    enum pjson_get pv = pjson_get_bool(body, "preview", &preview);
    if (pv == PJSON_WRONG_TYPE) {
        status = reply_err(conn, 400, "invalid_argument", "\"preview\" must be a boolean");
        goto out;
    }
    if (!(db = router_db(q, c->db, AUTH_DB_WAIT_MS, &status)))
        goto out;
    if ((status = tenant_check(conn, db, tenant)))
        goto out;
    reqs = json_array();
    if (pgx_exec(db_pg(db), "BEGIN", err, sizeof err)) {
        status = reply_db(conn, tenant, err);
        goto out;
    }
    const char *which[] = {"google", "azure"};
    int asked = 0;
    for (int i = 0; i < 2; i++) {
        if (provider && strcmp(provider, which[i]) != 0)
            continue;
        const char *p[] = {tenant, which[i]};
        PGresult *res = db_query(db, PGRES_TUPLES_OK, &st_conn_connected, 2, p, err, sizeof err);
        if (!res) {
            rollback(db);
            status = reply_db(conn, tenant, err);
            goto out;
        }
        int connected = PQntuples(res) == 1;
        PQclear(res);
        if (!connected)
            continue;
        char run_id[37];
        bool coalesced = false;
        if (sync_request_add(c, db, tenant, which[i], preview ? "preview" : "manual", preview,
                             admin, run_id, &coalesced, err, sizeof err)) {
            rollback(db);
            status = reply_db(conn, tenant, err);
            goto out;
        }
        json_array_append_new(reqs, json_pack("{s:s, s:s, s:b}", "provider", which[i], "run_id",
                                              run_id, "coalesced", coalesced));
        asked++;
    }
    if (asked == 0) {
        rollback(db);
        status = reply_err(conn, 409, "not_connected",
                           provider ? "this cloud is not connected" : "no cloud is connected");
        goto out;
    }
    if (pgx_exec(db_pg(db), "COMMIT", err, sizeof err)) {
        rollback(db);
        status = reply_db(conn, tenant, err);
        goto out;
    }
    if (publish_pending_requests(c, db, err, sizeof err) < 0)
        log_error_t(tenant, NULL, "sync request not published yet (the scheduler retries): %s",
                    err);
    out = json_pack("{s:O}", "requests", reqs);
    status = httpd_reply_json(conn, 202, out);
out:
    db_put(db);
    json_decref(reqs);
    json_decref(out);
    json_decref(body);
    return status;
}

static int handle_settings(struct router_req *q)
{
    struct db_conn *db = NULL;
    struct mg_connection *conn = q->conn;
    struct auth_ctx *c = q->ctx;
    const char *tenant, *actor;
    char err[512];
    int status;
    PGresult *res = NULL;
    int64_t interval = 0;
    json_t *out = NULL, *body = NULL;
    if ((status = admin_action(q, &tenant, &body, &actor)))
        return status;
    enum pjson_get ig = pjson_get_int(body, "sync_interval_seconds", &interval);
    if (ig == PJSON_WRONG_TYPE || (ig == PJSON_OK && (interval < 300 || interval > 604800))) {
        status = reply_err(conn, 400, "invalid_argument",
                           "\"sync_interval_seconds\" must be an integer from 300 to 604800");
        goto out;
    }
    json_t *windows = json_object_get(body, "pause_windows");
    if (windows && !json_is_array(windows) && !json_is_null(windows)) {
        status = reply_err(conn, 400, "invalid_argument", "\"pause_windows\" must be an array");
        goto out;
    }
    if (json_is_array(windows) && json_array_size(windows) > 64) {
        status = reply_err(conn, 400, "invalid_argument", "at most 64 pause windows");
        goto out;
    }
    size_t i;
    json_t *w;
    json_array_foreach(windows, i, w)
    {
        const char *s = NULL, *e = NULL, *r = NULL;
        if (!json_is_object(w) || pjson_get_str(w, "starts_at", &s) != PJSON_OK ||
            pjson_get_str(w, "ends_at", &e) != PJSON_OK || strlen(s) > 64 || strlen(e) > 64 ||
            pjson_get_str(w, "reason", &r) == PJSON_WRONG_TYPE || (r && strlen(r) > 500)) {
            status = reply_err(conn, 400, "invalid_argument",
                               "a pause window is {\"starts_at\",\"ends_at\",\"reason\"?} with "
                               "ISO 8601 times");
            goto out;
        }
    }
    if (!(db = router_db(q, c->db, AUTH_DB_WAIT_MS, &status)))
        goto out;
    if ((status = tenant_check(conn, db, tenant)))
        goto out;
    if (pgx_exec(db_pg(db), "BEGIN", err, sizeof err)) {
        status = reply_db(conn, tenant, err);
        goto out;
    }
    if (ig == PJSON_OK) {
        char iv[32];
        snprintf(iv, sizeof iv, "%lld", (long long)interval);
        const char *p[] = {tenant, iv};
        res = db_query(db, PGRES_COMMAND_OK, &st_interval_set, 2, p, err, sizeof err);
        if (!res)
            goto dberr;
        PQclear(res);
        res = NULL;
    }
    if (json_is_array(windows)) {
        const char *p[] = {tenant};
        res = db_query(db, PGRES_COMMAND_OK, &st_windows_clear, 1, p, err, sizeof err);
        if (!res)
            goto dberr;
        PQclear(res);
        res = NULL;
        json_array_foreach(windows, i, w)
        {
            const char *r = pjson_str(w, "reason");
            const char *wp[] = {tenant, pjson_str(w, "starts_at"), pjson_str(w, "ends_at"),
                                r ? r : ""};
            res = db_exec(db, &st_window_add, 4, wp);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                rollback(db);
                status = reply_err(conn, 400, "invalid_argument",
                                   "a pause window has an invalid time or ends before it starts");
                goto out;
            }
            PQclear(res);
            res = NULL;
        }
    }
    const char *p[] = {tenant};
    res = db_query(db, PGRES_TUPLES_OK, &st_settings, 1, p, err, sizeof err);
    if (!res || PQntuples(res) != 1)
        goto dberr;
    out = pjson_parse(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), err, sizeof err);
    if (!out || pgx_exec(db_pg(db), "COMMIT", err, sizeof err))
        goto dberr;
    log_info_t(tenant, NULL, "sync settings changed by %s", actor);
    status = httpd_reply_json(conn, 200, out);
    goto out;
dberr:
    rollback(db);
    status = reply_db(conn, tenant, err);
out:
    db_put(db);
    PQclear(res);
    json_decref(out);
    json_decref(body);
    return status;
}

/* ------------------------------------------------------------------ dispatch */

static int handle_google_authorize(struct router_req *q)
{
    return handle_authorize(q, "google");
}

static int handle_ms_authorize(struct router_req *q)
{
    return handle_authorize(q, "azure");
}

static int handle_google_deauthorize(struct router_req *q)
{
    return handle_deauthorize(q, "google");
}

static int handle_ms_deauthorize(struct router_req *q)
{
    return handle_deauthorize(q, "azure");
}

/* Who may call each internal route: the one table (docs/security.md shows the same). */
static const struct router_route internal_routes[] = {
    /* Provider access tokens: the fetchers only (each for its own cloud, handle_token). */
    {"POST", "/internal/token", handle_token, CALLER_GOOGLE_SYNC | CALLER_AZURE_SYNC, BODY_MAX},
    /* Admin actions, on behalf of an admin or an API key: the api only. */
    {"POST", "/internal/tenants/{tenant}/google/authorize", handle_google_authorize, CALLER_API,
     BODY_MAX},
    {"POST", "/internal/tenants/{tenant}/microsoft/authorize", handle_ms_authorize, CALLER_API,
     BODY_MAX},
    {"POST", "/internal/tenants/{tenant}/google/deauthorize", handle_google_deauthorize, CALLER_API,
     BODY_MAX},
    {"POST", "/internal/tenants/{tenant}/microsoft/deauthorize", handle_ms_deauthorize, CALLER_API,
     BODY_MAX},
    {"GET", "/internal/tenants/{tenant}/connections", handle_connections, CALLER_API, 0},
    {"POST", "/internal/tenants/{tenant}/sync", handle_sync, CALLER_API, BODY_MAX},
    {"PUT", "/internal/tenants/{tenant}/settings", handle_settings, CALLER_API, BODY_MAX},
};

/* The providers' redirects after a consent: public (the state proves the flow). */
static const struct router_route callback_routes[] = {
    {"GET", "/oauth/google/callback", handle_google_callback, 0, 0},
    {"GET", "/oauth/microsoft/callback", handle_ms_callback, 0, 0},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int routes_register(struct httpd *h, struct auth_ctx *c, struct router **internal,
                    struct router **callbacks)
{
    char err[256];
    *internal = router_new(internal_routes, COUNT(internal_routes), c->callers, c, err, sizeof err);
    *callbacks = *internal
                     ? router_new(callback_routes, COUNT(callback_routes), NULL, c, err, sizeof err)
                     : NULL;
    if (!*internal || !*callbacks) {
        log_error("routes: %s", err);
        return -1;
    }
    if (router_mount(*callbacks, h, "/oauth", "/oauth/*") ||
        router_mount(*internal, h, "/internal", "/internal/*"))
        return -1;
    return 0;
}
