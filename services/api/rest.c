/* rest: see rest.h. */
#include "rest.h"

#include "crypto.h"
#include "http_client.h"
#include "httpd.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "session.h"
#include "pg.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDEM_KEY_MAX 200

/* A key is claimed (status 0) before the handler runs, so two concurrent requests with the
 * same key cannot both act: the second sees the claim and gets 409. Keys are per caller
 * ($2, the actor): another caller of the same district replaying the key gets its own
 * request, never this reply. */
static const struct db_stmt st_idem_claim = {
    "idem_claim",
    "INSERT INTO idempotency_keys (tenant_id, caller, idem_key, request_hash, status, "
    "response) VALUES ($1, $2, $3, $4, 0, '') ON CONFLICT DO NOTHING"};
static const struct db_stmt st_idem_get = {
    "idem_get", "SELECT request_hash, status, response, headers FROM idempotency_keys "
                "WHERE tenant_id = $1 AND caller = $2 AND idem_key = $3"};
static const struct db_stmt st_idem_put = {
    "idem_put", "UPDATE idempotency_keys SET status = $4::int, response = $5, headers = $6 "
                "WHERE tenant_id = $1 AND caller = $2 AND idem_key = $3"};
static const struct db_stmt st_idem_drop = {
    "idem_drop", "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND caller = $2 "
                 "AND idem_key = $3 AND status = 0"};

/* The members every error object has: code, message, request_id (an operator finds the
 * request in the logs by it). Appended after "{\"error\":{". */
static int append_error_members(struct api_req *r, const char *code, const char *msg)
{
    return httpd_append_error_members(&r->out, code, msg, r->request_id);
}

void rest_error(struct api_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->status = status;
    buf_reset(&r->out);
    if (buf_appends(&r->out, "{\"error\":{") || append_error_members(r, code, msg) ||
        buf_appends(&r->out, "}}"))
        r->status = 500;
}

void rest_add_header(struct api_req *r, const char *fmt, ...)
{
    char line[200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t used = strlen(r->headers);
    /* Header lines are the api's own short texts; one that does not fit is a bug, logged. */
    if (n < 0 || (size_t)n >= sizeof line || used + (size_t)n + 2 >= sizeof r->headers) {
        log_error("response header dropped (request %s): %.60s", r->request_id, line);
        return;
    }
    snprintf(r->headers + used, sizeof r->headers - used, "%s\r\n", line);
}

void rest_not_found(struct api_req *r)
{
    rest_error(r, 404, "not_found", "no such resource");
}

/* 405 with the Allow header (RFC 9110): allow lists the methods served, e.g. "GET, POST". */
static void method_not_allowed(struct api_req *r, const char *allow)
{
    rest_error(r, 405, "method_not_allowed", "method %s is not allowed here (allowed: %s)",
               r->method, allow);
    rest_add_header(r, "Allow: %s", allow);
}

/* Does the If-Match field value name the ETag "version"? Strong comparison (RFC 9110 13.1.1):
 * a weak tag never matches; "*" matches any current version. */
static bool if_match_names(const char *field, const char *version)
{
    char etag[48];
    snprintf(etag, sizeof etag, "\"%s\"", version);
    size_t elen = strlen(etag);
    const char *p = field;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            return false;
        const char *end = p;
        if (*p == '"') {
            const char *close = strchr(p + 1, '"');
            end = close ? close + 1 : p + strlen(p);
        } else {
            while (*end && *end != ',' && *end != ' ' && *end != '\t')
                end++;
        }
        size_t n = (size_t)(end - p);
        if ((n == 1 && *p == '*') || (n == elen && memcmp(p, etag, n) == 0))
            return true;
        p = end;
    }
}

int rest_check_if_match(struct api_req *r, const char *version)
{
    const char *field = mg_get_header(r->conn, "If-Match");
    if (!field) {
        bool guarded = strcmp(r->method, "PATCH") == 0 || strcmp(r->method, "DELETE") == 0;
        if (!guarded || !r->api->require_if_match)
            return 0;
        rest_error(r, 428, "precondition_required",
                   "send If-Match with the ETag of the version you read (GET it first)");
        return -1;
    }
    if (if_match_names(field, version))
        return 0;
    rest_error(r, 412, "precondition_failed",
               "the resource changed since you read it (now version %s); GET it again", version);
    rest_add_header(r, "ETag: \"%s\"", version);
    return -1;
}

void rest_reply_text(struct api_req *r, int status, const char *json)
{
    buf_reset(&r->out);
    r->status = status;
    if (buf_appends(&r->out, json))
        rest_error(r, 500, "internal", "response too large");
}

void rest_reply_json(struct api_req *r, int status, const json_t *body)
{
    char *text = body ? pjson_dump_compact(body) : NULL;
    if (text)
        rest_reply_text(r, status, text);
    else
        rest_error(r, 500, "internal", "out of memory");
    free(text);
}

void rest_reply_items(struct api_req *r, const char *items)
{
    struct buf b;
    buf_init(&b, 0);
    if (buf_appendf(&b, "{\"items\":%s}", items) == 0)
        rest_reply_text(r, 200, b.data);
    else
        rest_error(r, 500, "internal", "out of memory");
    buf_free(&b);
}

void rest_db_error(struct api_req *r, PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp(state, "23505") == 0) {
        rest_error(r, 409, "conflict", "a resource with the same unique value exists");
    } else if (state && strcmp(state, "23503") == 0) {
        rest_error(r, 409, "conflict", "a referenced resource does not exist or is in use");
    } else if (state && strcmp(state, "23514") == 0) {
        rest_error(r, 422, "invalid_value", "a value is out of the allowed range");
    } else if (state && strncmp(state, "22", 2) == 0) {
        rest_error(r, 400, "invalid_input", "a value has the wrong format or is out of range");
    } else if (pgx_is_timeout(res)) {
        log_warn_t(r->principal.tenant, NULL, "query ran past the statement timeout");
        rest_error(r, 503, "unavailable", "the database is busy; try again");
    } else if (PQstatus(db_pg(r->db)) != CONNECTION_OK) {
        log_error_t(r->principal.tenant, NULL, "database unavailable (request %s)", r->request_id);
        rest_error(r, 503, "unavailable", "the database is unavailable; try again");
    } else {
        log_error_t(r->principal.tenant, NULL, "query failed (request %s): %s", r->request_id,
                    res ? PQresultErrorMessage(res) : "no result");
        rest_error(r, 500, "internal", "internal error");
    }
}

int rest_require_admin(struct api_req *r)
{
    if (r->principal.admin)
        return 0;
    rest_error(r, 403, "forbidden",
               r->principal.kind == PRINCIPAL_SESSION
                   ? "you have the viewer role and cannot change anything"
                   : "this API key has the viewer role and cannot change anything");
    return -1;
}

int rest_check_query(struct api_req *r, const char *const *allowed)
{
    char msg[256];
    if (params_check(r->query, allowed, msg, sizeof msg) == 0)
        return 0;
    rest_error(r, 400, "invalid_parameter", "%s", msg);
    return -1;
}

json_t *rest_json_body(struct api_req *r, const char *const *allowed, bool empty_ok)
{
    char err[256];
    const char *k;
    json_t *v;
    if (r->body.len == 0 && empty_ok)
        return json_object();
    if (!ids_utf8_valid(r->body.data ? r->body.data : "", r->body.len)) {
        rest_error(r, 400, "invalid_json", "the body is not valid UTF-8");
        return NULL;
    }
    json_t *j = pjson_parse(r->body.data ? r->body.data : "", r->body.len, err, sizeof err);
    if (!j) {
        rest_error(r, 400, "invalid_json", "the body is not valid JSON: %s", err);
        return NULL;
    }
    if (!json_is_object(j)) {
        rest_error(r, 400, "invalid_json", "the body must be a JSON object");
        json_decref(j);
        return NULL;
    }
    json_object_foreach(j, k, v)
    {
        bool ok = allowed == NULL;
        for (size_t i = 0; allowed && allowed[i]; i++)
            if (strcmp(allowed[i], k) == 0)
                ok = true;
        if (!ok) {
            rest_error(r, 400, "unknown_field", "unknown field '%.60s'", k);
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

PGresult *rest_exec(struct api_req *r, const struct db_stmt *st, int n, const char *const *p)
{
    PGresult *res = db_exec(r->db, st, n, p);
    ExecStatusType s = PQresultStatus(res);
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
        return res;
    rest_db_error(r, res);
    PQclear(res);
    return NULL;
}

void rest_reply_page(struct api_req *r, PGresult *res, long limit, const char *scope, int nkeys)
{
    int rows = PQntuples(res);
    int shown = rows > limit ? (int)limit : rows;
    buf_reset(&r->out);
    r->status = 200;
    if (buf_appends(&r->out, "{\"items\":["))
        goto fail;
    for (int i = 0; i < shown; i++)
        if ((i && buf_appends(&r->out, ",")) || buf_appends(&r->out, PQgetvalue(res, i, 0)))
            goto fail;
    if (buf_appends(&r->out, "],\"next_cursor\":"))
        goto fail;
    if (rows > limit && shown > 0) {
        const char *keys[PARAMS_CURSOR_KEYS];
        char cursor[PARAMS_CURSOR_MAX * 2];
        for (int k = 0; k < nkeys && k < PARAMS_CURSOR_KEYS; k++)
            keys[k] = PQgetvalue(res, shown - 1, k + 1);
        if (params_cursor_encode(scope, keys, nkeys, cursor, sizeof cursor) ||
            buf_append_json_string(&r->out, cursor))
            goto fail;
    } else if (buf_appends(&r->out, "null")) {
        goto fail;
    }
    if (buf_appends(&r->out, "}"))
        goto fail;
    return;
fail:
    rest_error(r, 500, "internal", "response too large");
}

void rest_reply_row(struct api_req *r, PGresult *res, int status)
{
    if (PQntuples(res) < 1 || PQgetisnull(res, 0, 0)) {
        rest_not_found(r);
        return;
    }
    rest_reply_text(r, status, PQgetvalue(res, 0, 0));
}

void rest_reply_versioned_row(struct api_req *r, PGresult *res, int status)
{
    rest_reply_row(r, res, status);
    if (r->status == status && PQnfields(res) > 1 && !PQgetisnull(res, 0, 1))
        rest_add_header(r, "ETag: \"%s\"", PQgetvalue(res, 0, 1));
}

int rest_page_params(struct api_req *r, const char *scope, int nkeys, long *limit, bool *has_cursor,
                     char keys[][PARAMS_CURSOR_MAX])
{
    char msg[256], cursor[PARAMS_MAX_VALUE + 1];
    if (params_limit(r->query, 50, 500, limit, msg, sizeof msg) != 0)
        goto bad;
    int c = params_str(r->query, "cursor", cursor, sizeof cursor, msg, sizeof msg);
    if (c < 0)
        goto bad;
    *has_cursor = c == 0;
    if (c == 0 && params_cursor_decode(scope, cursor, nkeys, keys, msg, sizeof msg) != 0) {
        rest_error(r, 400, "invalid_cursor", "%s", msg);
        return -1;
    }
    return 0;
bad:
    rest_error(r, 400, "invalid_parameter", "%s", msg);
    return -1;
}

struct api_req *rest_req(struct router_req *q)
{
    return (struct api_req *)(void *)((char *)q - offsetof(struct api_req, route));
}

const char *rest_param(struct api_req *r, const char *name)
{
    return router_param(&r->route, name);
}

const char *rest_uuid_param(struct api_req *r, const char *name)
{
    const char *id = router_param(&r->route, name);
    if (id && ids_uuid_valid(id))
        return id;
    rest_not_found(r);
    return NULL;
}

static bool idem_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > IDEM_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isgraph((unsigned char)k[i]))
            return false;
    return true;
}

/* Claim key for this request. Returns 0 when claimed (run the handler), 1 when a stored
 * reply was loaded into r, -1 (reply filled) on errors, a reused key or a request with the
 * same key still running. */
static int idem_claim(struct api_req *r, const char *key, char hash[65])
{
    struct buf h;
    PGresult *res = NULL;
    int rc = -1;
    buf_init(&h, REST_MAX_BODY + 2048);
    if (buf_appendf(&h, "%s %s\n", r->method, r->ri->local_uri) ||
        buf_append(&h, r->body.data ? r->body.data : "", r->body.len)) {
        rest_error(r, 500, "internal", "out of memory");
        goto out;
    }
    crypto_sha256_hex(h.data, h.len, hash);
    const char *p[4] = {r->principal.tenant, r->principal.actor, key, hash};
    if (!(res = rest_exec(r, &st_idem_claim, 4, p)))
        goto out;
    if (strcmp(PQcmdTuples(res), "1") == 0) {
        rc = 0;
        goto out;
    }
    PQclear(res);
    if (!(res = rest_exec(r, &st_idem_get, 3, p)))
        goto out;
    if (PQntuples(res) != 1) {
        rest_error(r, 409, "idempotency_conflict",
                   "the Idempotency-Key changed meanwhile; "
                   "try again");
    } else if (strcmp(PQgetvalue(res, 0, 0), hash) != 0) {
        rest_error(r, 422, "idempotency_key_reused",
                   "this Idempotency-Key was used for a different request");
    } else if (strcmp(PQgetvalue(res, 0, 1), "0") == 0) {
        rest_error(r, 409, "request_in_progress",
                   "a request with this Idempotency-Key is still being processed");
    } else {
        long st = strtol(PQgetvalue(res, 0, 1), NULL, 10);
        rest_reply_text(r, (int)st, PQgetvalue(res, 0, 2));
        snprintf(r->headers, sizeof r->headers, "%s", PQgetvalue(res, 0, 3));
        rc = 1;
    }
out:
    PQclear(res);
    buf_free(&h);
    return rc;
}

/* Store the reply (status, body, its own header lines) for replays, or release the claim so
 * that a retry runs afresh: after a server-side failure, and after a failed precondition
 * (412, 428), which depends on If-Match, a header the request hash does not cover. */
static void idem_finish(struct api_req *r, const char *key)
{
    char status[16];
    snprintf(status, sizeof status, "%d", r->status);
    const char *p[6] = {
        r->principal.tenant, r->principal.actor, key, status, r->out.data ? r->out.data : "",
        r->headers};
    bool keep = r->status < 500 && r->status != 412 && r->status != 428;
    PGresult *res = keep ? db_exec(r->db, &st_idem_put, 6, p) : db_exec(r->db, &st_idem_drop, 3, p);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        log_warn_t(r->principal.tenant, NULL, "cannot store idempotency key: %s",
                   PQresultErrorMessage(res));
    PQclear(res);
}

enum credential {
    CRED_NONE,       /* neither header nor cookie */
    CRED_KEY,        /* an Authorization header (checked as an API key) */
    CRED_SESSION,    /* a well-formed session cookie, copied into r->session_id */
    CRED_BAD_COOKIE, /* a session cookie that cannot be a session id */
};

/* An Authorization header wins (machine clients); otherwise the session cookie. */
static enum credential credential_of(struct api_req *r)
{
    const char *cookies = mg_get_header(r->conn, "Cookie");
    if (mg_get_header(r->conn, "Authorization"))
        return CRED_KEY;
    if (!cookies)
        return CRED_NONE;
    int c = session_cookie_get(cookies, SESSION_COOKIE, r->session_id, sizeof r->session_id);
    if (c == 1)
        return CRED_NONE;
    if (c != 0 || !session_token_valid(r->session_id)) {
        r->session_id[0] = '\0';
        return CRED_BAD_COOKIE;
    }
    return CRED_SESSION;
}

/* 401 with where a person signs in: the admin page reads "signin" to offer the buttons. */
static void reply_unauthenticated(struct api_req *r, const char *message)
{
    const char *base = r->api->auth_public_url ? r->api->auth_public_url : "";
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    r->status = 401;
    buf_reset(&r->out);
    if (buf_appends(&r->out, "{\"error\":{") ||
        append_error_members(r, "unauthenticated", message) ||
        buf_appends(&r->out, "},\"signin\":{"))
        goto fail;
    static const char *const providers[] = {"google", "microsoft"};
    for (int i = 0; i < 2; i++) {
        char url[1200];
        snprintf(url, sizeof url, "%.*s/signin/%s", (int)n, base, providers[i]);
        if (buf_appendf(&r->out, "%s\"%s\":", i ? "," : "", providers[i]) ||
            buf_append_json_string(&r->out, url))
            goto fail;
    }
    if (buf_appends(&r->out, "}}"))
        goto fail;
    return;
fail:
    rest_error(r, 500, "internal", "response too large");
}

static bool changes_state(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
           strcmp(method, "OPTIONS") != 0;
}

/* Fill r->principal from the API key or the session. 0, or -1 with the reply filled. */
static int authenticate(struct api_req *r, enum credential cred, const char **extra)
{
    enum auth_result a;
    if (cred == CRED_KEY)
        a = auth_keys_check(r->db, mg_get_header(r->conn, "Authorization"), &r->principal);
    else if (cred == CRED_SESSION)
        a = auth_session_check(r->db, r->session_id, r->api->session_idle_minutes, &r->principal);
    else
        a = AUTH_MISSING;
    switch (a) {
    case AUTH_OK:
        break;
    case AUTH_MISSING:
        reply_unauthenticated(r, cred == CRED_KEY
                                     ? "send Authorization: Bearer pk_<key id>.<secret>"
                                       " with a valid API key"
                                     : "sign in, or send an API key");
        *extra = "WWW-Authenticate: Bearer\r\n";
        return -1;
    case AUTH_INVALID:
        reply_unauthenticated(r, cred == CRED_KEY
                                     ? "the API key is unknown or revoked"
                                     : "the session has ended or expired; sign in again");
        *extra = "WWW-Authenticate: Bearer\r\n";
        return -1;
    default:
        rest_error(r, 503, "unavailable", "the database is unavailable; try again");
        return -1;
    }
    /* A browser sends the cookie with any request a page makes, even another site's form: a
     * change must also carry the token only our page can read. */
    if (cred == CRED_SESSION && changes_state(r->method) &&
        !session_csrf_valid(r->session_id, mg_get_header(r->conn, SESSION_CSRF_HEADER))) {
        rest_error(r, 403, "csrf_failed",
                   "a change made with a session needs the X-CSRF-Token header of GET /v1/session");
        return -1;
    }
    return 0;
}

/* Error bodies not made by rest_error (a bulk refusal, auth's or the merger's answer passed
 * on, a stored Idempotency-Key reply) get this request's id too, unless they have one. */
static void ensure_request_id(struct api_req *r)
{
    if (r->status < 400 || r->out.len == 0 || !r->out.data)
        return;
    json_t *body = json_loadb(r->out.data, r->out.len, 0, NULL);
    json_t *err = json_is_object(body) ? json_object_get(body, "error") : NULL;
    if (json_is_object(err) && !json_object_get(err, "request_id") &&
        json_object_set_new(err, "request_id", json_string(r->request_id)) == 0) {
        char *text = pjson_dump_compact(body);
        if (text) {
            buf_reset(&r->out);
            if (buf_appends(&r->out, text))
                rest_error(r, 500, "internal", "response too large");
            free(text);
        }
    }
    json_decref(body);
}

int rest_serve(struct mg_connection *conn, void *cbdata)
{
    struct api_req r;
    const struct router_route *route = NULL;
    char idem_hash[65] = "", allow[ROUTER_ALLOW_MAX] = "";
    const char *idem = NULL;
    const char *extra = NULL;
    memset(&r, 0, sizeof r);
    r.conn = conn;
    r.ri = mg_get_request_info(conn);
    r.api = cbdata;
    r.method = r.ri->request_method;
    r.query = r.ri->query_string;
    buf_init(&r.body, REST_MAX_BODY);
    buf_init(&r.out, 0);
    /* httpd made or accepted the request id; it sends it with the reply and logs it. */
    const char *id = httpd_current_request_id(conn);
    if (id)
        snprintf(r.request_id, sizeof r.request_id, "%s", id);
    else
        httpd_request_id(mg_get_header(conn, HTTPD_REQUEST_HEADER), r.request_id);

    /* A session cookie of the wrong shape is refused before any database work. */
    enum credential cred = credential_of(&r);
    if (cred == CRED_BAD_COOKIE) {
        reply_unauthenticated(&r, "the session cookie is not valid; sign in again");
        goto send;
    }
    char db_err[256];
    enum db_result got = db_get(r.api->db, REST_DB_WAIT_MS, &r.db, db_err, sizeof db_err);
    if (got != DB_OK) {
        log_warn("%s %s: %s", r.method, r.ri->local_uri, db_err);
        rest_error(&r, 503, "unavailable",
                   got == DB_BUSY ? "the server is busy; try again"
                                  : "the database is unavailable; try again");
        goto send;
    }
    if (authenticate(&r, cred, &extra) != 0)
        goto send;
    httpd_set_caller(conn, r.principal.actor);
    long wait_s = ratelimit_take(r.api->ratelimit, r.principal.actor, http_now_ms());
    if (wait_s > 0) {
        rest_add_header(&r, "Retry-After: %ld", wait_s);
        rest_error(&r, 429, "rate_limited",
                   "too many requests from %s; retry in %ld s (PANEL_API_RATE_LIMIT_PER_MINUTE)",
                   r.principal.actor, wait_s);
        extra = "Connection: close\r\n"; /* the body, if any, is not read */
        goto send;
    }
    /* The route, only now: a caller that is not signed in learns nothing about the paths. */
    const char *uri = r.ri->local_uri ? r.ri->local_uri : "";
    r.route.conn = conn;
    r.route.ri = r.ri;
    r.route.method = r.method;
    r.route.query = r.query;
    r.route.ctx = r.api;
    r.route.request_id = r.request_id;
    enum router_match m = ids_utf8_valid(uri, strlen(uri))
                              ? router_match(r.api->router, r.method, uri, &r.route, &route, allow)
                              : ROUTER_NO_ROUTE;
    if (m == ROUTER_NO_ROUTE) {
        /* Not "no such resource": a client (and the contract test) can tell a path the api
         * does not serve from a row that does not exist. */
        rest_error(&r, 404, "not_found", "no such route");
        goto send;
    }
    if (m == ROUTER_MATCHED)
        httpd_set_route_label(conn, route->pattern);
    if (strcmp(r.method, "POST") == 0 || strcmp(r.method, "PUT") == 0 ||
        strcmp(r.method, "PATCH") == 0) {
        int b = httpd_read_body(conn, &r.body, REST_MAX_BODY);
        if (b == -1) {
            rest_error(&r, 413, "body_too_large", "the body is larger than %d bytes",
                       REST_MAX_BODY);
            extra = "Connection: close\r\n";
            goto send;
        }
        if (b != 0) {
            rest_error(&r, 400, "bad_request", "cannot read the body");
            goto send;
        }
    }
    if (strcmp(r.method, "POST") == 0 && (idem = mg_get_header(conn, "Idempotency-Key"))) {
        if (!idem_key_ok(idem)) {
            rest_error(&r, 400, "invalid_idempotency_key",
                       "Idempotency-Key must be 1 to %d printable characters", IDEM_KEY_MAX);
            goto send;
        }
        int l = idem_claim(&r, idem, idem_hash);
        if (l != 0) {
            idem = NULL; /* not ours to finish */
            if (l == 1)
                extra = "Idempotent-Replayed: true\r\n";
            goto send;
        }
    }
    /* A known path without this method: 405 where its handler would have answered. */
    if (m == ROUTER_NO_METHOD)
        method_not_allowed(&r, allow);
    else
        route->fn(&r.route);
    /* A handler that failed inside its transaction leaves it open: end it here so nothing
     * half-done is committed and the idempotency row below is written on its own. */
    if (PQtransactionStatus(db_pg(r.db)) != PQTRANS_IDLE) {
        PGresult *rb = PQexec(db_pg(r.db), "ROLLBACK");
        PQclear(rb);
    }
    if (r.status == 0)
        rest_error(&r, 500, "internal", "no reply");
    if (idem)
        idem_finish(&r, idem);
send:
    ensure_request_id(&r);
    db_put(r.db);
    /* httpd writes the access-log line (route, status, duration, request id, caller). */
    if (r.status >= 500)
        log_warn_t(r.principal.tenant[0] ? r.principal.tenant : NULL, NULL, "%s %s answered %d",
                   r.method, r.ri->local_uri, r.status);
    if (r.replied) { /* streamed: status line, headers and body are already out */
        buf_free(&r.body);
        buf_free(&r.out);
        return r.status;
    }
    char headers[sizeof r.headers + 256];
    snprintf(headers, sizeof headers, "%s%s", extra ? extra : "", r.headers);
    int status = httpd_reply(conn, r.status, "application/json", r.out.data ? r.out.data : "",
                             r.out.len, headers);
    buf_free(&r.body);
    buf_free(&r.out);
    return status;
}

int rest_tx(struct api_req *r, const char *sql)
{
    PGresult *res = PQexec(db_pg(r->db), sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rest_db_error(r, res);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

int rest_field_str(struct api_req *r, json_t *body, const char *name, size_t maxlen,
                   const char **out)
{
    json_t *v = json_object_get(body, name);
    if (!v)
        return 1;
    if (json_is_null(v))
        return 2;
    if (!json_is_string(v)) {
        rest_error(r, 400, "invalid_field", "%s must be a string", name);
        return -1;
    }
    if (json_string_length(v) > maxlen || strlen(json_string_value(v)) != json_string_length(v)) {
        rest_error(r, 400, "invalid_field", "%s must be at most %zu bytes without NUL", name,
                   maxlen);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int rest_field_bool(struct api_req *r, json_t *body, const char *name, bool *out)
{
    json_t *v = json_object_get(body, name);
    if (!v)
        return 1;
    if (json_is_null(v))
        return 2;
    if (!json_is_boolean(v)) {
        rest_error(r, 400, "invalid_field", "%s must be true or false", name);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

int rest_field_time(struct api_req *r, json_t *body, const char *name, bool timestamp,
                    const char **out)
{
    int rc = rest_field_str(r, body, name, 64, out);
    if (rc != 0)
        return rc;
    if (timestamp ? !params_is_timestamp(*out) && !params_is_date(*out) : !params_is_date(*out)) {
        rest_error(r, 400, "invalid_field", "%s must be %s", name,
                   timestamp ? "an RFC 3339 timestamp like 2026-06-30T15:00:00Z or a date"
                             : "a date YYYY-MM-DD");
        return -1;
    }
    return 0;
}
