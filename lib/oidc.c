/* oidc: discovery, a JWKS cache and id_token verification (cjose verifies the signature). */
#include "oidc.h"

#include "crypto.h"
#include "ids.h"
#include "http_client.h"
#include "json.h"

#include <cjose/cjose.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OIDC_KID_MAX 128

/* One signing key: its kid and its JWK as JSON text. Each verification imports the text into
 * its own cjose key, so no cjose object (whose reference counts are not atomic) is shared
 * between threads. */
struct oidc_key {
    char kid[OIDC_KID_MAX];
    char *jwk_json;
};

struct oidc_provider {
    pthread_mutex_t lock; /* guards everything below */
    char *discovery_url;
    char *jwks_uri; /* from the options or the discovery document; NULL until known */
    long key_refresh_min_s;
    long timeout_ms;
    oidc_fetch_fn fetch;
    void *fetch_ctx;
    int64_t (*clock_ms)(void);
    bool have_discovery;
    struct oidc_discovery discovery;
    struct oidc_key keys[OIDC_MAX_KEYS];
    int nkeys;
    int64_t last_refresh_ms; /* monotonic time of the last refresh for an unknown kid; 0 = none */
};

const char *oidc_err_str(enum oidc_err e)
{
    switch (e) {
    case OIDC_OK:
        return "ok";
    case OIDC_ERR_FETCH:
        return "fetch_failed";
    case OIDC_ERR_DOCUMENT:
        return "bad_document";
    case OIDC_ERR_MALFORMED:
        return "malformed_token";
    case OIDC_ERR_TOO_LARGE:
        return "too_large";
    case OIDC_ERR_ALGORITHM:
        return "bad_algorithm";
    case OIDC_ERR_UNKNOWN_KEY:
        return "unknown_key";
    case OIDC_ERR_SIGNATURE:
        return "bad_signature";
    case OIDC_ERR_ISSUER:
        return "bad_issuer";
    case OIDC_ERR_AUDIENCE:
        return "bad_audience";
    case OIDC_ERR_EXPIRED:
        return "expired";
    case OIDC_ERR_NOT_YET_VALID:
        return "not_yet_valid";
    case OIDC_ERR_NONCE:
        return "bad_nonce";
    case OIDC_ERR_CLAIMS:
        return "bad_claims";
    case OIDC_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}

static int default_fetch(void *ctx, const char *url, struct buf *out, char *err, size_t errlen)
{
    const long *timeout_ms = ctx;
    int rc = -1;
    struct http_client *c = NULL;
    struct http_response resp;
    char herr[256] = "";
    http_response_init(&resp);
    struct http_client_opts o = {
        .connect_timeout_ms = 2000,
        .timeout_ms = *timeout_ms,
        .max_body = out->max,
        .max_attempts = 2,
        .backoff_base_ms = 200,
        .backoff_max_ms = 1000,
        .user_agent = "k12-panel-oidc",
    };
    c = http_client_new(&o, herr, sizeof herr);
    if (!c) {
        snprintf(err, errlen, "http client: %s", herr);
        goto out;
    }
    static const char *const headers[] = {"Accept: application/json", NULL};
    struct http_request req = {.url = url, .headers = headers};
    enum http_result hr = http_client_do(c, &req, &resp, herr, sizeof herr);
    if (hr != HTTP_RESULT_OK) {
        snprintf(err, errlen, "GET %s: %s (%s)", url, http_result_str(hr), herr);
        goto out;
    }
    if (resp.status != 200) {
        snprintf(err, errlen, "GET %s: HTTP %ld", url, resp.status);
        goto out;
    }
    buf_reset(out);
    if (buf_append(out, resp.body.data ? resp.body.data : "", resp.body.len) != 0) {
        snprintf(err, errlen, "GET %s: reply too large", url);
        goto out;
    }
    rc = 0;
out:
    http_response_free(&resp);
    http_client_destroy(c);
    return rc;
}

struct oidc_provider *oidc_provider_new(const struct oidc_provider_opts *opts, char *err,
                                        size_t errlen)
{
    struct oidc_provider *p = NULL;
    if (!opts || ((!opts->discovery_url || !*opts->discovery_url) &&
                  (!opts->jwks_uri || !*opts->jwks_uri))) {
        snprintf(err, errlen, "oidc: a discovery URL or a JWKS URI is required");
        return NULL;
    }
    p = calloc(1, sizeof *p);
    if (!p)
        goto fail;
    pthread_mutex_init(&p->lock, NULL);
    if (opts->discovery_url && *opts->discovery_url &&
        !(p->discovery_url = strdup(opts->discovery_url)))
        goto fail;
    if (opts->jwks_uri && *opts->jwks_uri && !(p->jwks_uri = strdup(opts->jwks_uri)))
        goto fail;
    p->key_refresh_min_s = opts->key_refresh_min_s > 0 ? opts->key_refresh_min_s : 60;
    p->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 10000;
    p->fetch = opts->fetch ? opts->fetch : default_fetch;
    p->fetch_ctx = opts->fetch ? opts->fetch_ctx : &p->timeout_ms;
    p->clock_ms = opts->clock_ms ? opts->clock_ms : http_now_ms;
    return p;
fail:
    snprintf(err, errlen, "oidc: out of memory");
    oidc_provider_destroy(p);
    return NULL;
}

static void clear_keys(struct oidc_provider *p)
{
    for (int i = 0; i < p->nkeys; i++)
        free(p->keys[i].jwk_json);
    memset(p->keys, 0, sizeof p->keys);
    p->nkeys = 0;
}

void oidc_provider_destroy(struct oidc_provider *p)
{
    if (!p)
        return;
    clear_keys(p);
    free(p->discovery_url);
    free(p->jwks_uri);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Copy a required URL member of a discovery document; it must be http(s) and fit. */
static int copy_endpoint(const json_t *doc, const char *key, char *out, size_t outlen, char *err,
                         size_t errlen)
{
    const char *v = pjson_str(doc, key);
    if (!v || !*v) {
        snprintf(err, errlen, "discovery document has no %s", key);
        return -1;
    }
    if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0) {
        snprintf(err, errlen, "discovery document's %s is not an http(s) URL", key);
        return -1;
    }
    if (strlen(v) >= outlen) {
        snprintf(err, errlen, "discovery document's %s is too long", key);
        return -1;
    }
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

enum oidc_err oidc_discovery_parse(const char *doc, size_t len, struct oidc_discovery *out,
                                   char *err, size_t errlen)
{
    enum oidc_err rc = OIDC_ERR_DOCUMENT;
    json_t *j = NULL;
    char perr[128];
    struct oidc_discovery d;
    memset(&d, 0, sizeof d);
    if (len > OIDC_MAX_DOCUMENT) {
        snprintf(err, errlen, "discovery document over %d bytes", OIDC_MAX_DOCUMENT);
        rc = OIDC_ERR_TOO_LARGE;
        goto out;
    }
    j = pjson_parse(doc, len, perr, sizeof perr);
    if (!j || !json_is_object(j)) {
        snprintf(err, errlen, "discovery document is not a JSON object (%s)", j ? "" : perr);
        goto out;
    }
    if (copy_endpoint(j, "issuer", d.issuer, sizeof d.issuer, err, errlen) != 0 ||
        copy_endpoint(j, "authorization_endpoint", d.authorization_endpoint,
                      sizeof d.authorization_endpoint, err, errlen) != 0 ||
        copy_endpoint(j, "token_endpoint", d.token_endpoint, sizeof d.token_endpoint, err,
                      errlen) != 0 ||
        copy_endpoint(j, "jwks_uri", d.jwks_uri, sizeof d.jwks_uri, err, errlen) != 0)
        goto out;
    *out = d;
    rc = OIDC_OK;
out:
    json_decref(j);
    return rc;
}

static enum oidc_err discovery_locked(struct oidc_provider *p, char *err, size_t errlen)
{
    enum oidc_err rc = OIDC_ERR_FETCH;
    struct buf body;
    buf_init(&body, OIDC_MAX_DOCUMENT);
    if (p->have_discovery) {
        rc = OIDC_OK;
        goto out;
    }
    if (!p->discovery_url) {
        snprintf(err, errlen, "no discovery URL configured");
        goto out;
    }
    char ferr[384] = "";
    if (p->fetch(p->fetch_ctx, p->discovery_url, &body, ferr, sizeof ferr) != 0) {
        snprintf(err, errlen, "discovery: %s", ferr);
        goto out;
    }
    rc = oidc_discovery_parse(body.data ? body.data : "", body.len, &p->discovery, err, errlen);
    if (rc != OIDC_OK)
        goto out;
    if (!p->jwks_uri && !(p->jwks_uri = strdup(p->discovery.jwks_uri))) {
        rc = OIDC_ERR_INTERNAL;
        goto out;
    }
    p->have_discovery = true;
out:
    buf_free(&body);
    return rc;
}

enum oidc_err oidc_provider_discovery(struct oidc_provider *p, struct oidc_discovery *out,
                                      char *err, size_t errlen)
{
    pthread_mutex_lock(&p->lock);
    enum oidc_err rc = discovery_locked(p, err, errlen);
    if (rc == OIDC_OK)
        *out = p->discovery;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* Whether a JWKS entry is an RSA signing key we can use: kty RSA, use absent or "sig", alg
 * absent or RS256, a kid that fits, and a key cjose can import. */
static bool usable_key(const json_t *k, const char **kid)
{
    const char *kty = pjson_str(k, "kty"), *use = pjson_str(k, "use"), *alg = pjson_str(k, "alg");
    *kid = pjson_str(k, "kid");
    if (!kty || strcmp(kty, "RSA") != 0 || !*kid || !**kid || strlen(*kid) >= OIDC_KID_MAX)
        return false;
    if (json_object_get(k, "use") && (!use || strcmp(use, "sig") != 0))
        return false;
    if (json_object_get(k, "alg") && (!alg || strcmp(alg, "RS256") != 0))
        return false;
    /* only the public members are handed to cjose: a JWKS never needs more */
    return pjson_str(k, "n") && pjson_str(k, "e");
}

enum oidc_err oidc_provider_set_jwks(struct oidc_provider *p, const char *jwks, size_t len,
                                     char *err, size_t errlen)
{
    enum oidc_err rc = OIDC_ERR_DOCUMENT;
    json_t *j = NULL;
    struct oidc_key fresh[OIDC_MAX_KEYS];
    int n = 0;
    char perr[128];
    memset(fresh, 0, sizeof fresh);
    if (len > OIDC_MAX_JWKS) {
        snprintf(err, errlen, "JWKS over %d bytes", OIDC_MAX_JWKS);
        rc = OIDC_ERR_TOO_LARGE;
        goto out;
    }
    j = pjson_parse(jwks, len, perr, sizeof perr);
    json_t *keys = j && json_is_object(j) ? json_object_get(j, "keys") : NULL;
    if (!keys || !json_is_array(keys)) {
        snprintf(err, errlen, "JWKS is not an object with a keys array");
        goto out;
    }
    if (json_array_size(keys) > OIDC_MAX_KEYS) {
        snprintf(err, errlen, "JWKS holds %zu keys, more than %d", json_array_size(keys),
                 OIDC_MAX_KEYS);
        rc = OIDC_ERR_TOO_LARGE;
        goto out;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        const char *kid = NULL;
        if (!json_is_object(k) || !usable_key(k, &kid))
            continue;
        json_t *pub = json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", kid, "n",
                                pjson_str(k, "n"), "e", pjson_str(k, "e"));
        char *text = pub ? pjson_dump_compact(pub) : NULL;
        json_decref(pub);
        if (!text) {
            rc = OIDC_ERR_INTERNAL;
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        cjose_err cerr;
        cjose_jwk_t *probe = cjose_jwk_import(text, strlen(text), &cerr);
        if (!probe) {
            free(text); /* a key cjose cannot read can never verify anything */
            continue;
        }
        cjose_jwk_release(probe);
        snprintf(fresh[n].kid, sizeof fresh[n].kid, "%s", kid);
        fresh[n].jwk_json = text;
        n++;
    }
    if (n == 0) {
        snprintf(err, errlen, "JWKS holds no usable RS256 signing key");
        goto out;
    }
    pthread_mutex_lock(&p->lock);
    clear_keys(p);
    memcpy(p->keys, fresh, sizeof fresh);
    p->nkeys = n;
    pthread_mutex_unlock(&p->lock);
    n = 0; /* handed over */
    rc = OIDC_OK;
out:
    for (int x = 0; x < n; x++)
        free(fresh[x].jwk_json);
    json_decref(j);
    return rc;
}

/* A copy of the JWK text of kid, or NULL. Called with the lock held. */
static char *find_key_locked(struct oidc_provider *p, const char *kid)
{
    for (int i = 0; i < p->nkeys; i++)
        if (strcmp(p->keys[i].kid, kid) == 0)
            return strdup(p->keys[i].jwk_json);
    return NULL;
}

/* The JWK text of kid, refreshing the JWKS once when it is unknown and the last refresh is
 * older than key_refresh_min_s (so a flood of tokens with made-up kids costs one fetch a
 * minute). Caller frees. */
static enum oidc_err key_for(struct oidc_provider *p, const char *kid, char **jwk_json, char *err,
                             size_t errlen)
{
    enum oidc_err rc = OIDC_ERR_UNKNOWN_KEY;
    struct buf body;
    buf_init(&body, OIDC_MAX_JWKS);
    pthread_mutex_lock(&p->lock);
    *jwk_json = find_key_locked(p, kid);
    if (*jwk_json) {
        rc = OIDC_OK;
        goto out_locked;
    }
    int64_t now = p->clock_ms();
    /* The first load (empty cache) is not a refresh; a refresh for an unknown kid is limited. */
    bool refresh = p->nkeys > 0;
    if (refresh && p->last_refresh_ms != 0 &&
        now - p->last_refresh_ms < p->key_refresh_min_s * 1000) {
        snprintf(err, errlen, "no signing key with kid %.64s (keys refreshed less than %ld s ago)",
                 kid, p->key_refresh_min_s);
        goto out_locked;
    }
    if (!p->jwks_uri) {
        rc = discovery_locked(p, err, errlen);
        if (rc != OIDC_OK)
            goto out_locked;
    }
    if (refresh)
        p->last_refresh_ms = now;
    char *uri = strdup(p->jwks_uri);
    char ferr[384] = "";
    int frc = uri ? p->fetch(p->fetch_ctx, uri, &body, ferr, sizeof ferr) : -1;
    free(uri);
    pthread_mutex_unlock(&p->lock);
    if (frc != 0) {
        snprintf(err, errlen, "JWKS: %s", ferr);
        rc = OIDC_ERR_FETCH;
        goto out;
    }
    rc = oidc_provider_set_jwks(p, body.data ? body.data : "", body.len, err, errlen);
    if (rc != OIDC_OK)
        goto out;
    pthread_mutex_lock(&p->lock);
    *jwk_json = find_key_locked(p, kid);
    rc = *jwk_json ? OIDC_OK : OIDC_ERR_UNKNOWN_KEY;
    if (rc != OIDC_OK)
        snprintf(err, errlen, "no signing key with kid %.64s in the provider's JWKS", kid);
out_locked:
    pthread_mutex_unlock(&p->lock);
out:
    buf_free(&body);
    return rc;
}

/* Copy an optional string claim; a claim present with another type or too long is an error. */
static int claim_str(const json_t *c, const char *key, char *out, size_t outlen, char *err,
                     size_t errlen)
{
    const char *v = NULL;
    enum pjson_get g = pjson_get_str(c, key, &v);
    out[0] = '\0';
    if (g == PJSON_ABSENT)
        return 0;
    if (g != PJSON_OK || strlen(v) >= outlen) {
        snprintf(err, errlen, "claim %s is not a string of at most %zu bytes", key, outlen - 1);
        return -1;
    }
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

static int claim_time(const json_t *c, const char *key, bool required, int64_t *out, char *err,
                      size_t errlen)
{
    enum pjson_get g = pjson_get_int(c, key, out);
    if (g == PJSON_OK && *out >= 0)
        return 0;
    if (g == PJSON_ABSENT && !required) {
        *out = 0;
        return 0;
    }
    snprintf(err, errlen, "claim %s is %s", key,
             g == PJSON_ABSENT ? "missing" : "not a number of seconds");
    return -1;
}

/* Read the claims we use from the payload into *cl. */
static enum oidc_err read_claims(const json_t *c, struct oidc_claims *cl, char *err, size_t errlen)
{
    const json_t *aud = json_object_get(c, "aud");
    if (claim_str(c, "iss", cl->iss, sizeof cl->iss, err, errlen) ||
        claim_str(c, "azp", cl->azp, sizeof cl->azp, err, errlen) ||
        claim_str(c, "sub", cl->sub, sizeof cl->sub, err, errlen) ||
        claim_str(c, "email", cl->email, sizeof cl->email, err, errlen) ||
        claim_str(c, "hd", cl->hd, sizeof cl->hd, err, errlen) ||
        claim_str(c, "tid", cl->tid, sizeof cl->tid, err, errlen) ||
        claim_str(c, "oid", cl->oid, sizeof cl->oid, err, errlen) ||
        claim_str(c, "preferred_username", cl->preferred_username, sizeof cl->preferred_username,
                  err, errlen) ||
        claim_str(c, "name", cl->name, sizeof cl->name, err, errlen) ||
        claim_str(c, "nonce", cl->nonce, sizeof cl->nonce, err, errlen) ||
        claim_time(c, "exp", true, &cl->exp, err, errlen) ||
        claim_time(c, "iat", true, &cl->iat, err, errlen) ||
        claim_time(c, "nbf", false, &cl->nbf, err, errlen))
        return OIDC_ERR_CLAIMS;
    if (!cl->iss[0] || !cl->sub[0] || !aud) {
        snprintf(err, errlen, "claim %s is missing",
                 !cl->iss[0]   ? "iss"
                 : !cl->sub[0] ? "sub"
                               : "aud");
        return OIDC_ERR_CLAIMS;
    }
    /* Google sends a boolean; older tokens carried the string "true" */
    const json_t *ev = json_object_get(c, "email_verified");
    cl->email_verified =
        json_is_true(ev) || (json_is_string(ev) && !strcmp(json_string_value(ev), "true"));
    return OIDC_OK;
}

/* aud is our client: a string equal to it, or an array holding it (then, with other
 * audiences, azp must name us: the token was issued to us). */
static enum oidc_err check_audience(const json_t *c, struct oidc_claims *cl, const char *client,
                                    char *err, size_t errlen)
{
    const json_t *aud = json_object_get(c, "aud");
    bool ours = false;
    size_t count = 0;
    if (json_is_string(aud)) {
        ours = strcmp(json_string_value(aud), client) == 0;
        count = 1;
    } else if (json_is_array(aud)) {
        size_t i;
        const json_t *a;
        count = json_array_size(aud);
        json_array_foreach(aud, i, a) if (json_is_string(a) &&
                                          !strcmp(json_string_value(a), client)) ours = true;
    }
    if (!ours) {
        snprintf(err, errlen, "token was issued for another audience");
        return OIDC_ERR_AUDIENCE;
    }
    if ((count > 1 && strcmp(cl->azp, client) != 0) || (cl->azp[0] && strcmp(cl->azp, client))) {
        snprintf(err, errlen, "token's authorized party is not this client");
        return OIDC_ERR_AUDIENCE;
    }
    snprintf(cl->aud, sizeof cl->aud, "%s", client);
    return OIDC_OK;
}

static enum oidc_err check_issuer(const struct oidc_claims *cl, const char *issuer, char *err,
                                  size_t errlen)
{
    char want[1024];
    const char *marker = strstr(issuer, OIDC_TENANT_MARKER);
    if (marker) {
        if (!ids_directory_valid(cl->tid)) {
            snprintf(err, errlen, "token has no valid tid claim for a multi-tenant issuer");
            return OIDC_ERR_ISSUER;
        }
        int n = snprintf(want, sizeof want, "%.*s%s%s", (int)(marker - issuer), issuer, cl->tid,
                         marker + strlen(OIDC_TENANT_MARKER));
        if (n < 0 || (size_t)n >= sizeof want) {
            snprintf(err, errlen, "issuer template too long");
            return OIDC_ERR_ISSUER;
        }
    } else {
        snprintf(want, sizeof want, "%s", issuer);
    }
    if (strcmp(cl->iss, want) != 0) {
        snprintf(err, errlen, "token's issuer %.200s is not %.200s", cl->iss, want);
        return OIDC_ERR_ISSUER;
    }
    return OIDC_OK;
}

/* The compact serialization's shape: three base64url segments, the last (signature)
 * non-empty. cjose parses it; this only refuses junk early with a clear message. */
static bool compact_shape(const char *t, size_t n)
{
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (ch == '.')
            dots++;
        else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_'))
            return false;
    }
    return dots == 2 && t[0] != '.';
}

enum oidc_err oidc_verify_id_token(struct oidc_provider *p, const char *token,
                                   const struct oidc_expect *expect, struct oidc_claims *claims,
                                   char *err, size_t errlen)
{
    enum oidc_err rc = OIDC_ERR_MALFORMED;
    cjose_jws_t *jws = NULL;
    cjose_jwk_t *jwk = NULL;
    char *jwk_json = NULL;
    json_t *payload = NULL;
    cjose_err cerr;
    struct oidc_claims cl;
    memset(&cl, 0, sizeof cl);
    if (!token || !expect || !expect->issuer || !expect->audience || !expect->nonce) {
        snprintf(err, errlen, "no token, issuer, audience or nonce to check");
        goto out;
    }
    size_t len = strnlen(token, OIDC_MAX_TOKEN + 1);
    if (len > OIDC_MAX_TOKEN) {
        snprintf(err, errlen, "token longer than %d bytes", OIDC_MAX_TOKEN);
        rc = OIDC_ERR_TOO_LARGE;
        goto out;
    }
    if (!compact_shape(token, len)) {
        snprintf(err, errlen, "token is not a compact JWS");
        goto out;
    }
    jws = cjose_jws_import(token, len, &cerr);
    if (!jws) {
        snprintf(err, errlen, "token is not a valid JWS: %s", cerr.message);
        goto out;
    }
    cjose_header_t *hdr = cjose_jws_get_protected(jws);
    const char *alg = hdr ? cjose_header_get(hdr, CJOSE_HDR_ALG, &cerr) : NULL;
    if (!alg || strcmp(alg, CJOSE_HDR_ALG_RS256) != 0) {
        snprintf(err, errlen, "token algorithm %.32s refused (RS256 only)", alg ? alg : "(none)");
        rc = OIDC_ERR_ALGORITHM;
        goto out;
    }
    char *crit = cjose_header_get_raw(hdr, "crit", &cerr);
    if (crit) {
        free(crit);
        snprintf(err, errlen, "token has critical header extensions");
        goto out;
    }
    const char *kid = cjose_header_get(hdr, CJOSE_HDR_KID, &cerr);
    if (!kid || !*kid || strlen(kid) >= OIDC_KID_MAX) {
        snprintf(err, errlen, "token header has no usable kid");
        rc = OIDC_ERR_UNKNOWN_KEY;
        goto out;
    }
    rc = key_for(p, kid, &jwk_json, err, errlen);
    if (rc != OIDC_OK)
        goto out;
    jwk = cjose_jwk_import(jwk_json, strlen(jwk_json), &cerr);
    if (!jwk || cjose_jwk_get_kty(jwk, &cerr) != CJOSE_JWK_KTY_RSA) {
        snprintf(err, errlen, "signing key %.64s cannot be used", kid);
        rc = OIDC_ERR_INTERNAL;
        goto out;
    }
    if (!cjose_jws_verify(jws, jwk, &cerr)) {
        snprintf(err, errlen, "signature verification failed");
        rc = OIDC_ERR_SIGNATURE;
        goto out;
    }
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    char perr[128];
    if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &cerr) || !plain) {
        snprintf(err, errlen, "token has no payload");
        rc = OIDC_ERR_MALFORMED;
        goto out;
    }
    payload = pjson_parse((const char *)plain, plain_len, perr, sizeof perr); /* plain: borrowed */
    if (!payload || !json_is_object(payload)) {
        snprintf(err, errlen, "token payload is not a JSON object");
        rc = OIDC_ERR_MALFORMED;
        goto out;
    }
    rc = read_claims(payload, &cl, err, errlen);
    if (rc != OIDC_OK)
        goto out;
    rc = check_issuer(&cl, expect->issuer, err, errlen);
    if (rc == OIDC_ERR_ISSUER && expect->issuer_alt)
        rc = check_issuer(&cl, expect->issuer_alt, err, errlen);
    if (rc != OIDC_OK)
        goto out;
    rc = check_audience(payload, &cl, expect->audience, err, errlen);
    if (rc != OIDC_OK)
        goto out;
    int64_t now = expect->now ? (int64_t)expect->now : (int64_t)time(NULL);
    if (now > cl.exp + OIDC_CLOCK_SKEW_S) {
        snprintf(err, errlen, "token expired %lld s ago", (long long)(now - cl.exp));
        rc = OIDC_ERR_EXPIRED;
        goto out;
    }
    if (cl.iat > now + OIDC_CLOCK_SKEW_S || cl.nbf > now + OIDC_CLOCK_SKEW_S) {
        snprintf(err, errlen, "token is not valid yet (issued or usable in the future)");
        rc = OIDC_ERR_NOT_YET_VALID;
        goto out;
    }
    if (!cl.nonce[0] || !crypto_equal(cl.nonce, expect->nonce)) {
        snprintf(err, errlen, "token's nonce %s", cl.nonce[0] ? "differs" : "is missing");
        rc = OIDC_ERR_NONCE;
        goto out;
    }
    *claims = cl;
    rc = OIDC_OK;
out:
    json_decref(payload);
    cjose_jwk_release(jwk);
    cjose_jws_release(jws);
    free(jwk_json);
    return rc;
}
