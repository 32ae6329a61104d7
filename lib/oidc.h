/* oidc: an OpenID Connect provider as seen by a relying party — its discovery document, a
 * cache of its signing keys (JWKS) and the verification of the id_tokens it issues. The
 * signature is checked by cjose (RS256 only); the claims here. Thread-safe: one provider
 * object serves every request thread. Everything read from the provider is untrusted and
 * bounded (document sizes, number of keys, token length). */
#ifndef PANEL_OIDC_H
#define PANEL_OIDC_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define OIDC_MAX_TOKEN     16384       /* longest id_token accepted */
#define OIDC_MAX_DOCUMENT  (64 * 1024) /* discovery document */
#define OIDC_MAX_JWKS      (256 * 1024)
#define OIDC_MAX_KEYS      32           /* keys kept from one JWKS */
#define OIDC_CLOCK_SKEW_S  60           /* allowed on exp, iat and nbf */
#define OIDC_TENANT_MARKER "{tenantid}" /* Microsoft's multi-tenant issuer template */

enum oidc_err {
    OIDC_OK = 0,
    OIDC_ERR_FETCH,         /* discovery or JWKS could not be fetched */
    OIDC_ERR_DOCUMENT,      /* discovery document or JWKS malformed */
    OIDC_ERR_MALFORMED,     /* the token is not a well-formed JWS with a JSON payload */
    OIDC_ERR_TOO_LARGE,     /* token or document over its cap */
    OIDC_ERR_ALGORITHM,     /* alg other than RS256 (none, HS256, ...) */
    OIDC_ERR_UNKNOWN_KEY,   /* no key with the token's kid, even after a refresh */
    OIDC_ERR_SIGNATURE,     /* cjose says the signature is wrong */
    OIDC_ERR_ISSUER,        /* iss is not the expected one */
    OIDC_ERR_AUDIENCE,      /* aud does not name our client */
    OIDC_ERR_EXPIRED,       /* exp is past (beyond the skew) */
    OIDC_ERR_NOT_YET_VALID, /* iat or nbf in the future (beyond the skew) */
    OIDC_ERR_NONCE,         /* nonce absent or different */
    OIDC_ERR_CLAIMS,        /* a required claim is missing or of the wrong type */
    OIDC_ERR_INTERNAL,      /* out of memory, crypto library failure */
};
const char *oidc_err_str(enum oidc_err e);

/* The endpoints a discovery document gives. */
struct oidc_discovery {
    char issuer[512]; /* may hold OIDC_TENANT_MARKER (Microsoft's common endpoints) */
    char authorization_endpoint[1024];
    char token_endpoint[1024];
    char jwks_uri[1024];
};

/* The claims of a verified id_token. Absent string claims are "". */
struct oidc_claims {
    char iss[512];
    char aud[256];
    char azp[256];
    char sub[256];
    char email[320];
    bool email_verified; /* Google: true or "true"; false when absent */
    char hd[256];        /* Google Workspace domain */
    char tid[64];        /* Microsoft directory */
    char oid[64];        /* Microsoft user object id */
    char preferred_username[320];
    char name[256];
    char nonce[128];
    int64_t exp, iat, nbf; /* nbf 0 when absent */
};

/* What a token must say to be accepted. */
struct oidc_expect {
    /* iss must equal this; when it holds OIDC_TENANT_MARKER, the marker is replaced by the
     * token's own tid (which is then required) before comparing. */
    const char *issuer;
    /* Also accepted, or NULL: Google documents that its tokens may carry "accounts.google.com"
     * (no scheme) as well as "https://accounts.google.com". */
    const char *issuer_alt;
    const char *audience; /* our client id */
    const char *nonce;    /* the nonce stored at the start of the sign-in; required */
    time_t now;           /* 0 = time(NULL) */
};

/* Fetch url's body into out (capped by out's max). 0, or -1 with a message. The default
 * uses lib/http_client (a GET with short timeouts); tests give their own. */
typedef int (*oidc_fetch_fn)(void *ctx, const char *url, struct buf *out, char *err, size_t errlen);

struct oidc_provider_opts {
    const char *discovery_url; /* ".../.well-known/openid-configuration" */
    /* The JWKS location when known without discovery; NULL = the discovery's jwks_uri. */
    const char *jwks_uri;
    long key_refresh_min_s; /* a JWKS refresh for an unknown kid at most this often; 0 = 60 */
    long timeout_ms;        /* per HTTP request; 0 = 10000 */
    oidc_fetch_fn fetch;    /* NULL = HTTP GET */
    void *fetch_ctx;
    int64_t (*clock_ms)(void); /* monotonic milliseconds; NULL = http_now_ms (tests move it) */
};

struct oidc_provider;

/* A provider; nothing is fetched yet. NULL with a message when the options are unusable. */
struct oidc_provider *oidc_provider_new(const struct oidc_provider_opts *opts, char *err,
                                        size_t errlen);
void oidc_provider_destroy(struct oidc_provider *p);
/* The provider's endpoints, fetching the discovery document on first use (and again after a
 * failed fetch). Copied into *out. */
enum oidc_err oidc_provider_discovery(struct oidc_provider *p, struct oidc_discovery *out,
                                      char *err, size_t errlen) __attribute__((warn_unused_result));
/* Replace the cached keys with those of a JWKS document (RSA signing keys with a kid; others
 * are skipped). Used by the refresh and by tests. */
enum oidc_err oidc_provider_set_jwks(struct oidc_provider *p, const char *jwks, size_t len,
                                     char *err, size_t errlen) __attribute__((warn_unused_result));
/* Verify an id_token: size, RS256 header, signature by the cached key of its kid (the JWKS is
 * loaded on first use, and refreshed when a kid is unknown at most once every
 * key_refresh_min_s, so made-up kids cannot make us hammer the provider), then iss, aud
 * (a string, or an array holding our client with azp naming it), exp/iat/nbf with
 * OIDC_CLOCK_SKEW_S, nonce, and sub. *claims is filled only on OIDC_OK. */
enum oidc_err oidc_verify_id_token(struct oidc_provider *p, const char *token,
                                   const struct oidc_expect *expect, struct oidc_claims *claims,
                                   char *err, size_t errlen) __attribute__((warn_unused_result));

/* Parse a discovery document (exposed for tests). */
enum oidc_err oidc_discovery_parse(const char *doc, size_t len, struct oidc_discovery *out,
                                   char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
