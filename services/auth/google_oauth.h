/* google_oauth: Google's authorization-code flow with PKCE — the consent URL, the code
 * exchange, the refresh that verifies a grant at every use, and revocation. */
#ifndef AUTH_GOOGLE_OAUTH_H
#define AUTH_GOOGLE_OAUTH_H

#include "buf.h"
#include "http_client.h"

#include <stddef.h>

#define GOOGLE_SCOPE_USERS   "https://www.googleapis.com/auth/admin.directory.user.readonly"
#define GOOGLE_SCOPE_ORGUNIT "https://www.googleapis.com/auth/admin.directory.orgunit.readonly"
#define GOOGLE_SCOPE_DEVICES                                                                       \
    "https://www.googleapis.com/auth/admin.directory.device.chromeos.readonly"
#define GOOGLE_NSCOPES 3
/* The read-only scopes we ask for, in order. */
extern const char *const google_scopes[GOOGLE_NSCOPES];

struct google_cfg {
    const char *auth_url;   /* .../o/oauth2/v2/auth */
    const char *token_url;  /* .../token */
    const char *revoke_url; /* .../revoke */
    const char *client_id;
    const char *client_secret;
    const char *redirect_uri; /* our /oauth/google/callback */
};

enum google_result {
    GOOGLE_OK = 0,
    GOOGLE_INVALID_GRANT = 1, /* revoked/expired grant or a bad/used code */
    GOOGLE_REJECTED = 2,      /* another 4xx (bad client, bad request) */
    GOOGLE_UNAVAILABLE = 3,   /* unreachable or 5xx */
};
const char *google_result_str(enum google_result r);

/* What the token endpoint said. Strings are malloc'd; google_tokens_clear wipes and frees. */
struct google_tokens {
    char *access_token;
    char *refresh_token; /* only from a code exchange with prompt=consent */
    char *scope;         /* space-separated granted scopes */
    char *id_token;      /* with openid in the scope (who consented); NULL otherwise */
    long long expires_in;
    char message[256]; /* provider's error/error_description on failure (never a token) */
};
void google_tokens_clear(struct google_tokens *t);

/* Append the consent URL: response_type=code, the three read-only scopes plus `openid email`
 * (the id_token names who consented), access_type=offline, prompt=consent,
 * include_granted_scopes=true, state, nonce, PKCE S256 challenge, and login_hint when not
 * NULL. 0 or -1. */
int google_consent_url(struct buf *out, const struct google_cfg *cfg, const char *state,
                       const char *nonce, const char *code_challenge, const char *login_hint)
    __attribute__((warn_unused_result));
/* Which required scopes are absent from the space-separated granted list: appended to
 * missing (each a char* borrowed from google_scopes) and counted. */
size_t google_missing_scopes(const char *granted, const char *missing[GOOGLE_NSCOPES]);
/* Exchange an authorization code (with its PKCE verifier). */
enum google_result google_exchange_code(struct http_client *c, const struct google_cfg *cfg,
                                        const char *code, const char *verifier,
                                        struct google_tokens *out);
/* A fresh access token from the refresh token: the grant is verified with Google. */
enum google_result google_refresh(struct http_client *c, const struct google_cfg *cfg,
                                  const char *refresh_token, struct google_tokens *out);
/* Revoke the grant. An already invalid token counts as revoked (GOOGLE_OK). message gets
 * the reason on failure. */
enum google_result google_revoke(struct http_client *c, const struct google_cfg *cfg,
                                 const char *token, char *message, size_t msglen);

#endif
