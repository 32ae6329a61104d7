#include "google_oauth.h"
#include "base64.h"
#include "crypto.h"
#include "httpd.h"
#include "log.h"
#include "signin.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_CODES   20000
#define MAX_GRANTS  100000
#define MAX_PENDING 2000
#define SCOPE_MAX   2048
#define URI_MAX     1024
#define STATE_MAX   1024

struct scope_def {
    const char *name;
    const char *alias; /* short form accepted on input */
    const char *text;  /* shown on the consent page */
};

static const struct scope_def scopes[] = {
    {"https://www.googleapis.com/auth/admin.directory.user.readonly", NULL,
     "See info about users on your domain"},
    {"https://www.googleapis.com/auth/admin.directory.orgunit.readonly", NULL,
     "View organization units on your domain"},
    {"https://www.googleapis.com/auth/admin.directory.device.chromeos.readonly", NULL,
     "View your Chrome OS devices' metadata"},
    {"openid", NULL, "Associate you with your personal info on Google"},
    {"https://www.googleapis.com/auth/userinfo.email", "email",
     "See your primary Google Account email address"},
    {"https://www.googleapis.com/auth/userinfo.profile", "profile",
     "See your personal info, including any personal info you've made publicly available"},
    {"https://www.googleapis.com/auth/admin.directory.user", NULL,
     "View and manage the provisioning of users on your domain"},
    {"https://www.googleapis.com/auth/admin.directory.orgunit", NULL,
     "View and manage organization units on your domain"},
    {"https://www.googleapis.com/auth/admin.directory.device.chromeos", NULL,
     "View and manage your Chrome OS devices' metadata"},
};
#define NSCOPES (sizeof scopes / sizeof scopes[0])

struct auth_request {
    char district[DISTRICT_ID_MAX + 1];
    char user[320];
    bool admin;
    char client_id[256];
    char redirect_uri[URI_MAX];
    char state[STATE_MAX];
    unsigned scopes;
    char challenge[128];
    char method[8];
    bool prompt_consent;
    bool include_granted;
    bool offline;    /* access_type=offline: a refresh token may be issued */
    char nonce[256]; /* OpenID Connect: returned in the id_token */
};

#define GSCOPE_OPENID (1u << 3) /* "openid": the token reply carries an id_token */

struct code {
    char code[160];
    struct auth_request req;
    time_t expires;
    bool used;
};

struct grant {
    uint64_t id;
    char district[DISTRICT_ID_MAX + 1];
    char user[320];
    char client_id[256];
    unsigned scopes;
    bool admin;
    char refresh[128];
    bool revoked;
    uint64_t epoch;
};

struct pending {
    char id[48];
    struct auth_request req;
    time_t expires;
};

struct google_oauth {
    pthread_mutex_t mu;
    struct code *codes;
    size_t ncodes;
    struct grant *grants;
    size_t ngrants;
    struct pending *pending;
    size_t npending;
    uint64_t next_grant;
};

struct google_oauth *google_oauth_new(void)
{
    struct google_oauth *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->codes = calloc(MAX_CODES, sizeof *g->codes);
    g->grants = calloc(1024, sizeof *g->grants);
    g->pending = calloc(MAX_PENDING, sizeof *g->pending);
    if (!g->codes || !g->grants || !g->pending) {
        google_oauth_destroy(g);
        return NULL;
    }
    pthread_mutex_init(&g->mu, NULL);
    g->next_grant = 1;
    return g;
}

void google_oauth_destroy(struct google_oauth *g)
{
    if (!g)
        return;
    free(g->codes);
    free(g->grants);
    free(g->pending);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* ---- scopes ---- */

/* Parse a space-separated scope list. Returns 0, or -1 naming the unknown scope in bad. */
static int scopes_parse(const char *text, unsigned *out, char *bad, size_t badlen)
{
    unsigned m = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '+')
            p++;
        const char *e = p;
        while (*e && *e != ' ' && *e != '+')
            e++;
        size_t n = (size_t)(e - p);
        if (!n)
            break;
        size_t i;
        for (i = 0; i < NSCOPES; i++)
            if ((strlen(scopes[i].name) == n && !strncmp(scopes[i].name, p, n)) ||
                (scopes[i].alias && strlen(scopes[i].alias) == n &&
                 !strncmp(scopes[i].alias, p, n)))
                break;
        if (i == NSCOPES) {
            snprintf(bad, badlen, "%.*s", (int)(n > 200 ? 200 : n), p);
            return -1;
        }
        m |= 1u << i;
        p = e;
    }
    *out = m;
    return 0;
}

static void scopes_text(unsigned m, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NSCOPES; i++)
        if (m & (1u << i)) {
            int w = snprintf(out + used, n - used, "%s%s", used ? " " : "", scopes[i].name);
            if (w < 0 || (size_t)w >= n - used)
                return;
            used += (size_t)w;
        }
}

/* ---- small replies ---- */

static int html_page(struct mg_connection *conn, int status, const char *title, const char *msg)
{
    struct buf b;
    buf_init(&b, 0);
    if (buf_appends(&b, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"icon\" "
                        "href=\"data:,\"><title>") ||
        buf_appends(&b, title) ||
        buf_appends(&b, "</title></head><body><h1>Sign in with Google (emulator)</h1><h2>") ||
        buf_appends(&b, title) || buf_appends(&b, "</h2><p>") || buf_appends(&b, msg) ||
        buf_appends(&b, "</p></body></html>")) {
        buf_free(&b);
        return httpd_reply(conn, 500, "text/plain", "out of memory", 13, NULL);
    }
    int rc = httpd_reply(conn, status, "text/html; charset=utf-8", b.data, b.len, NULL);
    buf_free(&b);
    return rc;
}

static void html_escape(struct buf *b, const char *s, int *fail)
{
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '&':
            rep = "&amp;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            break;
        }
        if (rep ? buf_appends(b, rep) : buf_append(b, s, 1))
            *fail = 1;
    }
}

/* ---- codes and grants ---- */

static int issue_code(struct google_oauth *g, const struct auth_request *req, long ttl, char *out,
                      size_t outlen)
{
    char rnd[64];
    time_t now = time(NULL);
    if (crypto_token(rnd, sizeof rnd, 32))
        return -1;
    snprintf(out, outlen, "4/0A%s", rnd);
    pthread_mutex_lock(&g->mu);
    /* drop used or expired codes to make room */
    size_t k = 0;
    for (size_t i = 0; i < g->ncodes; i++)
        if (!g->codes[i].used && g->codes[i].expires >= now - 600)
            g->codes[k++] = g->codes[i];
    g->ncodes = k;
    if (g->ncodes == MAX_CODES) {
        pthread_mutex_unlock(&g->mu);
        return -1;
    }
    struct code *c = &g->codes[g->ncodes++];
    memset(c, 0, sizeof *c);
    snprintf(c->code, sizeof c->code, "%.159s", out);
    c->req = *req;
    c->expires = now + ttl;
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static uint64_t district_epoch(struct district *d)
{
    district_lock(d);
    uint64_t e = district_auth(d)->google_epoch;
    district_unlock(d);
    return e;
}

static int access_token(struct emu *e, const struct grant *gr, char *out, size_t outlen)
{
    char payload[256], nonce[16];
    if (crypto_token(nonce, sizeof nonce, 6))
        return -1;
    snprintf(payload, sizeof payload, "%s|%" PRIu64 "|%u|%d|%lld|%" PRIu64 "|%s", gr->district,
             gr->id, gr->scopes, gr->admin ? 1 : 0, (long long)time(NULL) + e->cfg->token_ttl,
             gr->epoch, nonce);
    return page_tokens_sign(e->tokens, "ya29.a0", payload, out, outlen);
}

struct token_claims {
    char district[DISTRICT_ID_MAX + 1];
    uint64_t grant;
    unsigned scopes;
    int admin;
    long long exp;
    uint64_t epoch;
};

static int parse_access(struct emu *e, const char *token, struct token_claims *c)
{
    char payload[512];
    unsigned long long grant, epoch;
    if (page_tokens_verify(e->tokens, "ya29.a0", token, payload, sizeof payload))
        return -1;
    if (sscanf(payload, "%48[^|]|%llu|%u|%d|%lld|%llu", c->district, &grant, &c->scopes, &c->admin,
               &c->exp, &epoch) != 6)
        return -1;
    c->grant = grant;
    c->epoch = epoch;
    return 0;
}

static struct grant *grant_by_id(struct google_oauth *g, uint64_t id)
{
    for (size_t i = 0; i < g->ngrants; i++)
        if (g->grants[i].id == id)
            return &g->grants[i];
    return NULL;
}

static struct grant *grant_by_refresh(struct google_oauth *g, const char *rt)
{
    for (size_t i = 0; i < g->ngrants; i++)
        if (g->grants[i].refresh[0] && crypto_equal(g->grants[i].refresh, rt))
            return &g->grants[i];
    return NULL;
}

static bool grant_live(struct grant *gr, struct district *d)
{
    return gr && !gr->revoked && d && gr->epoch == district_epoch(d);
}

int google_oauth_check(struct emu *e, const char *token, struct google_access *out)
{
    struct token_claims c;
    int rc = -1;
    if (!token || parse_access(e, token, &c))
        return -1;
    if (c.exp < (long long)time(NULL))
        return -1;
    struct district *d = emu_district(e, c.district);
    if (!d)
        return -1;
    pthread_mutex_lock(&e->google->mu);
    struct grant *gr = grant_by_id(e->google, c.grant);
    if (grant_live(gr, d) && gr->epoch == c.epoch) {
        out->district = d;
        out->scopes = c.scopes;
        out->admin = c.admin != 0;
        rc = 0;
    }
    pthread_mutex_unlock(&e->google->mu);
    return rc;
}

void google_oauth_revoke_district(struct emu *e, struct district *d)
{
    district_lock(d);
    district_auth(d)->google_epoch++;
    district_unlock(d);
    pthread_mutex_lock(&e->google->mu);
    for (size_t i = 0; i < e->google->ngrants; i++)
        if (!strcmp(e->google->grants[i].district, district_id(d)))
            e->google->grants[i].revoked = true;
    pthread_mutex_unlock(&e->google->mu);
}

/* ---- authorization endpoint ---- */

static int finish(struct mg_connection *conn, struct emu *e, const struct auth_request *req,
                  bool allow, unsigned granted)
{
    if (!allow) {
        return emu_redirect_error(conn, req->redirect_uri, "access_denied", NULL,
                                  req->state[0] ? req->state : NULL);
    }
    struct auth_request r = *req;
    char code[128], scope[SCOPE_MAX];
    r.scopes = granted;
    if (issue_code(e->google, &r, (long)e->cfg->code_ttl, code, sizeof code))
        return html_page(conn, 500, "Error 500", "Too many outstanding codes.");
    scopes_text(granted, scope, sizeof scope);
    const char *kv[] = {"state",    r.state[0] ? r.state : NULL,
                        "code",     code,
                        "scope",    scope,
                        "authuser", "0",
                        "prompt",   "consent",
                        NULL};
    return emu_redirect(conn, r.redirect_uri, kv);
}

static int consent_page(struct mg_connection *conn, struct emu *e, const struct auth_request *req)
{
    struct google_oauth *g = e->google;
    char id[48];
    struct buf b;
    int fail = 0, rc;
    if (crypto_token(id, sizeof id, 18))
        return html_page(conn, 500, "Error 500", "No randomness.");
    time_t now = time(NULL);
    pthread_mutex_lock(&g->mu);
    size_t k = 0;
    for (size_t i = 0; i < g->npending; i++)
        if (g->pending[i].expires >= now)
            g->pending[k++] = g->pending[i];
    g->npending = k;
    if (g->npending == MAX_PENDING) {
        pthread_mutex_unlock(&g->mu);
        return html_page(conn, 503, "Error 503", "Too many consent pages open.");
    }
    struct pending *p = &g->pending[g->npending++];
    snprintf(p->id, sizeof p->id, "%s", id);
    p->req = *req;
    p->expires = now + 3600;
    pthread_mutex_unlock(&g->mu);

    buf_init(&b, 0);
    fail |= buf_appends(&b, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"icon\" "
                            "href=\"data:,\"><title>Sign in - "
                            "Google Accounts (emulator)</title></head><body>"
                            "<h1>K12 Panel wants to access your Google Account</h1><p>");
    html_escape(&b, req->user, &fail);
    fail |= buf_appends(&b, "</p><form id=\"consent\" method=\"post\" "
                            "action=\"/o/oauth2/v2/auth/consent\">"
                            "<input type=\"hidden\" name=\"consent_id\" value=\"");
    fail |= buf_appends(&b, id);
    fail |= buf_appends(&b, "\"><ul>");
    int n = 0;
    for (size_t i = 0; i < NSCOPES; i++) {
        if (!(req->scopes & (1u << i)))
            continue;
        fail |= buf_appendf(&b,
                            "<li><input type=\"checkbox\" id=\"scope-%d\" name=\"scope-%d\" "
                            "value=\"%s\" checked> <label for=\"scope-%d\">",
                            n, n, scopes[i].name, n);
        html_escape(&b, scopes[i].text, &fail);
        fail |= buf_appendf(&b, " <code>%s</code></label></li>", scopes[i].name);
        n++;
    }
    fail |=
        buf_appends(&b, "</ul><button type=\"submit\" id=\"deny\" name=\"decision\" "
                        "value=\"deny\">Deny</button> <button type=\"submit\" id=\"allow\" "
                        "name=\"decision\" value=\"allow\">Allow</button></form></body></html>");
    if (fail) {
        buf_free(&b);
        return html_page(conn, 500, "Error 500", "Out of memory.");
    }
    rc = httpd_reply(conn, 200, "text/html; charset=utf-8", b.data, b.len, NULL);
    buf_free(&b);
    return rc;
}

static bool client_known(struct emu *e, const char *client_id)
{
    return client_id && !strcmp(client_id, e->cfg->google_client_id);
}

static bool user_is_admin(struct district *d, const char *email, bool *exists)
{
    bool admin = false;
    *exists = false;
    if (!strcasecmp(email, district_admin_email(d))) {
        *exists = true;
        return true;
    }
    district_lock(d);
    long i = district_find(d, DC_GUSERS, email);
    if (i >= 0) {
        const struct ditem *it = district_item(d, DC_GUSERS, (size_t)i);
        if (!(it->flags & DITEM_DELETED)) {
            *exists = true;
            admin = strstr(it->json, "\"isAdmin\":true") != NULL;
        }
    }
    district_unlock(d);
    return admin;
}

static int authorize(struct mg_connection *conn, struct emu *e)
{
    struct auth_request req;
    char client_id[256], redirect_uri[URI_MAX], response_type[32], scope[SCOPE_MAX],
        state[STATE_MAX], challenge[128], method[16], hint[320], decision[16], drop[SCOPE_MAX],
        prompt[64], igs[16], bad[256];
    memset(&req, 0, sizeof req);
    if (!emu_param(conn, "client_id", client_id, sizeof client_id) || !client_known(e, client_id))
        return html_page(conn, 401, "Error 401: invalid_client", "The OAuth client was not found.");
    if (!emu_param(conn, "redirect_uri", redirect_uri, sizeof redirect_uri) ||
        (strncmp(redirect_uri, "http://", 7) && strncmp(redirect_uri, "https://", 8)))
        return html_page(conn, 400, "Error 400: redirect_uri_mismatch",
                         "The redirect URI in the request does not match the ones authorized "
                         "for the OAuth client.");
    snprintf(req.client_id, sizeof req.client_id, "%s", client_id);
    snprintf(req.redirect_uri, sizeof req.redirect_uri, "%s", redirect_uri);
    if (emu_param(conn, "state", state, sizeof state))
        snprintf(req.state, sizeof req.state, "%s", state);
    if (!emu_param(conn, "response_type", response_type, sizeof response_type) ||
        strcmp(response_type, "code")) {
        return emu_redirect_error(conn, redirect_uri, "unsupported_response_type", NULL,
                                  req.state[0] ? req.state : NULL);
    }
    if (!emu_param(conn, "scope", scope, sizeof scope) || !*scope)
        return html_page(conn, 400, "Error 400: invalid_request",
                         "Missing required parameter: scope");
    if (scopes_parse(scope, &req.scopes, bad, sizeof bad)) {
        struct buf b;
        int fail = 0;
        buf_init(&b, 4096);
        fail |= buf_appends(&b, "Some requested scopes were invalid: ");
        html_escape(&b, bad, &fail);
        int rc = html_page(conn, 400, "Error 400: invalid_scope", fail ? "" : b.data);
        buf_free(&b);
        return rc;
    }
    if (emu_param(conn, "code_challenge", challenge, sizeof challenge)) {
        if (!emu_param(conn, "code_challenge_method", method, sizeof method))
            snprintf(method, sizeof method, "plain");
        if (strcmp(method, "S256") && strcmp(method, "plain"))
            return html_page(conn, 400, "Error 400: invalid_request",
                             "Invalid code_challenge_method.");
        snprintf(req.challenge, sizeof req.challenge, "%s", challenge);
        snprintf(req.method, sizeof req.method, "%.7s", method);
    }
    req.prompt_consent =
        emu_param(conn, "prompt", prompt, sizeof prompt) && strstr(prompt, "consent") != NULL;
    req.include_granted =
        emu_param(conn, "include_granted_scopes", igs, sizeof igs) && !strcmp(igs, "true");
    req.offline = emu_param(conn, "access_type", igs, sizeof igs) && !strcmp(igs, "offline");
    char nonce[300];
    if (emu_param(conn, "nonce", nonce, sizeof nonce)) {
        if (strlen(nonce) >= sizeof req.nonce)
            return html_page(conn, 400, "Error 400: invalid_request", "nonce is too long.");
        snprintf(req.nonce, sizeof req.nonce, "%s", nonce);
    }
    const char *h = emu_param(conn, "login_hint", hint, sizeof hint);
    struct signin_person person;
    bool signin_admin = h && *h && emu_signin_find(e, h, "google", &person);
    struct district *d = signin_admin ? person.district : emu_district_for_hint(e, h);
    /* several Google accounts and no hint: Google asks which one */
    if (!d && !(h && *h) && (req.scopes & GSCOPE_OPENID))
        return emu_signin_picker(conn, e, "google");
    if (!d)
        return html_page(conn, 400, "Couldn't find your Google Account",
                         "No emulated district matches login_hint (or several districts exist "
                         "and no login_hint was given).");
    bool exists = signin_admin;
    const char *user = h && *h ? h : district_admin_email(d);
    req.admin = signin_admin || user_is_admin(d, user, &exists);
    if (!exists)
        return html_page(conn, 400, "Couldn't find your Google Account",
                         "login_hint names no user of this district.");
    snprintf(req.district, sizeof req.district, "%s", district_id(d));
    snprintf(req.user, sizeof req.user, "%s", user);
    for (char *p = req.user; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');

    const char *dec = emu_param(conn, "emulator_decision", decision, sizeof decision);
    if (!dec)
        dec = e->cfg->consent;
    unsigned granted = req.scopes;
    if (emu_param(conn, "emulator_drop_scope", drop, sizeof drop)) {
        unsigned dm = 0;
        if (!scopes_parse(drop, &dm, bad, sizeof bad))
            granted &= ~dm;
    }
    if (!strcmp(dec, "allow") || !strcmp(dec, "auto"))
        return finish(conn, e, &req, true, granted);
    if (!strcmp(dec, "deny"))
        return finish(conn, e, &req, false, 0);
    return consent_page(conn, e, &req);
}

int google_oauth_authorize(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    atomic_fetch_add(&e->requests[R_GOOGLE_AUTH], 1);
    return authorize(conn, e);
}

int google_oauth_consent(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    struct buf body;
    char id[64], decision[16], name[16], val[256];
    struct auth_request req;
    bool found = false;
    int rc;
    buf_init(&body, 65536);
    if (httpd_read_body(conn, &body, 65536)) {
        buf_free(&body);
        return html_page(conn, 413, "Error 413", "Request too large.");
    }
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (!body.len && ri->query_string && buf_appends(&body, ri->query_string)) {
        buf_free(&body);
        return html_page(conn, 500, "Error 500", "Out of memory.");
    }
    if (!emu_form(&body, "consent_id", id, sizeof id) ||
        !emu_form(&body, "decision", decision, sizeof decision)) {
        buf_free(&body);
        return html_page(conn, 400, "Error 400: invalid_request", "Incomplete consent form.");
    }
    pthread_mutex_lock(&e->google->mu);
    for (size_t i = 0; i < e->google->npending; i++) {
        if (!strcmp(e->google->pending[i].id, id) && e->google->pending[i].expires >= time(NULL)) {
            req = e->google->pending[i].req;
            e->google->pending[i] = e->google->pending[--e->google->npending];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&e->google->mu);
    if (!found) {
        buf_free(&body);
        return html_page(conn, 400, "Error 400: invalid_request",
                         "This consent page has expired; start again.");
    }
    unsigned granted = 0;
    for (int n = 0; n < 32; n++) {
        snprintf(name, sizeof name, "scope-%d", n);
        unsigned m = 0;
        char bad[64];
        if (emu_form(&body, name, val, sizeof val) && !scopes_parse(val, &m, bad, sizeof bad))
            granted |= m & req.scopes;
    }
    rc = finish(conn, e, &req, !strcmp(decision, "allow"), granted);
    buf_free(&body);
    return rc;
}

/* ---- token endpoint ---- */

/* client_id/secret from the form or HTTP Basic. */
static void client_creds(struct mg_connection *conn, const struct buf *body, char *id, size_t idn,
                         char *secret, size_t sn)
{
    id[0] = secret[0] = '\0';
    if (!emu_form(body, "client_id", id, idn))
        id[0] = '\0';
    if (!emu_form(body, "client_secret", secret, sn))
        secret[0] = '\0';
    const char *h = mg_get_header(conn, "Authorization");
    if (h && !strncasecmp(h, "Basic ", 6)) {
        uint8_t dec[600];
        long n = base64_decode(BASE64_STD, h + 6, strlen(h + 6), dec, sizeof dec - 1);
        if (n > 0) {
            dec[n] = '\0';
            char *colon = strchr((char *)dec, ':');
            if (colon) {
                *colon = '\0';
                snprintf(id, idn, "%.*s", (int)(idn - 1), (char *)dec);
                snprintf(secret, sn, "%.*s", (int)(sn - 1), colon + 1);
            }
        }
    }
}

static void token_reply(struct emu *e, struct reply *r, const struct grant *gr, bool with_refresh,
                        const char *id_token)
{
    char at[512], scope[SCOPE_MAX];
    if (access_token(e, gr, at, sizeof at)) {
        reply_oauth_error(r, 500, "internal_failure", "Internal error.");
        return;
    }
    scopes_text(gr->scopes, scope, sizeof scope);
    json_t *body = json_pack("{s:s,s:I,s:s,s:s}", "access_token", at, "expires_in",
                             (json_int_t)e->cfg->token_ttl, "scope", scope, "token_type", "Bearer");
    if (with_refresh)
        json_object_set_new(body, "refresh_token", json_string(gr->refresh));
    if (id_token)
        json_object_set_new(body, "id_token", json_string(id_token));
    reply_json(r, 200, body);
    json_decref(body);
}

static void grant_code(struct emu *e, struct mg_connection *conn, const struct buf *body,
                       const char *client_id, struct reply *r)
{
    char code[128], redirect_uri[URI_MAX], verifier[256];
    struct google_oauth *g = e->google;
    struct code c;
    bool found = false, reused = false;
    if (!emu_form(body, "code", code, sizeof code)) {
        reply_oauth_error(r, 400, "invalid_request", "Missing required parameter: code");
        return;
    }
    time_t now = time(NULL);
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->ncodes; i++) {
        if (!strcmp(g->codes[i].code, code)) {
            found = true;
            reused = g->codes[i].used;
            c = g->codes[i];
            g->codes[i].used = true;
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
    if (!found) {
        reply_oauth_error(r, 400, "invalid_grant", "Malformed auth code.");
        return;
    }
    if (reused || c.expires < now) {
        reply_oauth_error(r, 400, "invalid_grant", "Bad Request");
        return;
    }
    if (strcmp(c.req.client_id, client_id)) {
        reply_oauth_error(r, 400, "unauthorized_client", "Unauthorized");
        return;
    }
    if (!emu_form(body, "redirect_uri", redirect_uri, sizeof redirect_uri) ||
        strcmp(redirect_uri, c.req.redirect_uri)) {
        reply_oauth_error(r, 400, "redirect_uri_mismatch", "Bad Request");
        return;
    }
    if (c.req.challenge[0]) {
        char computed[260];
        if (!emu_form(body, "code_verifier", verifier, sizeof verifier) || !*verifier) {
            reply_oauth_error(r, 400, "invalid_grant", "Missing code verifier.");
            return;
        }
        if (!strcmp(c.req.method, "S256")) {
            if (crypto_pkce_challenge(verifier, computed)) {
                reply_oauth_error(r, 400, "invalid_grant", "Invalid code verifier.");
                return;
            }
        } else {
            snprintf(computed, sizeof computed, "%s", verifier);
        }
        if (!crypto_equal(computed, c.req.challenge)) {
            reply_oauth_error(r, 400, "invalid_grant", "Invalid code verifier.");
            return;
        }
    }
    struct district *d = emu_district(e, c.req.district);
    if (!d) {
        reply_oauth_error(r, 400, "invalid_grant", "Bad Request");
        return;
    }
    uint64_t epoch = district_epoch(d);
    /* As Google keeps them: each refresh token is a grant of its own, with the scopes it was
     * issued with, and the user's earlier refresh tokens for the app stay valid when a new
     * one is issued (on the first offline consent, or when the user was asked again:
     * prompt=consent). An authorization that issues no refresh token (a sign-in with online
     * access, a consent without prompt) answers an access token of its own scopes and leaves
     * the refresh tokens' scopes as they were, but include_granted_scopes (incremental
     * authorization) adds its scopes to the newest one. Revoking any token of the app removes
     * the user's whole grant to it (revoke below). */
    struct grant out;
    pthread_mutex_lock(&g->mu);
    struct grant *gr = NULL;
    for (size_t i = g->ngrants; i-- > 0;) { /* the newest grant of (district, user, client) */
        struct grant *x = &g->grants[i];
        if (!x->revoked && x->epoch == epoch && !strcmp(x->district, c.req.district) &&
            !strcmp(x->user, c.req.user) && !strcmp(x->client_id, c.req.client_id)) {
            gr = x;
            break;
        }
    }
    unsigned scopes = c.req.scopes | (gr && c.req.include_granted ? gr->scopes : 0);
    bool with_refresh = c.req.offline && (!gr || c.req.prompt_consent || !gr->refresh[0]);
    if (!gr || (with_refresh && gr->refresh[0])) {
        if (g->ngrants % 1024 == 0 && g->ngrants) {
            struct grant *ng = realloc(g->grants, (g->ngrants + 1024) * sizeof *ng);
            if (!ng || g->ngrants >= MAX_GRANTS) {
                if (ng)
                    g->grants = ng;
                pthread_mutex_unlock(&g->mu);
                reply_oauth_error(r, 500, "internal_failure", "Too many grants.");
                return;
            }
            g->grants = ng;
        }
        gr = &g->grants[g->ngrants++];
        memset(gr, 0, sizeof *gr);
        gr->id = g->next_grant++;
        snprintf(gr->district, sizeof gr->district, "%s", c.req.district);
        snprintf(gr->user, sizeof gr->user, "%s", c.req.user);
        snprintf(gr->client_id, sizeof gr->client_id, "%s", c.req.client_id);
        gr->epoch = epoch;
        gr->scopes = scopes;
    } else if (with_refresh || !gr->refresh[0] || c.req.include_granted) {
        gr->scopes = with_refresh || !gr->refresh[0] ? scopes : (gr->scopes | c.req.scopes);
    }
    gr->admin = c.req.admin;
    if (with_refresh) {
        char rnd[64];
        if (crypto_token(rnd, sizeof rnd, 32) == 0)
            snprintf(gr->refresh, sizeof gr->refresh, "1//0g%s", rnd);
    }
    out = *gr;
    out.scopes = scopes; /* this authorization's access token */
    pthread_mutex_unlock(&g->mu);
    char *id_token = NULL;
    if (c.req.scopes & GSCOPE_OPENID) {
        char base[512];
        struct signin_person p;
        emu_base_url(conn, base, sizeof base);
        emu_signin_person(d, c.req.user, &p);
        id_token = emu_signin_google_id_token(e, base, &p, c.req.client_id, c.req.nonce);
        if (!id_token) {
            reply_oauth_error(r, 500, "internal_failure", "Internal error.");
            return;
        }
    }
    token_reply(e, r, &out, with_refresh, id_token);
    free(id_token);
}

static void grant_refresh(struct emu *e, const struct buf *body, const char *client_id,
                          struct reply *r)
{
    char rt[256];
    struct grant out;
    bool ok = false, wrong_client = false;
    if (!emu_form(body, "refresh_token", rt, sizeof rt) || !*rt) {
        reply_oauth_error(r, 400, "invalid_request", "Missing required parameter: refresh_token");
        return;
    }
    pthread_mutex_lock(&e->google->mu);
    struct grant *gr = grant_by_refresh(e->google, rt);
    if (gr) {
        out = *gr;
        wrong_client = strcmp(gr->client_id, client_id) != 0;
    }
    pthread_mutex_unlock(&e->google->mu);
    if (gr && !wrong_client) {
        struct district *d = emu_district(e, out.district);
        ok = !out.revoked && d && out.epoch == district_epoch(d);
    }
    if (wrong_client) {
        reply_oauth_error(r, 400, "unauthorized_client", "Unauthorized");
        return;
    }
    if (!ok) {
        reply_oauth_error(r, 400, "invalid_grant", "Token has been expired or revoked.");
        return;
    }
    token_reply(e, r, &out, false, NULL);
}

static void token(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    struct buf body;
    char grant_type[64], client_id[256], secret[256];
    buf_init(&body, 65536);
    if (httpd_read_body(conn, &body, 65536)) {
        reply_oauth_error(r, 400, "invalid_request", "Request body too large.");
        goto out;
    }
    client_creds(conn, &body, client_id, sizeof client_id, secret, sizeof secret);
    if (!client_id[0]) {
        reply_oauth_error(r, 400, "invalid_request", "Could not determine client ID from request.");
        goto out;
    }
    if (!client_known(e, client_id)) {
        reply_oauth_error(r, 401, "invalid_client", "The OAuth client was not found.");
        goto out;
    }
    if (!crypto_equal(secret, e->cfg->google_client_secret)) {
        reply_oauth_error(r, 401, "invalid_client", "Unauthorized");
        goto out;
    }
    if (!emu_form(&body, "grant_type", grant_type, sizeof grant_type)) {
        reply_oauth_error(r, 400, "unsupported_grant_type", "Invalid grant_type: ");
        goto out;
    }
    if (!strcmp(grant_type, "authorization_code")) {
        grant_code(e, conn, &body, client_id, r);
    } else if (!strcmp(grant_type, "refresh_token")) {
        grant_refresh(e, &body, client_id, r);
    } else {
        char msg[128];
        snprintf(msg, sizeof msg, "Invalid grant_type: %.60s", grant_type);
        reply_oauth_error(r, 400, "unsupported_grant_type", msg);
    }
out:
    buf_free(&body);
}

int google_oauth_token(struct mg_connection *conn, void *ctx)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->request_method, "POST"))
        return httpd_reply(conn, 405, "text/plain", "Method Not Allowed", 18, "Allow: POST\r\n");
    return emu_serve(conn, ctx, R_GOOGLE_TOKEN, token);
}

static void revoke(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    struct buf body;
    char tok[600];
    bool done = false;
    buf_init(&body, 65536);
    if (httpd_read_body(conn, &body, 65536))
        goto bad;
    if (!emu_form(&body, "token", tok, sizeof tok) && !emu_param(conn, "token", tok, sizeof tok))
        goto bad;
    struct token_claims c;
    bool is_access = parse_access(e, tok, &c) == 0;
    pthread_mutex_lock(&e->google->mu);
    struct grant *gr =
        is_access ? grant_by_id(e->google, c.grant) : grant_by_refresh(e->google, tok);
    if (gr && !gr->revoked) {
        /* The user's grant to the app goes: every refresh token of (district, user, client). */
        for (size_t i = 0; i < e->google->ngrants; i++) {
            struct grant *x = &e->google->grants[i];
            if (!strcmp(x->district, gr->district) && !strcmp(x->user, gr->user) &&
                !strcmp(x->client_id, gr->client_id))
                x->revoked = true;
        }
        done = true;
    }
    pthread_mutex_unlock(&e->google->mu);
    if (!done)
        goto bad;
    r->status = 200;
    if (buf_appends(&r->body, "{}"))
        r->status = 500;
    buf_free(&body);
    return;
bad:
    reply_oauth_error(r, 400, "invalid_token", "Token expired or revoked");
    buf_free(&body);
}

int google_oauth_revoke(struct mg_connection *conn, void *ctx)
{
    return emu_serve(conn, ctx, R_GOOGLE_REVOKE, revoke);
}

static void tokeninfo(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    char tok[600];
    struct buf body;
    struct token_claims c;
    struct google_access ga;
    buf_init(&body, 65536);
    if (httpd_read_body(conn, &body, 65536) ||
        (!emu_param(conn, "access_token", tok, sizeof tok) &&
         !emu_form(&body, "access_token", tok, sizeof tok)) ||
        parse_access(e, tok, &c) || google_oauth_check(e, tok, &ga)) {
        reply_oauth_error(r, 400, "invalid_token", "Invalid Value");
        buf_free(&body);
        return;
    }
    char scope[SCOPE_MAX], exp[32], left[32];
    scopes_text(c.scopes, scope, sizeof scope);
    snprintf(exp, sizeof exp, "%lld", c.exp);
    snprintf(left, sizeof left, "%lld", c.exp - (long long)time(NULL));
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "azp", e->cfg->google_client_id, "aud",
                          e->cfg->google_client_id, "scope", scope, "exp", exp, "expires_in", left,
                          "access_type", "offline");
    reply_json(r, 200, o);
    json_decref(o);
    buf_free(&body);
}

int google_oauth_tokeninfo(struct mg_connection *conn, void *ctx)
{
    return emu_serve(conn, ctx, R_GOOGLE_TOKENINFO, tokeninfo);
}
