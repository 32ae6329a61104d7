/* signin: the admin sign-in with OpenID Connect (see signin.h). */
#include "signin.h"

#include "router.h"

#include "crypto.h"
#include "db.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "oauth_http.h"
#include "oidc.h"
#include "pg.h"
#include "router.h"
#include "routes.h"
#include "session.h"
#include "states.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every SQL text of this module (lib/db prepares each by its name). */
static const struct db_stmt st_state_new = {
    "signin_state_new", "INSERT INTO signin_states (state_hash, provider, tenant_hint, "
                        "browser_hash, nonce, verifier_sealed, verifier_key_id, expires_at) "
                        "VALUES ($1, $2, $3, $4, $5, decode($6, 'hex'), $7, "
                        "now() + make_interval(secs => $8::int))"};
static const struct db_stmt st_state_consume = {
    "signin_state_consume",
    STATES_TAKE_SQL("signin_states", "coalesce(old.tenant_hint, ''), old.browser_hash, old.nonce")};
static const struct db_stmt st_account_google = {
    "signin_account_google", "SELECT account_id, tenant_id FROM admin_accounts "
                             "WHERE removed_at IS NULL AND allow_google "
                             "AND ($3 = '' OR tenant_id = $3) "
                             "AND (google_sub = $1 OR (google_sub IS NULL AND email = $2)) "
                             "ORDER BY tenant_id, (google_sub IS NOT NULL) DESC FOR UPDATE"};
static const struct db_stmt st_account_microsoft = {
    "signin_account_microsoft", "SELECT account_id, tenant_id FROM admin_accounts "
                                "WHERE removed_at IS NULL AND allow_microsoft "
                                "AND ($4 = '' OR tenant_id = $4) "
                                "AND ((microsoft_tid = $1 AND microsoft_oid = $2) "
                                "OR (microsoft_oid IS NULL AND email = $3)) "
                                "ORDER BY tenant_id, (microsoft_oid IS NOT NULL) DESC FOR UPDATE"};
static const struct db_stmt st_bind_google = {
    "signin_bind_google", "UPDATE admin_accounts SET google_sub = coalesce(google_sub, $2), "
                          "last_signin_at = now() WHERE account_id = $1"};
static const struct db_stmt st_bind_microsoft = {
    "signin_bind_microsoft", "UPDATE admin_accounts SET microsoft_tid = CASE WHEN microsoft_oid IS "
                             "NULL THEN $2 ELSE microsoft_tid END, microsoft_oid = "
                             "coalesce(microsoft_oid, $3), last_signin_at = now() "
                             "WHERE account_id = $1"};
static const struct db_stmt st_session_new = {
    "signin_session_new",
    "INSERT INTO admin_sessions (id_hash, tenant_id, account_id, provider, "
    "subject, email, provider_tenant, expires_at) VALUES ($1, $2, $3, $4, $5, "
    "$6, $7, now() + make_interval(hours => $8::int))"};

#define CODE_MAX     4096 /* an authorization code from the provider */
#define VERIFIER_MAX 128
#define NTENANTS_MAX 8 /* tenants named in a "choose your district" message */

enum provider { P_GOOGLE = 0, P_MICROSOFT = 1 };
static const char *const provider_names[] = {"google", "microsoft"};

struct signin {
    struct signin_cfg cfg;
    struct auth_ctx *ctx;
    struct oidc_provider *oidc[2];
    char redirect_uri[2][1100];
    struct router *router; /* the /signin routes, once registered */
};

struct signin *signin_new(const struct signin_cfg *cfg, struct auth_ctx *c, char *err,
                          size_t errlen)
{
    struct signin *s = calloc(1, sizeof *s);
    char url[1200];
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->ctx = c;
    for (int p = 0; p < 2; p++)
        snprintf(s->redirect_uri[p], sizeof s->redirect_uri[p], "%s/signin/%s/callback",
                 cfg->public_url, provider_names[p]);
    snprintf(url, sizeof url, "%s/.well-known/openid-configuration", cfg->google_issuer);
    struct oidc_provider_opts go = {.discovery_url = url};
    if (!(s->oidc[P_GOOGLE] = oidc_provider_new(&go, err, errlen)))
        goto fail;
    /* work and school accounts of any directory; iss is checked against the token's tid */
    snprintf(url, sizeof url, "%s/organizations/v2.0/.well-known/openid-configuration",
             cfg->ms_login_url);
    struct oidc_provider_opts mo = {.discovery_url = url};
    if (!(s->oidc[P_MICROSOFT] = oidc_provider_new(&mo, err, errlen)))
        goto fail;
    return s;
fail:
    signin_destroy(s);
    return NULL;
}

void signin_destroy(struct signin *s)
{
    if (!s)
        return;
    oidc_provider_destroy(s->oidc[P_GOOGLE]);
    oidc_provider_destroy(s->oidc[P_MICROSOFT]);
    router_destroy(s->router);
    free(s);
}

static const char *client_id(const struct signin *s, enum provider p)
{
    return p == P_GOOGLE ? s->cfg.google_client_id : s->cfg.ms_client_id;
}

static const char *client_secret(const struct signin *s, enum provider p)
{
    return p == P_GOOGLE ? s->cfg.google_client_secret : s->cfg.ms_client_secret;
}

/* ------------------------------------------------------------------ replies */

/* 302 to location with extra header lines (each "Name: value\r\n"). */
static int redirect(struct mg_connection *conn, const char *location, const char *extra)
{
    struct buf h;
    int status;
    buf_init(&h, 16384);
    if (buf_appends(&h, "Location: ") || buf_appends(&h, location) ||
        buf_appends(&h, "\r\nCache-Control: no-store\r\n") || (extra && buf_appends(&h, extra))) {
        buf_free(&h);
        return httpd_reply_error(conn, 500, "internal", "redirect too long");
    }
    status = httpd_reply(conn, 302, "text/plain", "", 0, h.data);
    buf_free(&h);
    return status;
}

/* A refused sign-in: back to the admin page with #signin?error=<code>&message=<text>, and the
 * sign-in cookie deleted. Nothing was stored. */
static int refuse(struct mg_connection *conn, struct signin *s, enum provider p, const char *code,
                  const char *message)
{
    struct buf loc;
    char cookie[256];
    int status;
    buf_init(&loc, 8192);
    if (session_set_cookie(cookie, sizeof cookie, SESSION_SIGNIN_COOKIE, "", 0,
                           s->cfg.cookie_secure) ||
        buf_appends(&loc, s->cfg.admin_url) ||
        buf_appendf(&loc, "#signin?provider=%s&error=%s&message=", provider_names[p], code) ||
        buf_append_urlencoded(&loc, message)) {
        buf_free(&loc);
        return httpd_reply_error(conn, 500, "internal", "redirect too long");
    }
    log_info("sign-in with %s refused: %s: %s", provider_names[p], code, message);
    status = redirect(conn, loc.data, cookie);
    buf_free(&loc);
    return status;
}

/* ------------------------------------------------------------------ start */

static int seal_verifier(const struct grants *g, const char *state_hash, const char *verifier,
                         char **hex)
{
    char aad[96];
    uint8_t *sealed = NULL;
    size_t n = 0;
    snprintf(aad, sizeof aad, "signin_state:%s", state_hash);
    *hex = NULL;
    if (grants_seal(g, verifier, strlen(verifier), aad, &sealed, &n))
        return -1;
    *hex = malloc(n * 2 + 1);
    if (*hex)
        crypto_hex(sealed, n, *hex);
    free(sealed);
    return *hex ? 0 : -1;
}

static int start(struct router_req *q, struct signin *s, enum provider p)
{
    struct mg_connection *conn = q->conn;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char tenant[128], state[SESSION_TOKEN_MAX], nonce[SESSION_TOKEN_MAX],
        browser[SESSION_TOKEN_MAX], verifier[VERIFIER_MAX], challenge[64], state_hash[65],
        browser_hash[65], ttl[32], err[512], cookie[256];
    char *sealed_hex = NULL;
    struct oidc_discovery d;
    struct buf loc;
    int status;
    PGresult *res = NULL;
    struct db_conn *db = NULL;
    buf_init(&loc, 16384);
    if (!*client_id(s, p)) {
        status = refuse(conn, s, p, "provider_disabled",
                        p == P_GOOGLE ? "sign-in with Google is not configured"
                                      : "sign-in with Microsoft is not configured");
        goto out;
    }
    if (httpd_query_param(ri, "tenant", tenant, sizeof tenant) ||
        (*tenant && !ids_tenant_valid(tenant))) {
        status = httpd_reply_error(conn, 400, "bad_request", "invalid tenant");
        goto out;
    }
    if (oidc_provider_discovery(s->oidc[p], &d, err, sizeof err) != OIDC_OK) {
        log_warn("%s discovery failed: %s", provider_names[p], err);
        status = refuse(conn, s, p, "provider_unavailable",
                        "the provider's sign-in configuration could not be read; try again");
        goto out;
    }
    if (session_new_token(state) || session_new_token(nonce) || session_new_token(browser) ||
        crypto_token(verifier, sizeof verifier, 48) || crypto_pkce_challenge(verifier, challenge)) {
        status = httpd_reply_error(conn, 500, "internal", "no randomness");
        goto out;
    }
    session_token_hash(state, state_hash);
    session_token_hash(browser, browser_hash);
    if (seal_verifier(s->ctx->grants, state_hash, verifier, &sealed_hex)) {
        status = httpd_reply_error(conn, 500, "internal", "sealing failed");
        goto out;
    }
    if (!(db = router_db(q, s->ctx->db, AUTH_DB_WAIT_MS, &status)))
        goto out;
    snprintf(ttl, sizeof ttl, "%ld", s->cfg.state_ttl_s);
    const char *params[] = {
        state_hash, provider_names[p], *tenant ? tenant : NULL,          browser_hash,
        nonce,      sealed_hex,        grants_active_id(s->ctx->grants), ttl};
    res = db_exec(db, &st_state_new, 8, params);
    if (!pgx_ok(res, PGRES_COMMAND_OK, err, sizeof err)) {
        log_error("database: %s", err);
        status = httpd_reply_error(conn, 503, "unavailable", "the database is unavailable");
        goto out;
    }
    const char *scope = p == P_GOOGLE ? "openid email profile" : "openid profile email";
    if (buf_appends(&loc, d.authorization_endpoint) ||
        buf_appends(&loc, strchr(d.authorization_endpoint, '?') ? "&" : "?") ||
        buf_appends(&loc, "response_type=code&client_id=") ||
        buf_append_urlencoded(&loc, client_id(s, p)) || buf_appends(&loc, "&redirect_uri=") ||
        buf_append_urlencoded(&loc, s->redirect_uri[p]) || buf_appends(&loc, "&scope=") ||
        buf_append_urlencoded(&loc, scope) ||
        buf_appendf(&loc, "&state=%s&nonce=%s", state, nonce) ||
        buf_appendf(&loc, "&code_challenge=%s&code_challenge_method=S256", challenge) ||
        buf_appends(&loc, "&prompt=select_account") ||
        session_set_cookie(cookie, sizeof cookie, SESSION_SIGNIN_COOKIE, browser,
                           s->cfg.state_ttl_s, s->cfg.cookie_secure)) {
        status = httpd_reply_error(conn, 500, "internal", "redirect too long");
        goto out;
    }
    status = redirect(conn, loc.data, cookie);
out:
    db_put(db);
    OPENSSL_cleanse(verifier, sizeof verifier);
    PQclear(res);
    free(sealed_hex);
    buf_free(&loc);
    return status;
}

/* ------------------------------------------------------------------ callback */

struct started {
    char tenant_hint[128];
    char nonce[SESSION_TOKEN_MAX];
    char verifier[VERIFIER_MAX];
};

enum consume_result { C_OK, C_UNKNOWN, C_USED, C_EXPIRED, C_PROVIDER, C_BROWSER, C_ERROR };

/* Consume the state (marked used whatever happens next, so it is never accepted twice even
 * when two callbacks race) and check it belongs to this provider and this browser. */
static enum consume_result consume(struct db_conn *db, struct signin *s, enum provider p,
                                   const char *state, const char *browser, struct started *out,
                                   char *err, size_t errlen)
{
    static const enum consume_result of_state[] = {
        [STATE_OK] = C_OK,       [STATE_MALFORMED] = C_UNKNOWN, [STATE_UNKNOWN] = C_UNKNOWN,
        [STATE_USED] = C_USED,   [STATE_EXPIRED] = C_EXPIRED,   [STATE_WRONG_PROVIDER] = C_PROVIDER,
        [STATE_ERROR] = C_ERROR,
    };
    enum consume_result r = C_ERROR;
    char hash[SESSION_HASH_LEN], browser_hash[SESSION_HASH_LEN], aad[96];
    PGresult *row = NULL;
    session_token_hash(state, hash);
    r = of_state[states_take(db, &st_state_consume, hash, provider_names[p], &row, err, errlen)];
    if (r != C_OK)
        goto out;
    const int c = STATE_COL_EXTRA;
    if (!browser || !session_token_valid(browser)) {
        r = C_BROWSER;
        goto out;
    }
    session_token_hash(browser, browser_hash);
    if (!crypto_equal(browser_hash, PQgetvalue(row, 0, c + 1))) {
        r = C_BROWSER;
        goto out;
    }
    snprintf(out->tenant_hint, sizeof out->tenant_hint, "%s", PQgetvalue(row, 0, c));
    snprintf(out->nonce, sizeof out->nonce, "%s", PQgetvalue(row, 0, c + 2));
    snprintf(aad, sizeof aad, "signin_state:%s", hash);
    if (states_open_verifier(s->ctx->grants, row, aad, out->verifier, sizeof out->verifier, err,
                             errlen)) {
        r = C_ERROR;
        goto out;
    }
    r = C_OK;
out:
    PQclear(row);
    return r;
}

static const char *consume_message(enum consume_result r)
{
    switch (r) {
    case C_UNKNOWN:
        return "unknown sign-in state";
    case C_USED:
        return "this sign-in state was already used";
    case C_EXPIRED:
        return "this sign-in took too long; start again";
    case C_PROVIDER:
        return "this sign-in state belongs to another provider";
    case C_BROWSER:
        return "this sign-in was started in another browser; start again";
    default:
        return "the sign-in state could not be checked";
    }
}

/* The code exchange at the token endpoint; *id_token malloc'd on success. */
static int exchange(struct signin *s, enum provider p, const char *token_url, const char *code,
                    const char *verifier, char **id_token, char *err, size_t errlen)
{
    struct buf form;
    json_t *reply = NULL;
    long status = 0;
    int rc = -1;
    char herr[256] = "";
    *id_token = NULL;
    buf_init(&form, 16384);
    struct http_client *h = ctx_http(s->ctx, herr, sizeof herr);
    if (!h || oauth_param(&form, 1, "grant_type", "authorization_code") ||
        oauth_param(&form, 0, "code", code) || oauth_param(&form, 0, "code_verifier", verifier) ||
        oauth_param(&form, 0, "redirect_uri", s->redirect_uri[p]) ||
        oauth_param(&form, 0, "client_id", client_id(s, p)) ||
        oauth_param(&form, 0, "client_secret", client_secret(s, p))) {
        snprintf(err, errlen, "cannot build the token request %s", herr);
        goto out;
    }
    if (oauth_http_post_form(h, token_url, &form, &status, &reply, herr, sizeof herr) !=
        OAUTH_HTTP_OK) {
        snprintf(err, errlen, "%s", herr);
        goto out;
    }
    const char *t = reply ? pjson_str(reply, "id_token") : NULL;
    if (status != 200 || !t) {
        const char *e = reply ? pjson_str(reply, "error") : NULL;
        snprintf(err, errlen, "token endpoint answered HTTP %ld%s%.100s", status,
                 e ? ": " : " without an id_token", e ? e : "");
        goto out;
    }
    if (!(*id_token = strdup(t)))
        goto out;
    rc = 0;
out:
    oauth_reply_free(reply);
    oauth_form_free(&form);
    return rc;
}

/* What a verified token tells us about the person. */
struct identity {
    char subject[256];         /* Google sub, Microsoft oid */
    char ms_tid[64];           /* Microsoft directory */
    char email[320];           /* lower case */
    char provider_tenant[256]; /* Google hd, Microsoft tid */
};

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Provider-specific claims on top of lib/oidc's checks. NULL or the refusal's message. */
static const char *identity_from(enum provider p, const struct oidc_claims *cl, struct identity *id)
{
    memset(id, 0, sizeof *id);
    if (p == P_GOOGLE) {
        if (!cl->email[0])
            return "Google did not tell us your email address";
        if (!cl->email_verified)
            return "your Google account's email address is not verified";
        snprintf(id->subject, sizeof id->subject, "%s", cl->sub);
        snprintf(id->email, sizeof id->email, "%s", cl->email);
        snprintf(id->provider_tenant, sizeof id->provider_tenant, "%s", cl->hd);
    } else {
        if (!cl->tid[0] || !cl->oid[0])
            return "Microsoft's token names no directory or user";
        if (!cl->preferred_username[0] || !strchr(cl->preferred_username, '@'))
            return "Microsoft did not tell us your sign-in address";
        snprintf(id->subject, sizeof id->subject, "%s", cl->oid);
        snprintf(id->ms_tid, sizeof id->ms_tid, "%s", cl->tid);
        snprintf(id->email, sizeof id->email, "%s", cl->preferred_username);
        snprintf(id->provider_tenant, sizeof id->provider_tenant, "%s", cl->tid);
    }
    lower(id->email);
    return NULL;
}

enum match_result { M_OK, M_NONE, M_SEVERAL, M_ERROR };

/* The account this identity signs in to, inside the open transaction (rows locked): the
 * provider's immutable id first, else the address of an account not yet bound; with a
 * tenant hint only that tenant counts; several tenants are refused, never guessed. */
static enum match_result match_account(struct db_conn *db, enum provider p,
                                       const struct identity *id, const char *tenant_hint,
                                       char account[37], char tenant[128], char *tenants,
                                       size_t tenantslen, char *err, size_t errlen)
{
    enum match_result r = M_ERROR;
    PGresult *res;
    if (p == P_GOOGLE) {
        const char *params[] = {id->subject, id->email, tenant_hint};
        res = db_exec(db, &st_account_google, 3, params);
    } else {
        const char *params[] = {id->ms_tid, id->subject, id->email, tenant_hint};
        res = db_exec(db, &st_account_microsoft, 4, params);
    }
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    int n = PQntuples(res), distinct = 0;
    tenants[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i > 0 && !strcmp(PQgetvalue(res, i, 1), PQgetvalue(res, i - 1, 1)))
            continue; /* the first row of a tenant is its best match */
        if (distinct < NTENANTS_MAX) {
            size_t used = strlen(tenants);
            snprintf(tenants + used, tenantslen - used, "%s%s", distinct ? ", " : "",
                     PQgetvalue(res, i, 1));
        }
        if (distinct++ == 0) {
            snprintf(account, 37, "%s", PQgetvalue(res, i, 0));
            snprintf(tenant, 128, "%s", PQgetvalue(res, i, 1));
        }
    }
    r = distinct == 0 ? M_NONE : distinct > 1 ? M_SEVERAL : M_OK;
out:
    PQclear(res);
    return r;
}

/* Bind the provider id (first sign-in), note the sign-in, create the session. */
static int create_session(struct db_conn *db, struct signin *s, enum provider p,
                          const struct identity *id, const char *account, const char *tenant,
                          char session_id[SESSION_TOKEN_MAX], char *err, size_t errlen)
{
    char hash[SESSION_HASH_LEN], hours[32];
    PGresult *res;
    if (p == P_GOOGLE) {
        const char *params[] = {account, id->subject};
        res = db_exec(db, &st_bind_google, 2, params);
    } else {
        const char *params[] = {account, id->ms_tid, id->subject};
        res = db_exec(db, &st_bind_microsoft, 3, params);
    }
    if (!pgx_ok(res, PGRES_COMMAND_OK, err, errlen)) {
        PQclear(res);
        return -1;
    }
    PQclear(res);
    if (session_new_token(session_id)) {
        snprintf(err, errlen, "no randomness");
        return -1;
    }
    session_token_hash(session_id, hash);
    snprintf(hours, sizeof hours, "%ld", s->cfg.session_max_h);
    const char *params[] = {hash,
                            tenant,
                            account,
                            provider_names[p],
                            id->subject,
                            id->email,
                            id->provider_tenant[0] ? id->provider_tenant : NULL,
                            hours};
    res = db_exec(db, &st_session_new, 8, params);
    int rc = pgx_ok(res, PGRES_COMMAND_OK, err, errlen) ? 0 : -1;
    PQclear(res);
    return rc;
}

static void rollback(struct db_conn *db)
{
    if (db && PQtransactionStatus(db_pg(db)) != PQTRANS_IDLE)
        PQclear(PQexec(db_pg(db), "ROLLBACK"));
}

static int callback(struct router_req *q, struct signin *s, enum provider p)
{
    struct mg_connection *conn = q->conn;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char state[SESSION_TOKEN_MAX + 8], code[CODE_MAX], error[256], browser[SESSION_TOKEN_MAX],
        err[512], account[37] = "", tenant[128] = "", tenants[512] = "", msg[1024],
                  session_id[SESSION_TOKEN_MAX] = "", cookies[512];
    struct started st;
    struct oidc_discovery d;
    struct oidc_claims cl;
    struct identity id;
    char *id_token = NULL;
    int status;
    struct db_conn *db = NULL;
    memset(&st, 0, sizeof st);
    if (httpd_query_param(ri, "state", state, sizeof state) ||
        httpd_query_param(ri, "code", code, sizeof code) ||
        httpd_query_param(ri, "error", error, sizeof error) || !session_token_valid(state)) {
        status = httpd_reply_error(conn, 400, "invalid_state", "missing or malformed state");
        goto out;
    }
    const char *cookie_header = mg_get_header(conn, "Cookie");
    int cr = cookie_header
                 ? session_cookie_get(cookie_header, SESSION_SIGNIN_COOKIE, browser, sizeof browser)
                 : 1;
    if (!(db = router_db(q, s->ctx->db, AUTH_DB_WAIT_MS, &status)))
        goto out;
    enum consume_result c =
        consume(db, s, p, state, cr == 0 ? browser : NULL, &st, err, sizeof err);
    if (c == C_ERROR) {
        log_error("sign-in state: %s", err);
        status = httpd_reply_error(conn, 503, "unavailable", "the sign-in could not be checked");
        goto out;
    }
    if (c != C_OK) {
        log_warn("%s sign-in callback refused: %s", provider_names[p], consume_message(c));
        status = httpd_reply_error(conn, 400, "invalid_state", consume_message(c));
        goto out;
    }
    if (*error) {
        status = refuse(conn, s, p, strcmp(error, "access_denied") ? "provider_error" : "denied",
                        strcmp(error, "access_denied") ? "the provider refused the sign-in"
                                                       : "the sign-in was cancelled");
        goto out;
    }
    if (!*code) {
        status = refuse(conn, s, p, "provider_error", "the provider returned no code");
        goto out;
    }
    if (oidc_provider_discovery(s->oidc[p], &d, err, sizeof err) != OIDC_OK ||
        exchange(s, p, d.token_endpoint, code, st.verifier, &id_token, err, sizeof err)) {
        log_warn("%s sign-in: code exchange failed: %s", provider_names[p], err);
        status = refuse(conn, s, p, "provider_error", "the code exchange with the provider failed");
        goto out;
    }
    /* Google's tokens may name the issuer without its scheme (Google's documentation) */
    const char *google_alt =
        !strcmp(s->cfg.google_issuer, "https://accounts.google.com") ? "accounts.google.com" : NULL;
    struct oidc_expect x = {
        .issuer = p == P_GOOGLE ? s->cfg.google_issuer : d.issuer,
        .issuer_alt = p == P_GOOGLE ? google_alt : NULL,
        .audience = client_id(s, p),
        .nonce = st.nonce,
    };
    enum oidc_err oe = oidc_verify_id_token(s->oidc[p], id_token, &x, &cl, err, sizeof err);
    if (oe != OIDC_OK) {
        log_warn("%s sign-in: id_token refused: %s: %s", provider_names[p], oidc_err_str(oe), err);
        snprintf(msg, sizeof msg, "the provider's identity token was refused (%s)",
                 oidc_err_str(oe));
        status = refuse(conn, s, p, "invalid_token", msg);
        goto out;
    }
    const char *bad = identity_from(p, &cl, &id);
    if (bad) {
        status = refuse(conn, s, p, "invalid_identity", bad);
        goto out;
    }
    if (pgx_exec(db_pg(db), "BEGIN", err, sizeof err)) {
        status = httpd_reply_error(conn, 503, "unavailable", "the database is unavailable");
        goto out;
    }
    enum match_result m = match_account(db, p, &id, st.tenant_hint, account, tenant, tenants,
                                        sizeof tenants, err, sizeof err);
    if (m == M_NONE || m == M_SEVERAL) {
        rollback(db);
        if (m == M_NONE && st.tenant_hint[0])
            snprintf(msg, sizeof msg, "%s is not a Panel admin of district %s", id.email,
                     st.tenant_hint);
        else if (m == M_NONE)
            snprintf(msg, sizeof msg,
                     "%s is not a Panel admin of any district; ask an admin to invite you",
                     id.email);
        else
            snprintf(msg, sizeof msg,
                     "%s is an admin of several districts (%s): choose your district: sign in "
                     "from %s/signin/%s?tenant=<district>",
                     id.email, tenants, s->cfg.public_url, provider_names[p]);
        status = refuse(conn, s, p, m == M_NONE ? "not_admin" : "choose_district", msg);
        goto out;
    }
    if (m != M_OK || create_session(db, s, p, &id, account, tenant, session_id, err, sizeof err) ||
        pgx_exec(db_pg(db), "COMMIT", err, sizeof err)) {
        rollback(db);
        log_error("%s sign-in: storing the session failed: %s", provider_names[p], err);
        status = refuse(conn, s, p, "internal", "the session could not be stored; try again");
        goto out;
    }
    log_info_t(tenant, NULL, "%s signed in with %s", id.email, provider_names[p]);
    char c1[256], c2[256];
    if (session_set_cookie(c1, sizeof c1, SESSION_COOKIE, session_id, -1, s->cfg.cookie_secure) ||
        session_set_cookie(c2, sizeof c2, SESSION_SIGNIN_COOKIE, "", 0, s->cfg.cookie_secure)) {
        status = httpd_reply_error(conn, 500, "internal", "cookie too long");
        goto out;
    }
    snprintf(cookies, sizeof cookies, "%s%s", c1, c2);
    status = redirect(conn, s->cfg.admin_url, cookies);
out:
    db_put(db);
    OPENSSL_cleanse(&st, sizeof st);
    OPENSSL_cleanse(session_id, sizeof session_id);
    OPENSSL_cleanse(code, sizeof code);
    free(id_token);
    return status;
}

/* ------------------------------------------------------------------ routes */

static int google_start(struct router_req *q)
{
    return start(q, q->ctx, P_GOOGLE);
}

static int google_callback(struct router_req *q)
{
    return callback(q, q->ctx, P_GOOGLE);
}

static int microsoft_start(struct router_req *q)
{
    return start(q, q->ctx, P_MICROSOFT);
}

static int microsoft_callback(struct router_req *q)
{
    return callback(q, q->ctx, P_MICROSOFT);
}

/* Public: a browser follows these links (the states and cookies prove the flow). */
static const struct router_route signin_table[] = {
    {"GET", "/signin/google", google_start, 0, 0},
    {"GET", "/signin/google/callback", google_callback, 0, 0},
    {"GET", "/signin/microsoft", microsoft_start, 0, 0},
    {"GET", "/signin/microsoft/callback", microsoft_callback, 0, 0},
};

int signin_routes(struct httpd *h, struct signin *s)
{
    char err[256];
    s->router = router_new(signin_table, sizeof signin_table / sizeof signin_table[0], NULL, s, err,
                           sizeof err);
    if (!s->router) {
        log_error("signin routes: %s", err);
        return -1;
    }
    return router_mount(s->router, h, "/signin", "/signin/*");
}
