/* session: the admin page's signed-in sessions, shared by auth (which creates one after a
 * verified OpenID Connect sign-in and sets the cookie) and the api (which checks it on every
 * request). A session id is 32 random bytes as base64url; only its SHA-256 is stored
 * (admin_sessions.id_hash). The CSRF token is derived from the id, so nothing more is stored. */
#ifndef PANEL_SESSION_H
#define PANEL_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#define SESSION_COOKIE        "panel_session" /* the signed-in session */
#define SESSION_SIGNIN_COOKIE "panel_signin"  /* binds a started sign-in to its browser */
#define SESSION_CSRF_HEADER   "X-CSRF-Token"
#define SESSION_TOKEN_MAX     64 /* room for any token below, with its NUL */
#define SESSION_HASH_LEN      65 /* 64 hex characters and NUL */

/* A new random id (32 bytes of entropy, base64url: 43 characters) into out; 0 or -1. Used for
 * session ids, sign-in browser bindings, states and nonces alike. */
int session_new_token(char out[SESSION_TOKEN_MAX]) __attribute__((warn_unused_result));
/* True when s has the shape of a token made by session_new_token (43 base64url characters):
 * checked before anything else is done with a cookie or a header value. */
bool session_token_valid(const char *s);
/* The stored form of a token: SHA-256 as lower-case hex. */
void session_token_hash(const char *token, char out[SESSION_HASH_LEN]);
/* The CSRF token of a session: base64url(HMAC-SHA256(key = session id, "panel-csrf")); 0 or -1. */
int session_csrf_token(const char *session_id, char out[SESSION_TOKEN_MAX])
    __attribute__((warn_unused_result));
/* True when token is the session's CSRF token (constant-time comparison). */
bool session_csrf_valid(const char *session_id, const char *token);

/* The value of cookie name in a Cookie request header. 0 found (copied into out); 1 absent;
 * -1 value too long for outlen. */
int session_cookie_get(const char *cookie_header, const char *name, char *out, size_t outlen)
    __attribute__((warn_unused_result));
/* A complete "Set-Cookie: ...\r\n" header line into out: Path=/, HttpOnly, SameSite=Lax, and
 * Secure unless secure is false (local plain-http development only). max_age_s > 0 sets
 * Max-Age; 0 deletes the cookie (empty value, Max-Age=0); < 0 makes a browser-session cookie.
 * Returns 0, or -1 when out is too small or name/value hold characters a cookie cannot. */
int session_set_cookie(char *out, size_t outlen, const char *name, const char *value,
                       long max_age_s, bool secure) __attribute__((warn_unused_result));

#endif
