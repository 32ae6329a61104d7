#include "ms_oauth.h"
#include "crypto.h"
#include "httpd.h"
#include "signin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MS_TOKEN_PREFIX     "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsImtpZCI6ImVtdWxhdG9yIn0."
#define GRAPH_DEFAULT_SCOPE "https://graph.microsoft.com/.default"

static int html(struct mg_connection *conn, int status, const char *code, const char *msg)
{
    struct buf b;
    int rc;
    buf_init(&b, 0);
    if (buf_appendf(&b,
                    "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"icon\" "
                    "href=\"data:,\"><title>Sign in to "
                    "your account (emulator)</title></head><body><h1>Sorry, but we're "
                    "having trouble signing you in.</h1><p id=\"error\">AADSTS%s: ",
                    code) ||
        buf_appends(&b, msg) || buf_appends(&b, "</p></body></html>")) {
        buf_free(&b);
        return httpd_reply(conn, 500, "text/plain", "out of memory", 13, NULL);
    }
    rc = httpd_reply(conn, status, "text/html; charset=utf-8", b.data, b.len, NULL);
    buf_free(&b);
    return rc;
}

/* The district a /{tenant}/ segment names: a tenant id or domain, or common/organizations
 * resolved through login_hint (or the only district). */
static struct district *tenant_district(struct emu *e, const char *tenant, const char *hint)
{
    if (!strcasecmp(tenant, "common") || !strcasecmp(tenant, "organizations"))
        return emu_district_for_hint(e, hint);
    return emu_district_by_tenant(e, tenant);
}

static int consent_form(struct mg_connection *conn, const char *path)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct buf b;
    int rc, fail = 0;
    buf_init(&b, 0);
    fail |= buf_appends(&b, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"icon\" "
                            "href=\"data:,\"><title>Permissions "
                            "requested (emulator)</title></head><body><h1>Permissions "
                            "requested</h1><p>K12 Panel needs: Read all users' full profiles "
                            "(User.Read.All)</p><ul><li><input type=\"checkbox\" id=\"scope-0\" "
                            "name=\"scope-0\" value=\"User.Read.All\" checked disabled> "
                            "User.Read.All</li></ul>");
    static const char *decisions[] = {"deny", "allow"};
    for (int i = 0; i < 2; i++) {
        fail |=
            buf_appendf(&b, "<form method=\"get\" action=\"%s\" style=\"display:inline\">", path);
        /* carry the original query as hidden fields */
        const char *q = ri->query_string ? ri->query_string : "";
        while (*q) {
            const char *amp = strchr(q, '&');
            size_t n = amp ? (size_t)(amp - q) : strlen(q);
            const char *eq = memchr(q, '=', n);
            if (eq) {
                char name[64], val[2048];
                size_t nl = (size_t)(eq - q);
                if (nl < sizeof name) {
                    memcpy(name, q, nl);
                    name[nl] = '\0';
                    if (mg_get_var(q, n, name, val, sizeof val) >= 0 &&
                        strcmp(name, "emulator_decision")) {
                        fail |=
                            buf_appendf(&b, "<input type=\"hidden\" name=\"%s\" value=\"", name);
                        for (const char *p = val; *p; p++)
                            fail |= *p == '"'   ? buf_appends(&b, "&quot;")
                                    : *p == '<' ? buf_appends(&b, "&lt;")
                                    : *p == '&' ? buf_appends(&b, "&amp;")
                                                : buf_append(&b, p, 1);
                        fail |= buf_appends(&b, "\">");
                    }
                }
            }
            q += n + (amp ? 1 : 0);
        }
        fail |= buf_appendf(&b,
                            "<button type=\"submit\" id=\"%s\" name=\"emulator_decision\" "
                            "value=\"%s\">%s</button></form>",
                            decisions[i], decisions[i], i ? "Accept" : "Cancel");
    }
    fail |= buf_appends(&b, "</body></html>");
    if (fail) {
        buf_free(&b);
        return httpd_reply(conn, 500, "text/plain", "out of memory", 13, NULL);
    }
    rc = httpd_reply(conn, 200, "text/html; charset=utf-8", b.data, b.len, NULL);
    buf_free(&b);
    return rc;
}

/* The checks both browser endpoints start with: the client is this application and
 * redirect_uri (read into redirect_uri) an http(s) URL. False after an error page in *rc. */
static bool client_and_redirect_ok(struct mg_connection *conn, struct emu *e, char *redirect_uri,
                                   size_t n, int *rc)
{
    char client_id[256];
    if (!emu_param(conn, "client_id", client_id, sizeof client_id) ||
        strcmp(client_id, e->cfg->ms_client_id)) {
        *rc = html(conn, 400, "700016",
                   "Application with the given identifier was not found in the directory.");
        return false;
    }
    if (!emu_param(conn, "redirect_uri", redirect_uri, n) ||
        (strncmp(redirect_uri, "http://", 7) && strncmp(redirect_uri, "https://", 8))) {
        *rc = html(conn, 400, "50011",
                   "The redirect URI specified in the request does not match the redirect URIs "
                   "configured for the application.");
        return false;
    }
    return true;
}

/* An administrator's consent, as /adminconsent and the authorization code flow ask for it: the
 * directory (the path's tenant, else the login_hint's), then the decision (emulator_decision,
 * else the configured one): the consent page, a refusal (access_denied, with admin_consent=False
 * on /adminconsent), or a grant recorded for the whole tenant. Returns the district when
 * granted; otherwise NULL with the reply sent in *rc. */
static struct district *consent_granted(struct mg_connection *conn, struct emu *e,
                                        const char *tenant, const char *redirect_uri,
                                        const char *st, bool admin_consent, int *rc)
{
    char hint[320], decision[16];
    const char *h = emu_param(conn, "login_hint", hint, sizeof hint);
    struct district *d = tenant_district(e, tenant, h);
    if (!d && h && *h)
        d = emu_district_for_hint(e, h);
    if (!d) {
        *rc = html(conn, 400, "90002",
                   "Tenant not found. Check to make sure you have the correct tenant ID and are "
                   "signing into the correct cloud.");
        return NULL;
    }
    const char *dec = emu_param(conn, "emulator_decision", decision, sizeof decision);
    if (!dec)
        dec = e->cfg->consent;
    if (!strcmp(dec, "page")) {
        *rc = consent_form(conn, mg_get_request_info(conn)->local_uri);
        return NULL;
    }
    if (strcmp(dec, "allow") && strcmp(dec, "auto")) {
        /* the pair after "state" ends the list on the authorization code flow */
        const char *kv[] = {"error",
                            "access_denied",
                            "error_subcode",
                            "cancel",
                            "error_description",
                            "AADSTS65004: User declined to consent to access the app.",
                            "state",
                            st,
                            admin_consent ? "admin_consent" : NULL,
                            "False",
                            NULL};
        *rc = emu_redirect(conn, redirect_uri, kv);
        return NULL;
    }
    district_lock(d);
    struct district_auth *a = district_auth(d);
    a->azure_consented = true;
    a->azure_ever_consented = true;
    a->azure_permission = true;
    district_unlock(d);
    return d;
}

static int adminconsent(struct mg_connection *conn, struct emu *e, const char *tenant, bool v2)
{
    char redirect_uri[1024], state[1024], scope[512];
    int rc;
    const char *st = emu_param(conn, "state", state, sizeof state);
    atomic_fetch_add(&e->requests[R_MS_CONSENT], 1);
    if (!client_and_redirect_ok(conn, e, redirect_uri, sizeof redirect_uri, &rc))
        return rc;
    if (v2 && (!emu_param(conn, "scope", scope, sizeof scope) || !*scope)) {
        return emu_redirect_error(conn, redirect_uri, "invalid_request",
                                  "AADSTS900144: The request body must contain the following "
                                  "parameter: 'scope'.",
                                  st);
    }
    struct district *d = consent_granted(conn, e, tenant, redirect_uri, st, true, &rc);
    if (!d)
        return rc;
    const char *kv[] = {"admin_consent",
                        "True",
                        "tenant",
                        district_tenant_id(d),
                        "state",
                        st,
                        "scope",
                        v2 ? "https://graph.microsoft.com/User.Read.All " GRAPH_DEFAULT_SCOPE
                           : NULL,
                        NULL};
    return emu_redirect(conn, redirect_uri, kv);
}

#define MS_CODE_PREFIX    "M.C."
#define MS_REFRESH_PREFIX "M.R."

static void hash16(const char *s, char out[17])
{
    char hex[65];
    crypto_sha256_hex(s, strlen(s), hex);
    snprintf(out, 17, "%.16s", hex);
}

static int signin_authorize(struct mg_connection *conn, struct emu *e, const char *tenant,
                            const char *redirect_uri, const char *st);

/* GET /{tenant}/oauth2/v2.0/authorize: the authorization code flow (delegated). */
static int authorize(struct mg_connection *conn, struct emu *e, const char *tenant)
{
    char redirect_uri[1024], state[1024], scope[1024], rtype[32], challenge[128], method[16];
    int rc;
    const char *st = emu_param(conn, "state", state, sizeof state);
    atomic_fetch_add(&e->requests[R_MS_CONSENT], 1);
    if (!client_and_redirect_ok(conn, e, redirect_uri, sizeof redirect_uri, &rc))
        return rc;
    if (!emu_param(conn, "response_type", rtype, sizeof rtype) || strcmp(rtype, "code")) {
        return emu_redirect_error(
            conn, redirect_uri, "unsupported_response_type",
            "AADSTS700054: response_type is not supported for the application.", st);
    }
    if (!emu_param(conn, "scope", scope, sizeof scope) || !*scope) {
        return emu_redirect_error(conn, redirect_uri, "invalid_request",
                                  "AADSTS900144: The request body must contain the following "
                                  "parameter: 'scope'.",
                                  st);
    }
    /* a sign-in: OpenID Connect scopes only, no Graph permission asked */
    if (strstr(scope, "openid") && !strstr(scope, "graph.microsoft.com"))
        return signin_authorize(conn, e, tenant, redirect_uri, st);
    bool has_challenge = emu_param(conn, "code_challenge", challenge, sizeof challenge) != NULL;
    if (has_challenge && emu_param(conn, "code_challenge_method", method, sizeof method) &&
        strcmp(method, "S256")) {
        return emu_redirect_error(
            conn, redirect_uri, "invalid_request",
            "AADSTS501491: Invalid size of Code_Challenge parameter or method.", st);
    }
    /* an administrator's consent in the interactive flow counts for the tenant */
    struct district *d = consent_granted(conn, e, tenant, redirect_uri, st, false, &rc);
    if (!d)
        return rc;
    char payload[400], code[700], rh[17], nonce[24], session[37];
    hash16(redirect_uri, rh);
    if (crypto_token(nonce, sizeof nonce, 12) || crypto_uuid(session))
        return html(conn, 500, "90033", "A transient error has occurred.");
    snprintf(payload, sizeof payload, "%s|%lld|%s|%s|%d|%s", district_id(d),
             (long long)time(NULL) + e->cfg->code_ttl, has_challenge ? challenge : "-", rh,
             strstr(scope, "offline_access") != NULL, nonce);
    if (page_tokens_sign(e->tokens, MS_CODE_PREFIX, payload, code, sizeof code))
        return html(conn, 500, "90033", "A transient error has occurred.");
    const char *kv[] = {"code", code, "state", st, "session_state", session, NULL};
    return emu_redirect(conn, redirect_uri, kv);
}

#define MS_SIGNIN_PREFIX "M.S."

/* The sign-in flow (scope with openid, no Graph permission): /{tenant}/oauth2/v2.0/authorize
 * for a person, answered with a code the token endpoint turns into an id_token. Nothing about
 * the tenant's consent changes. */
static int signin_authorize(struct mg_connection *conn, struct emu *e, const char *tenant,
                            const char *redirect_uri, const char *st)
{
    char hint[320], challenge[128], method[16], nonce[300], decision[16];
    bool has_challenge = emu_param(conn, "code_challenge", challenge, sizeof challenge) != NULL;
    if (!has_challenge || !emu_param(conn, "code_challenge_method", method, sizeof method) ||
        strcmp(method, "S256")) {
        return emu_redirect_error(
            conn, redirect_uri, "invalid_request",
            "AADSTS501491: Invalid size of Code_Challenge parameter or method.", st);
    }
    if (!emu_param(conn, "nonce", nonce, sizeof nonce))
        nonce[0] = '\0';
    if (strlen(nonce) > 255 || strchr(nonce, '|'))
        return html(conn, 400, "90014", "The nonce is malformed.");
    bool any = !strcasecmp(tenant, "common") || !strcasecmp(tenant, "organizations");
    struct district *td = any ? NULL : emu_district_by_tenant(e, tenant);
    if (!any && !td)
        return html(conn, 400, "90002",
                    "Tenant not found. Check to make sure you have the correct tenant ID and are "
                    "signing into the correct cloud.");
    const char *h = emu_param(conn, "login_hint", hint, sizeof hint);
    const char *dec = emu_param(conn, "emulator_decision", decision, sizeof decision);
    if (!dec)
        dec = e->cfg->consent;
    struct signin_person p;
    if (h && *h) {
        if (!emu_signin_find(e, h, "microsoft", &p)) {
            const char *at = strchr(h, '@');
            struct district *d = at ? emu_district_by_domain(e, at + 1) : NULL;
            if (!d)
                return html(conn, 400, "50034",
                            "The user account does not exist in the directory.");
            emu_signin_person(d, h, &p); /* a user of the directory, not an admin */
        }
    } else {
        struct district *d = td ? td : emu_district_for_hint(e, NULL);
        if (!d || !strcmp(dec, "page"))
            return emu_signin_picker(conn, e, "microsoft");
        emu_signin_person(d, district_admin_email(d), &p);
    }
    if (td && p.district != td)
        return html(conn, 400, "50020",
                    "The user account does not exist in the tenant of the request.");
    if (strcmp(dec, "allow") && strcmp(dec, "auto") && strcmp(dec, "page")) {
        return emu_redirect_error(conn, redirect_uri, "access_denied",
                                  "AADSTS65004: User declined to consent to access the app.", st);
    }
    char payload[1400], code[2200], rh[17], session[37];
    hash16(redirect_uri, rh);
    if (crypto_uuid(session))
        return html(conn, 500, "90033", "A transient error has occurred.");
    snprintf(payload, sizeof payload, "%s|%lld|%s|%s|%s|%s", district_id(p.district),
             (long long)time(NULL) + e->cfg->code_ttl, challenge, rh, p.email, nonce);
    if (page_tokens_sign(e->tokens, MS_SIGNIN_PREFIX, payload, code, sizeof code))
        return html(conn, 500, "90033", "A transient error has occurred.");
    const char *kv[] = {"code", code, "state", st, "session_state", session, NULL};
    return emu_redirect(conn, redirect_uri, kv);
}

/* The checks every authorization code passes at the token endpoint: it names its district
 * (district_ok) and has not expired (exp, Unix seconds), the same redirect_uri as at
 * /authorize (rh is its hash16), the PKCE verifier of the challenge ("-" when none was sent),
 * and a first redemption. False after the error reply in r. */
static bool code_redeemable(struct emu *e, const struct buf *body, const char *code,
                            bool district_ok, long long exp, const char *rh, const char *challenge,
                            struct reply *r)
{
    char redirect_uri[1024], verifier[256], mine[17], computed[64];
    if (!district_ok || exp < (long long)time(NULL)) {
        reply_aad_error(r, 400, "invalid_grant", 70008,
                        "The provided authorization code or refresh token has expired due to "
                        "inactivity. Send a new interactive authorization request for this user "
                        "and resource.");
        return false;
    }
    if (!emu_form(body, "redirect_uri", redirect_uri, sizeof redirect_uri))
        redirect_uri[0] = '\0';
    hash16(redirect_uri, mine);
    if (strcmp(mine, rh)) {
        reply_aad_error(r, 400, "invalid_grant", 50011,
                        "The redirect URI specified in the request does not match the redirect "
                        "URI used to obtain the authorization code.");
        return false;
    }
    if (strcmp(challenge, "-") &&
        (!emu_form(body, "code_verifier", verifier, sizeof verifier) ||
         crypto_pkce_challenge(verifier, computed) || !crypto_equal(computed, challenge))) {
        reply_aad_error(r, 400, "invalid_grant", 501481,
                        "The Code_Verifier does not match the code_challenge supplied in the "
                        "authorization request.");
        return false;
    }
    if (!page_tokens_once(e->tokens, code)) {
        reply_aad_error(r, 400, "invalid_grant", 54005,
                        "OAuth2 Authorization code was already redeemed, please retry with a new "
                        "valid code or use an existing refresh token.");
        return false;
    }
    return true;
}

/* POST /{tenant}/oauth2/v2.0/token with a sign-in code: the id_token (and a token for the
 * user's own profile, which this emulator's Graph does not accept). */
static void signin_code_grant(struct mg_connection *conn, struct emu *e, const struct buf *body,
                              const char *code, struct reply *r)
{
    char payload[1400], id[DISTRICT_ID_MAX + 1], challenge[128], rh[17], email[320],
        nonce[256] = "", client_id[256], secret[256], base[512], at[64];
    long long exp;
    if (page_tokens_verify(e->tokens, MS_SIGNIN_PREFIX, code, payload, sizeof payload) ||
        sscanf(payload, "%48[^|]|%lld|%127[^|]|%16[^|]|%319[^|]|%255[^|]", id, &exp, challenge, rh,
               email, nonce) < 5) {
        reply_aad_error(r, 400, "invalid_grant", 9002313,
                        "Invalid request. Request is malformed or invalid.");
        return;
    }
    if (!emu_form(body, "client_id", client_id, sizeof client_id) ||
        strcmp(client_id, e->cfg->ms_client_id)) {
        reply_aad_error(r, 400, "unauthorized_client", 700016,
                        "Application was not found in the directory.");
        return;
    }
    if (!emu_form(body, "client_secret", secret, sizeof secret) ||
        !crypto_equal(secret, e->cfg->ms_client_secret)) {
        reply_aad_error(r, 401, "invalid_client", 7000215, "Invalid client secret provided.");
        return;
    }
    struct district *d = emu_district(e, id);
    if (!code_redeemable(e, body, code, d != NULL, exp, rh, challenge, r))
        return;
    struct signin_person p;
    emu_signin_person(d, email, &p);
    emu_base_url(conn, base, sizeof base);
    char *idt = emu_signin_ms_id_token(e, base, &p, client_id, nonce);
    if (!idt || crypto_token(at, sizeof at, 32)) {
        free(idt);
        reply_aad_error(r, 500, "server_error", 90033, "Internal error.");
        return;
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "token_type", "Bearer", "scope",
                          "openid profile email", "expires_in", (json_int_t)e->cfg->token_ttl,
                          "ext_expires_in", (json_int_t)e->cfg->token_ttl, "access_token", at,
                          "id_token", idt);
    reply_json(r, 200, o);
    json_decref(o);
    free(idt);
}

static void token_ok(struct emu *e, struct reply *r, struct district *d, uint64_t epoch)
{
    char payload[256], tok[640], nonce[16];
    long long exp = (long long)time(NULL) + e->cfg->token_ttl;
    if (crypto_token(nonce, sizeof nonce, 6))
        nonce[0] = '\0';
    snprintf(payload, sizeof payload, "%s|%lld|%" PRIu64 "|%s", district_id(d), exp, epoch, nonce);
    if (page_tokens_sign(e->tokens, MS_TOKEN_PREFIX, payload, tok, sizeof tok)) {
        reply_aad_error(r, 500, "server_error", 90033, "Internal error.");
        return;
    }
    json_t *o = json_pack("{s:s,s:I,s:I,s:s}", "token_type", "Bearer", "expires_in",
                          (json_int_t)e->cfg->token_ttl, "ext_expires_in",
                          (json_int_t)e->cfg->token_ttl, "access_token", tok);
    reply_json(r, 200, o);
    json_decref(o);
}

/* Delegated reply: token_ok's body plus scope and (with offline_access) a refresh token. */
static void token_ok_delegated(struct emu *e, struct reply *r, struct district *d, uint64_t epoch,
                               bool offline)
{
    char payload[128], rt[400], nonce[24];
    token_ok(e, r, d, epoch);
    if (r->status != 200)
        return;
    json_t *o = json_loadb(r->body.data, r->body.len, 0, NULL);
    if (!o)
        return;
    json_object_set_new(o, "scope", json_string("https://graph.microsoft.com/User.Read.All"));
    if (offline && !crypto_token(nonce, sizeof nonce, 12)) {
        snprintf(payload, sizeof payload, "%s|%" PRIu64 "|%s", district_id(d), epoch, nonce);
        if (!page_tokens_sign(e->tokens, MS_REFRESH_PREFIX, payload, rt, sizeof rt))
            json_object_set_new(o, "refresh_token", json_string(rt));
    }
    reply_json(r, 200, o);
    json_decref(o);
}

static void code_grant(struct emu *e, const struct buf *body, struct district *d, struct reply *r)
{
    char code[800], payload[512], id[DISTRICT_ID_MAX + 1], challenge[128], rh[17], nonce[32];
    long long exp;
    int offline;
    if (!emu_form(body, "code", code, sizeof code) ||
        page_tokens_verify(e->tokens, MS_CODE_PREFIX, code, payload, sizeof payload) ||
        sscanf(payload, "%48[^|]|%lld|%127[^|]|%16[^|]|%d|%31s", id, &exp, challenge, rh, &offline,
               nonce) != 6) {
        reply_aad_error(r, 400, "invalid_grant", 9002313,
                        "Invalid request. Request is malformed or invalid.");
        return;
    }
    if (!code_redeemable(e, body, code, !strcmp(id, district_id(d)), exp, rh, challenge, r))
        return;
    district_lock(d);
    struct district_auth a = *district_auth(d);
    district_unlock(d);
    if (!a.azure_consented) {
        reply_aad_error(r, 400, "invalid_grant", 65001,
                        "The user or administrator has not consented to use the application.");
        return;
    }
    token_ok_delegated(e, r, d, a.azure_epoch, offline != 0);
}

static void refresh_grant(struct emu *e, const struct buf *body, struct district *d,
                          struct reply *r)
{
    char rt[800], payload[256], id[DISTRICT_ID_MAX + 1], nonce[32];
    unsigned long long epoch;
    if (!emu_form(body, "refresh_token", rt, sizeof rt) ||
        page_tokens_verify(e->tokens, MS_REFRESH_PREFIX, rt, payload, sizeof payload) ||
        sscanf(payload, "%48[^|]|%llu|%31s", id, &epoch, nonce) != 3 ||
        strcmp(id, district_id(d))) {
        reply_aad_error(r, 400, "invalid_grant", 9002313,
                        "Invalid request. Request is malformed or invalid.");
        return;
    }
    district_lock(d);
    struct district_auth a = *district_auth(d);
    district_unlock(d);
    if (!a.azure_consented || a.azure_epoch != epoch) {
        reply_aad_error(r, 400, "invalid_grant", 65001,
                        "The user or administrator has not consented to use the application "
                        "(consent was revoked). Send an interactive authorization request for "
                        "this user and resource.");
        return;
    }
    token_ok_delegated(e, r, d, a.azure_epoch, true);
}

static __thread char current_tenant[128];

static void token(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    struct buf body;
    char grant[64], client_id[256], secret[256], scope[512], msg[512];
    const char *tenant = current_tenant;
    buf_init(&body, 65536);
    if (httpd_read_body(conn, &body, 65536)) {
        reply_aad_error(r, 400, "invalid_request", 90014, "The request body is too large.");
        goto out;
    }
    if (!emu_form(&body, "grant_type", grant, sizeof grant)) {
        reply_aad_error(r, 400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'grant_type'.");
        goto out;
    }
    if (!emu_form(&body, "client_id", client_id, sizeof client_id)) {
        reply_aad_error(r, 400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'client_id'.");
        goto out;
    }
    char code[2400];
    if (!strcmp(grant, "authorization_code") && emu_form(&body, "code", code, sizeof code) &&
        !strncmp(code, MS_SIGNIN_PREFIX, strlen(MS_SIGNIN_PREFIX))) {
        signin_code_grant(conn, e, &body, code, r);
        goto out;
    }
    struct district *d = NULL;
    if (strcasecmp(tenant, "common") && strcasecmp(tenant, "organizations"))
        d = emu_district_by_tenant(e, tenant);
    if (!d) {
        snprintf(msg, sizeof msg,
                 "Tenant '%.100s' not found. Check to make sure you have the correct tenant ID "
                 "and are signing into the correct cloud.",
                 tenant);
        reply_aad_error(r, 400, "invalid_request", 90002, msg);
        goto out;
    }
    if (strcmp(client_id, e->cfg->ms_client_id)) {
        snprintf(msg, sizeof msg,
                 "Application with identifier '%.100s' was not found in the directory '%s'.",
                 client_id, district_domain(d));
        reply_aad_error(r, 400, "unauthorized_client", 700016, msg);
        goto out;
    }
    if (!emu_form(&body, "client_secret", secret, sizeof secret) ||
        !crypto_equal(secret, e->cfg->ms_client_secret)) {
        snprintf(msg, sizeof msg,
                 "Invalid client secret provided. Ensure the secret being sent in the request "
                 "is the client secret value, not the client secret ID, for a secret added to "
                 "app '%.100s'.",
                 client_id);
        reply_aad_error(r, 401, "invalid_client", 7000215, msg);
        goto out;
    }
    if (!strcmp(grant, "authorization_code")) {
        code_grant(e, &body, d, r);
        goto out;
    }
    if (!strcmp(grant, "refresh_token")) {
        refresh_grant(e, &body, d, r);
        goto out;
    }
    if (strcmp(grant, "client_credentials")) {
        snprintf(msg, sizeof msg, "The provided grant_type '%.40s' is not supported.", grant);
        reply_aad_error(r, 400, "unsupported_grant_type", 70003, msg);
        goto out;
    }
    if (!emu_form(&body, "scope", scope, sizeof scope) || strcmp(scope, GRAPH_DEFAULT_SCOPE)) {
        reply_aad_error(r, 400, "invalid_scope", 1002012,
                        "The provided value for scope is not valid. Client credential flows "
                        "must have a scope value with /.default suffixed to the resource "
                        "identifier (application ID URI).");
        goto out;
    }
    district_lock(d);
    struct district_auth a = *district_auth(d);
    district_unlock(d);
    if (!a.azure_consented) {
        if (a.azure_ever_consented) {
            snprintf(msg, sizeof msg,
                     "Application with identifier '%.100s' was not found in the directory "
                     "'%s'. This can happen if the application has not been installed by the "
                     "administrator of the tenant or consented to by any user in the tenant.",
                     client_id, district_domain(d));
            reply_aad_error(r, 400, "unauthorized_client", 700016, msg);
        } else {
            reply_aad_error(r, 400, "invalid_grant", 65001,
                            "The user or administrator has not consented to use the application. "
                            "Send an interactive authorization request for this user and "
                            "resource.");
        }
        goto out;
    }
    token_ok(e, r, d, a.azure_epoch);
out:
    buf_free(&body);
}

enum ms_check ms_oauth_check(struct emu *e, const char *tok, struct district **out)
{
    char payload[512], id[DISTRICT_ID_MAX + 1];
    long long exp;
    unsigned long long epoch;
    if (!tok || page_tokens_verify(e->tokens, MS_TOKEN_PREFIX, tok, payload, sizeof payload))
        return MS_INVALID;
    if (sscanf(payload, "%48[^|]|%lld|%llu", id, &exp, &epoch) != 3)
        return MS_INVALID;
    struct district *d = emu_district(e, id);
    if (!d)
        return MS_INVALID;
    if (exp < (long long)time(NULL))
        return MS_EXPIRED;
    district_lock(d);
    struct district_auth a = *district_auth(d);
    district_unlock(d);
    if (a.azure_epoch != epoch || !a.azure_consented)
        return MS_INVALID;
    *out = d;
    return a.azure_permission ? MS_OK : MS_FORBIDDEN;
}

int ms_oauth_handler(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *uri = ri->local_uri;
    char tenant[128];
    if (uri[0] != '/')
        goto notfound;
    const char *slash = strchr(uri + 1, '/');
    if (!slash || (size_t)(slash - uri - 1) >= sizeof tenant || slash == uri + 1)
        goto notfound;
    snprintf(tenant, sizeof tenant, "%.*s", (int)(slash - uri - 1), uri + 1);
    if (!strcmp(slash, "/oauth2/v2.0/authorize") && !strcmp(ri->request_method, "GET"))
        return authorize(conn, e, tenant);
    if (!strcmp(slash, "/v2.0/.well-known/openid-configuration") &&
        !strcmp(ri->request_method, "GET"))
        return emu_signin_ms_discovery(conn, e, tenant);
    if (!strcmp(slash, "/discovery/v2.0/keys") && !strcmp(ri->request_method, "GET"))
        return emu_signin_ms_jwks(conn, e);
    if (!strcmp(slash, "/v2.0/adminconsent") || !strcmp(slash, "/adminconsent"))
        return adminconsent(conn, e, tenant, !strcmp(slash, "/v2.0/adminconsent"));
    if (!strcmp(slash, "/oauth2/v2.0/token") && !strcmp(ri->request_method, "POST")) {
        snprintf(current_tenant, sizeof current_tenant, "%s", tenant);
        return emu_serve(conn, e, R_MS_TOKEN, token);
    }
notfound:
    return httpd_reply(conn, 404, "text/plain", "Not Found", 9, NULL);
}
