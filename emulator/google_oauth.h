/* google_oauth: Google's OAuth 2.0 for web server apps — the authorization endpoint with its
 * consent step, the token endpoint (authorization_code with PKCE, refresh_token), revoke and
 * tokeninfo — and the check the directory routes make on a bearer token. */
#ifndef EMU_GOOGLE_OAUTH_H
#define EMU_GOOGLE_OAUTH_H

#include "emu.h"

#include <civetweb.h>
#include <stdbool.h>

#define GSCOPE_USER       (1u << 0)
#define GSCOPE_ORGUNIT    (1u << 1)
#define GSCOPE_DEVICE     (1u << 2)
#define GSCOPE_USER_RW    (1u << 6)
#define GSCOPE_ORGUNIT_RW (1u << 7)
#define GSCOPE_DEVICE_RW  (1u << 8)

struct google_oauth *google_oauth_new(void);
void google_oauth_destroy(struct google_oauth *g);

/* Route handlers (ctx = struct emu *). */
int google_oauth_authorize(struct mg_connection *conn, void *ctx); /* GET /o/oauth2/v2/auth */
int google_oauth_consent(struct mg_connection *conn, void *ctx);   /* the consent form post */
int google_oauth_token(struct mg_connection *conn, void *ctx);     /* POST /token */
int google_oauth_revoke(struct mg_connection *conn, void *ctx);    /* POST /revoke */
int google_oauth_tokeninfo(struct mg_connection *conn, void *ctx); /* GET|POST /tokeninfo */

struct google_access {
    struct district *district; /* borrowed */
    unsigned scopes;           /* GSCOPE_* */
    bool admin;                /* the consenting user is an administrator */
};
/* 0: token valid (out filled); -1: invalid, expired or revoked. */
int google_oauth_check(struct emu *e, const char *token, struct google_access *out)
    __attribute__((warn_unused_result));
/* Revoke every grant of a district (control API). */
void google_oauth_revoke_district(struct emu *e, struct district *d);

#endif
