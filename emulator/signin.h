/* signin: OpenID Connect as the emulated Google and Microsoft speak it — RS256 signing keys
 * made at start (rotatable), the JWKS and discovery documents, the people who may sign in
 * (each district's admin plus admins added through the control API), an account picker page,
 * and the id_tokens the token endpoints return when the scope had "openid". */
#ifndef EMU_SIGNIN_H
#define EMU_SIGNIN_H

#include "emu.h"

#include <civetweb.h>
#include <stdbool.h>

#define SIGNIN_MAX_PEOPLE 1024

/* How the next id_tokens are made (control API), so a relying party's refusals are testable. */
enum signin_mode {
    SIGNIN_NORMAL = 0,
    SIGNIN_UNKNOWN_KEY,    /* signed by a key that is in no JWKS */
    SIGNIN_EXPIRED,        /* iat two hours ago, exp one hour ago */
    SIGNIN_OTHER_AUDIENCE, /* aud names another client */
};

struct emu_signin *emu_signin_new(char *err, size_t errlen);
void emu_signin_destroy(struct emu_signin *s);

/* A person who may sign in with a provider: the district's admin, or an added admin. */
struct signin_person {
    struct district *district; /* borrowed */
    char email[320];           /* lower case */
    char google_sub[32];       /* stable per (district, email) */
    char ms_oid[40];
};
/* Add (or update) an admin of d. 0; -1 invalid email (not of d's domain), -2 list full. */
int emu_signin_add(struct emu *e, struct district *d, const char *email, bool google,
                   bool microsoft) __attribute__((warn_unused_result));
/* Find a person by email for a provider ("google" or "microsoft"). true fills *out. */
bool emu_signin_find(struct emu *e, const char *email, const char *provider,
                     struct signin_person *out);
/* Any user of d (an admin or not) as an id_token describes them. */
void emu_signin_person(struct district *d, const char *email, struct signin_person *out);
/* The admins of d as a JSON array (new reference). */
json_t *emu_signin_list(struct emu *e, struct district *d);

/* Make a new current key (the previous one stays in the JWKS). 0 or -1. */
int emu_signin_rotate(struct emu *e) __attribute__((warn_unused_result));
void emu_signin_set_mode(struct emu *e, enum signin_mode mode);
/* "normal", "unknown_key", "expired", "other_audience": 0, or -1 for another name. */
int signin_mode_parse(const char *name, enum signin_mode *out) __attribute__((warn_unused_result));

/* id_tokens (caller frees; NULL when signing failed). base is the emulator's URL as the
 * client reached it (Google's issuer; Microsoft's login base). */
char *emu_signin_google_id_token(struct emu *e, const char *base, const struct signin_person *p,
                                 const char *client_id, const char *nonce);
char *emu_signin_ms_id_token(struct emu *e, const char *base, const struct signin_person *p,
                             const char *client_id, const char *nonce);

/* The published keys: {"keys":[current, previous]} (new reference, NULL out of memory). */
json_t *emu_signin_jwks(struct emu *e);

/* GET /.well-known/openid-configuration and GET /oauth2/v3/certs (ctx = struct emu *). */
int emu_signin_google_discovery(struct mg_connection *conn, void *ctx);
int emu_signin_google_jwks(struct mg_connection *conn, void *ctx);
/* Microsoft's /{tenant}/v2.0/.well-known/openid-configuration and /common/discovery/v2.0/keys. */
int emu_signin_ms_discovery(struct mg_connection *conn, struct emu *e, const char *tenant);
int emu_signin_ms_jwks(struct mg_connection *conn, struct emu *e);
/* The account picker: every person of every district who may use provider, each a link to
 * the current request with login_hint added. */
int emu_signin_picker(struct mg_connection *conn, struct emu *e, const char *provider);

#endif
