/* auth_keys: who is asking. An API key "pk_<key_id>.<secret>" (only sha256(secret) is stored;
 * a key belongs to one tenant and has the role admin or viewer), or a signed-in admin's
 * session cookie (only the session id's SHA-256 is stored; the role is the account's current
 * one). Both give one struct principal that every handler reads. */
#ifndef API_AUTH_KEYS_H
#define API_AUTH_KEYS_H

#include "db.h"
#include "session.h"

#include <stdbool.h>
#include <stddef.h>

#define AUTH_KEY_ID_MAX 40
#define AUTH_TENANT_MAX 72
#define AUTH_EMAIL_MAX  254
#define AUTH_ACTOR_MAX  (7 + AUTH_EMAIL_MAX + 1) /* "person:" + email, or "apikey:" + key id */

enum auth_result {
    AUTH_OK = 0,
    AUTH_MISSING = 1, /* no or malformed Authorization header / session cookie */
    AUTH_INVALID = 2, /* unknown, revoked, ended, expired or idle */
    AUTH_ERROR = 3,   /* database unavailable */
};

enum principal_kind {
    PRINCIPAL_APIKEY = 1,
    PRINCIPAL_SESSION = 2,
};

/* The authenticated caller of one request. */
struct principal {
    enum principal_kind kind;
    char tenant[AUTH_TENANT_MAX + 1];    /* scopes every query */
    bool admin;                          /* role admin (else viewer) */
    char actor[AUTH_ACTOR_MAX + 1];      /* "person:<email>" or "apikey:<key_id>": audit records */
    char key_id[AUTH_KEY_ID_MAX + 1];    /* API key only */
    char email[AUTH_EMAIL_MAX + 1];      /* session only: the account's email */
    char account_id[37];                 /* session only */
    char provider[16];                   /* session only: google or microsoft */
    char expires_at[40];                 /* session only: absolute expiry, RFC 3339 */
    char session_hash[SESSION_HASH_LEN]; /* session only: admin_sessions.id_hash */
};

/* Split "Bearer pk_<id>.<secret>" into its parts. 0 or -1 when malformed. */
int auth_keys_parse(const char *header, char *key_id, size_t idlen, char *secret, size_t secretlen)
    __attribute__((warn_unused_result));
/* Check the header against api_keys; fills out on AUTH_OK. */
enum auth_result auth_keys_check(struct db_conn *db, const char *header, struct principal *out);
/* Check a session id (the panel_session cookie, already checked with session_token_valid):
 * not ended, not past its absolute expiry, used within idle_minutes, its account not removed.
 * Refreshes last_seen_at at most once a minute. Fills out on AUTH_OK. */
enum auth_result auth_session_check(struct db_conn *db, const char *session_id, long idle_minutes,
                                    struct principal *out);
#endif
