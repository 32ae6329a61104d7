/* consent_session: a consent is started by a signed-in admin and finished in that admin's
 * browser. The api passes the session's stored hash (admin_sessions.id_hash) when it starts
 * a consent; the state keeps it; at the callback the browser's panel_session cookie must hash
 * to it and the session must still be live. A Microsoft consent is for the directory (tid)
 * of the session's own verified Microsoft sign-in. */
#ifndef AUTH_CONSENT_SESSION_H
#define AUTH_CONSENT_SESSION_H

#include "db.h"
#include <stdbool.h>
#include <stddef.h>

struct consent_session {
    char provider[16];         /* how the admin signed in: google or microsoft */
    char provider_tenant[160]; /* Microsoft: the verified tid; Google: hd or "" */
    char email[320];
};

enum consent_session_result {
    CONSENT_SESSION_OK = 0,
    CONSENT_SESSION_NONE = 1,  /* no live session of this district with that hash */
    CONSENT_SESSION_ERROR = 2, /* database trouble (message in err) */
};

/* True when s is a stored session hash (64 lower-case hex characters). */
bool consent_session_hash_valid(const char *s);

/* The live session (not ended, not expired, its account not removed) of tenant with
 * id_hash = session_hash. */
enum consent_session_result consent_session_load(struct db_conn *db, const char *tenant,
                                                 const char *session_hash,
                                                 struct consent_session *out, char *err,
                                                 size_t errlen);

/* True when the request's Cookie header carries a panel_session cookie whose hash equals
 * stored_hash (compared in constant time). NULL or "" stored_hash never matches. */
bool consent_session_cookie_matches(const char *cookie_header, const char *stored_hash);

#endif
