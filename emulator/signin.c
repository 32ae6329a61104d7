/* signin: the emulated providers' OpenID Connect keys, documents, people and id_tokens. */
#include "signin.h"

#include "buf.h"
#include "crypto.h"
#include "httpd.h"
#include "json.h"
#include "log.h"

#include <cjose/cjose.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define KEY_BITS 2048

struct person_entry {
    char district[DISTRICT_ID_MAX + 1];
    char email[320];
    bool google, microsoft;
};

struct emu_signin {
    pthread_mutex_t mu; /* guards everything below, and every use of the cjose keys */
    cjose_jwk_t *current, *previous, *rogue;
    int generation;
    enum signin_mode mode;
    struct person_entry *people;
    size_t npeople;
};

static cjose_jwk_t *new_key(const char *kid_prefix, int generation)
{
    static const uint8_t e65537[] = {1, 0, 1};
    cjose_err cerr;
    char kid[64], rnd[16];
    cjose_jwk_t *k = cjose_jwk_create_RSA_random(KEY_BITS, e65537, sizeof e65537, &cerr);
    if (!k || crypto_token(rnd, sizeof rnd, 6)) {
        cjose_jwk_release(k);
        return NULL;
    }
    snprintf(kid, sizeof kid, "%s-%d-%s", kid_prefix, generation, rnd);
    if (!cjose_jwk_set_kid(k, kid, strlen(kid), &cerr)) {
        cjose_jwk_release(k);
        return NULL;
    }
    return k;
}

struct emu_signin *emu_signin_new(char *err, size_t errlen)
{
    struct emu_signin *s = calloc(1, sizeof *s);
    if (!s || !(s->people = calloc(SIGNIN_MAX_PEOPLE, sizeof *s->people))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->generation = 1;
    s->current = new_key("emu", s->generation);
    s->rogue = new_key("rogue", 0); /* signs tokens no JWKS can verify */
    if (!s->current || !s->rogue) {
        snprintf(err, errlen, "cannot generate the id_token signing keys");
        emu_signin_destroy(s);
        return NULL;
    }
    return s;
}

void emu_signin_destroy(struct emu_signin *s)
{
    if (!s)
        return;
    cjose_jwk_release(s->current);
    cjose_jwk_release(s->previous);
    cjose_jwk_release(s->rogue);
    pthread_mutex_destroy(&s->mu);
    free(s->people);
    free(s);
}

/* ---- people ---- */

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Stable provider ids derived from (district, email): a person keeps them across restarts
 * of the emulator with the same districts, as they would at the provider. */
static void person_ids(struct signin_person *p)
{
    char hex[65], in[400];
    snprintf(in, sizeof in, "%s|%s", district_id(p->district), p->email);
    crypto_sha256_hex(in, strlen(in), hex);
    /* Google's sub: 21 decimal digits */
    p->google_sub[0] = '1';
    for (int i = 1; i < 21; i++)
        p->google_sub[i] = (char)('0' + (hex[i] % 10));
    p->google_sub[21] = '\0';
    snprintf(p->ms_oid, sizeof p->ms_oid, "%.8s-%.4s-4%.3s-a%.3s-%.12s", hex + 21, hex + 29,
             hex + 33, hex + 36, hex + 39);
}

void emu_signin_person(struct district *d, const char *email, struct signin_person *out)
{
    memset(out, 0, sizeof *out);
    out->district = d;
    snprintf(out->email, sizeof out->email, "%s", email);
    lower(out->email);
    person_ids(out);
}

int emu_signin_add(struct emu *e, struct district *d, const char *email, bool google,
                   bool microsoft)
{
    struct emu_signin *s = e->signin;
    char addr[320];
    int rc = -2;
    if (!email || strlen(email) >= sizeof addr)
        return -1;
    snprintf(addr, sizeof addr, "%s", email);
    lower(addr);
    const char *at = strchr(addr, '@');
    if (!at || at == addr || strcasecmp(at + 1, district_domain(d)) != 0)
        return -1;
    pthread_mutex_lock(&s->mu);
    struct person_entry *p = NULL;
    for (size_t i = 0; i < s->npeople; i++)
        if (!strcmp(s->people[i].email, addr))
            p = &s->people[i];
    if (!p && s->npeople < SIGNIN_MAX_PEOPLE)
        p = &s->people[s->npeople++];
    if (p) {
        snprintf(p->district, sizeof p->district, "%s", district_id(d));
        snprintf(p->email, sizeof p->email, "%s", addr);
        p->google = google;
        p->microsoft = microsoft;
        rc = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

bool emu_signin_find(struct emu *e, const char *email, const char *provider,
                     struct signin_person *out)
{
    struct emu_signin *s = e->signin;
    bool ms = !strcmp(provider, "microsoft"), found = false;
    char addr[320];
    if (!email || strlen(email) >= sizeof addr)
        return false;
    snprintf(addr, sizeof addr, "%s", email);
    lower(addr);
    memset(out, 0, sizeof *out);
    char district[DISTRICT_ID_MAX + 1] = "";
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->npeople; i++)
        if (!strcmp(s->people[i].email, addr) &&
            (ms ? s->people[i].microsoft : s->people[i].google)) {
            snprintf(district, sizeof district, "%s", s->people[i].district);
            found = true;
        }
    pthread_mutex_unlock(&s->mu);
    if (found) {
        out->district = emu_district(e, district);
    } else {
        /* each district's own administrator */
        const char *at = strchr(addr, '@');
        struct district *d = at ? emu_district_by_domain(e, at + 1) : NULL;
        if (d && !strcasecmp(district_admin_email(d), addr))
            out->district = d;
    }
    if (!out->district)
        return false;
    snprintf(out->email, sizeof out->email, "%s", addr);
    person_ids(out);
    return true;
}

json_t *emu_signin_list(struct emu *e, struct district *d)
{
    struct emu_signin *s = e->signin;
    json_t *arr = json_array();
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; arr && i < s->npeople; i++) {
        const struct person_entry *p = &s->people[i];
        if (strcmp(p->district, district_id(d)))
            continue;
        struct signin_person sp = {.district = d};
        snprintf(sp.email, sizeof sp.email, "%s", p->email);
        person_ids(&sp);
        json_array_append_new(arr, json_pack("{s:s,s:b,s:b,s:s,s:s}", "email", p->email, "google",
                                             p->google, "microsoft", p->microsoft, "google_sub",
                                             sp.google_sub, "microsoft_oid", sp.ms_oid));
    }
    pthread_mutex_unlock(&s->mu);
    return arr;
}

/* ---- keys and tokens ---- */

int emu_signin_rotate(struct emu *e)
{
    struct emu_signin *s = e->signin;
    pthread_mutex_lock(&s->mu);
    cjose_jwk_t *k = new_key("emu", s->generation + 1);
    if (k) {
        cjose_jwk_release(s->previous);
        s->previous = s->current;
        s->current = k;
        s->generation++;
    }
    pthread_mutex_unlock(&s->mu);
    return k ? 0 : -1;
}

void emu_signin_set_mode(struct emu *e, enum signin_mode mode)
{
    pthread_mutex_lock(&e->signin->mu);
    e->signin->mode = mode;
    pthread_mutex_unlock(&e->signin->mu);
}

int signin_mode_parse(const char *name, enum signin_mode *out)
{
    static const char *const names[] = {"normal", "unknown_key", "expired", "other_audience"};
    for (size_t i = 0; name && i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i])) {
            *out = (enum signin_mode)i;
            return 0;
        }
    return -1;
}

/* Apply the mode to the claims and sign them with the current (or the rogue) key. */
static char *sign_claims(struct emu *e, json_t *claims)
{
    struct emu_signin *s = e->signin;
    char *out = NULL, *payload = NULL;
    cjose_header_t *hdr = NULL;
    cjose_jws_t *jws = NULL;
    cjose_err cerr;
    time_t now = time(NULL);
    pthread_mutex_lock(&s->mu);
    enum signin_mode mode = s->mode;
    cjose_jwk_t *key = mode == SIGNIN_UNKNOWN_KEY ? s->rogue : s->current;
    if (mode == SIGNIN_EXPIRED) {
        json_object_set_new(claims, "iat", json_integer((json_int_t)now - 7200));
        json_object_set_new(claims, "exp", json_integer((json_int_t)now - 3600));
    }
    if (mode == SIGNIN_OTHER_AUDIENCE) {
        json_object_set_new(claims, "aud", json_string("another-app.emulator.example"));
        json_object_set_new(claims, "azp", json_string("another-app.emulator.example"));
    }
    payload = pjson_dump_compact(claims);
    hdr = cjose_header_new(&cerr);
    const char *kid = cjose_jwk_get_kid(key, &cerr);
    if (!payload || !hdr || !kid ||
        !cjose_header_set(hdr, CJOSE_HDR_ALG, CJOSE_HDR_ALG_RS256, &cerr) ||
        !cjose_header_set(hdr, CJOSE_HDR_KID, kid, &cerr) ||
        !cjose_header_set(hdr, "typ", "JWT", &cerr))
        goto out;
    jws = cjose_jws_sign(key, hdr, (const uint8_t *)payload, strlen(payload), &cerr);
    const char *compact = NULL;
    if (jws && cjose_jws_export(jws, &compact, &cerr) && compact)
        out = strdup(compact);
out:
    pthread_mutex_unlock(&s->mu);
    if (!out)
        log_warn("id_token signing failed: %s", cerr.message ? cerr.message : "out of memory");
    cjose_jws_release(jws);
    cjose_header_release(hdr);
    free(payload);
    return out;
}

char *emu_signin_google_id_token(struct emu *e, const char *base, const struct signin_person *p,
                                 const char *client_id, const char *nonce)
{
    time_t now = time(NULL);
    json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:s,s:I,s:I}", "iss", base, "azp", client_id,
                          "aud", client_id, "sub", p->google_sub, "email", p->email,
                          "email_verified", 1, "hd", district_domain(p->district), "iat",
                          (json_int_t)now, "exp", (json_int_t)now + 3600);
    if (c && nonce && *nonce)
        json_object_set_new(c, "nonce", json_string(nonce));
    char *t = c ? sign_claims(e, c) : NULL;
    json_decref(c);
    return t;
}

char *emu_signin_ms_id_token(struct emu *e, const char *base, const struct signin_person *p,
                             const char *client_id, const char *nonce)
{
    time_t now = time(NULL);
    char iss[1200], name[320], sub[48];
    const char *tid = district_tenant_id(p->district);
    snprintf(iss, sizeof iss, "%s/%s/v2.0", base, tid);
    snprintf(name, sizeof name, "%.*s", (int)strcspn(p->email, "@"), p->email);
    /* sub is pairwise (per app); oid is the user's id in the directory */
    char hex[65], in[400];
    snprintf(in, sizeof in, "%s|%s", client_id, p->ms_oid);
    crypto_sha256_hex(in, strlen(in), hex);
    snprintf(sub, sizeof sub, "%.43s", hex);
    json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s}", "iss", iss, "aud",
                          client_id, "tid", tid, "oid", p->ms_oid, "sub", sub, "preferred_username",
                          p->email, "name", name, "iat", (json_int_t)now, "nbf", (json_int_t)now,
                          "exp", (json_int_t)now + 3600, "ver", "2.0");
    if (c && nonce && *nonce)
        json_object_set_new(c, "nonce", json_string(nonce));
    char *t = c ? sign_claims(e, c) : NULL;
    json_decref(c);
    return t;
}

/* ---- documents ---- */

static json_t *public_jwk(cjose_jwk_t *k)
{
    cjose_err cerr;
    char *text = cjose_jwk_to_json(k, false, &cerr);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (j) {
        json_object_set_new(j, "use", json_string("sig"));
        json_object_set_new(j, "alg", json_string("RS256"));
    }
    return j;
}

json_t *emu_signin_jwks(struct emu *e)
{
    struct emu_signin *s = e->signin;
    json_t *keys = json_array();
    pthread_mutex_lock(&s->mu);
    json_array_append_new(keys, public_jwk(s->current));
    if (s->previous)
        json_array_append_new(keys, public_jwk(s->previous));
    pthread_mutex_unlock(&s->mu);
    return keys ? json_pack("{s:o}", "keys", keys) : NULL;
}

static int send_jwks(struct mg_connection *conn, struct emu *e)
{
    json_t *o = emu_signin_jwks(e);
    int rc = o ? httpd_reply_json(conn, 200, o)
               : httpd_reply_error(conn, 500, "internal", "out of memory");
    json_decref(o);
    return rc;
}

int emu_signin_google_jwks(struct mg_connection *conn, void *ctx)
{
    return send_jwks(conn, ctx);
}

int emu_signin_ms_jwks(struct mg_connection *conn, struct emu *e)
{
    return send_jwks(conn, e);
}

int emu_signin_google_discovery(struct mg_connection *conn, void *ctx)
{
    (void)ctx;
    char base[512], a[700], t[700], u[700], k[700], r[700];
    emu_base_url(conn, base, sizeof base);
    snprintf(a, sizeof a, "%s/o/oauth2/v2/auth", base);
    snprintf(t, sizeof t, "%s/token", base);
    snprintf(u, sizeof u, "%s/v1/userinfo", base);
    snprintf(k, sizeof k, "%s/oauth2/v3/certs", base);
    snprintf(r, sizeof r, "%s/revoke", base);
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:[s,s,s,s,s,s,s],s:[s],s:[s],s:[s,s,s],s:[s,s],s:[s,s],"
        "s:[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s],s:[s,s],s:[s,s]}",
        "issuer", base, "authorization_endpoint", a, "device_authorization_endpoint", a,
        "token_endpoint", t, "userinfo_endpoint", u, "revocation_endpoint", r,
        "response_types_supported", "code", "token", "id_token", "code token", "code id_token",
        "token id_token", "code token id_token", "subject_types_supported", "public",
        "id_token_signing_alg_values_supported", "RS256", "scopes_supported", "openid", "email",
        "profile", "token_endpoint_auth_methods_supported", "client_secret_post",
        "client_secret_basic", "code_challenge_methods_supported", "plain", "S256",
        "claims_supported", "aud", "email", "email_verified", "exp", "family_name", "given_name",
        "iat", "iss", "name", "picture", "sub", "hd", "nonce", "azp", "locale",
        "grant_types_supported", "authorization_code", "refresh_token", "response_modes_supported",
        "query", "fragment");
    if (o) {
        json_object_set_new(o, "jwks_uri", json_string(k));
    }
    int rc = o ? httpd_reply_json(conn, 200, o)
               : httpd_reply_error(conn, 500, "internal", "out of memory");
    json_decref(o);
    return rc;
}

int emu_signin_ms_discovery(struct mg_connection *conn, struct emu *e, const char *tenant)
{
    char base[512], issuer[700], a[700], t[700], k[700], tid[128];
    emu_base_url(conn, base, sizeof base);
    if (!strcasecmp(tenant, "common") || !strcasecmp(tenant, "organizations") ||
        !strcasecmp(tenant, "consumers")) {
        snprintf(tid, sizeof tid, "{tenantid}");
    } else {
        struct district *d = emu_district_by_tenant(e, tenant);
        if (!d)
            return httpd_reply_error(conn, 400, "invalid_tenant", "AADSTS90002: Tenant not found.");
        snprintf(tid, sizeof tid, "%s", district_tenant_id(d));
    }
    snprintf(issuer, sizeof issuer, "%s/%s/v2.0", base, tid);
    snprintf(a, sizeof a, "%s/%s/oauth2/v2.0/authorize", base, tenant);
    snprintf(t, sizeof t, "%s/%s/oauth2/v2.0/token", base, tenant);
    snprintf(k, sizeof k, "%s/%s/discovery/v2.0/keys", base, tenant);
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:[s,s,s],s:[s],s:[s,s,s],s:[s],s:[s,s,s,s],s:[s,s,s,s],"
                  "s:b,s:b,s:s}",
                  "token_endpoint", t, "jwks_uri", k, "issuer", issuer, "authorization_endpoint", a,
                  "token_endpoint_auth_methods_supported", "client_secret_post", "private_key_jwt",
                  "client_secret_basic", "id_token_signing_alg_values_supported", "RS256",
                  "response_modes_supported", "query", "fragment", "form_post",
                  "subject_types_supported", "pairwise", "scopes_supported", "openid", "profile",
                  "email", "offline_access", "response_types_supported", "code", "id_token",
                  "code id_token", "id_token token", "request_uri_parameter_supported", 0,
                  "http_logout_supported", 1, "tenant_region_scope", "NA");
    int rc = o ? httpd_reply_json(conn, 200, o)
               : httpd_reply_error(conn, 500, "internal", "out of memory");
    json_decref(o);
    return rc;
}

/* ---- the account picker ---- */

static int html_escape(struct buf *b, const char *s)
{
    int fail = 0;
    for (; *s && !fail; s++) {
        switch (*s) {
        case '<':
            fail = buf_appends(b, "&lt;");
            break;
        case '>':
            fail = buf_appends(b, "&gt;");
            break;
        case '&':
            fail = buf_appends(b, "&amp;");
            break;
        case '"':
            fail = buf_appends(b, "&quot;");
            break;
        case '\'':
            fail = buf_appends(b, "&#39;");
            break;
        default:
            fail = buf_append(b, s, 1);
        }
    }
    return fail;
}

static int picker_entry(struct buf *b, const struct mg_request_info *ri, const char *email,
                        const char *district)
{
    struct buf link;
    int fail = 0;
    buf_init(&link, 8192);
    fail |= buf_appends(&link, ri->local_uri_raw ? ri->local_uri_raw : ri->local_uri);
    fail |= buf_appends(&link, ri->query_string && *ri->query_string ? "?" : "?");
    if (ri->query_string && *ri->query_string)
        fail |= buf_appends(&link, ri->query_string) || buf_appends(&link, "&");
    fail |= buf_appends(&link, "login_hint=") || buf_append_urlencoded(&link, email);
    fail |= buf_appends(b, "<li><a class=\"account\" href=\"");
    fail |= html_escape(b, link.data ? link.data : "");
    fail |= buf_appends(b, "\">");
    fail |= html_escape(b, email);
    fail |= buf_appends(b, "</a> <small>");
    fail |= html_escape(b, district);
    fail |= buf_appends(b, "</small></li>");
    buf_free(&link);
    return fail;
}

int emu_signin_picker(struct mg_connection *conn, struct emu *e, const char *provider)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct emu_signin *s = e->signin;
    bool ms = !strcmp(provider, "microsoft");
    struct buf b;
    int fail = 0, rc;
    buf_init(&b, 1024 * 1024);
    fail |= buf_appendf(&b,
                        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"icon\" "
                        "href=\"data:,\"><title>%s (emulator)</title></head><body><h1>%s</h1><ul "
                        "id=\"accounts\">",
                        ms ? "Pick an account" : "Choose an account",
                        ms ? "Pick an account" : "Choose an account");
    for (size_t i = 0; i < emu_district_count(e); i++) {
        struct district *d = emu_district_at(e, i);
        fail |= picker_entry(&b, ri, district_admin_email(d), district_id(d));
        pthread_mutex_lock(&s->mu);
        for (size_t j = 0; j < s->npeople; j++) {
            const struct person_entry *p = &s->people[j];
            if (!strcmp(p->district, district_id(d)) && (ms ? p->microsoft : p->google))
                fail |= picker_entry(&b, ri, p->email, district_id(d));
        }
        pthread_mutex_unlock(&s->mu);
    }
    fail |= buf_appends(&b, "</ul></body></html>");
    rc = fail ? httpd_reply_error(conn, 500, "internal", "out of memory")
              : httpd_reply(conn, 200, "text/html; charset=utf-8", b.data, b.len, NULL);
    buf_free(&b);
    return rc;
}
