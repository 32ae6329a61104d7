/* signin: the admin page's sign-in with Google or Microsoft (OpenID Connect, authorization
 * code with PKCE). Public browser routes on auth's public URL, no service secret:
 *   GET /signin/{google,microsoft}[?tenant=T]        start: state, nonce, PKCE, sign-in cookie
 *   GET /signin/{google,microsoft}/callback?code&state  finish: verified id_token → session
 * A verified id_token is matched to an admin_accounts row (immutable provider id first, then
 * the address, binding the id at the first sign-in); success creates an admin_sessions row
 * (only the session id's hash is stored) and sets the session cookie. Every refusal stores
 * nothing. See docs/auth.md "Admin sign-in and sessions". */
#ifndef AUTH_SIGNIN_H
#define AUTH_SIGNIN_H

#include "ctx.h"
#include "httpd.h"

#include <stdbool.h>
#include <stddef.h>

struct signin_cfg {
    const char *public_url;    /* auth's public base URL (redirect URIs) */
    const char *admin_url;     /* where the browser lands */
    const char *google_issuer; /* PANEL_GOOGLE_ISSUER; discovery at <issuer>/.well-known/... */
    const char *ms_login_url;  /* PANEL_MS_LOGIN_URL; discovery of /organizations */
    const char *google_client_id, *google_client_secret;
    const char *ms_client_id, *ms_client_secret;
    long state_ttl_s;   /* a started sign-in, and its cookie */
    long session_max_h; /* absolute session lifetime */
    bool cookie_secure; /* Secure on the cookies (false only for plain-http development) */
};

struct signin;

/* The sign-in; nothing is fetched from the providers yet. The strings of cfg and c are
 * borrowed and must outlive it. NULL with a message. */
struct signin *signin_new(const struct signin_cfg *cfg, struct auth_ctx *c, char *err,
                          size_t errlen);
void signin_destroy(struct signin *s);
/* Register the /signin routes on h (s borrowed). 0 or -1. */
int signin_routes(struct httpd *h, struct signin *s) __attribute__((warn_unused_result));

#endif
