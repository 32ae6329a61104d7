/* states: single-use, expiring OAuth `state` values bound to a tenant, a provider and the
 * admin who started the flow. Only the state's SHA-256 is stored; the PKCE verifier is stored
 * sealed. */
#ifndef AUTH_STATES_H
#define AUTH_STATES_H

#include "grants.h"

#include "db.h"
#include <stddef.h>

#define STATE_LEN_MAX    128
#define VERIFIER_LEN_MAX 128

enum state_result {
    STATE_OK = 0,
    STATE_MALFORMED = 1, /* not a state we could have issued */
    STATE_UNKNOWN = 2,   /* never issued (or tampered with) */
    STATE_USED = 3,      /* replayed */
    STATE_EXPIRED = 4,
    STATE_WRONG_PROVIDER = 5,
    STATE_ERROR = 6, /* database or key trouble */
};
const char *state_result_str(enum state_result r);

/* True when s has the shape of a state we issue (base64url, 43 characters). */
int states_well_formed(const char *s);

struct state_new {
    char state[STATE_LEN_MAX]; /* goes into the consent URL */
    char challenge[64];        /* PKCE S256 challenge of the stored verifier */
    char nonce[64];            /* OpenID Connect nonce (the consent's id_token must carry it) */
};

/* What binds a state to the signed-in admin who started it. */
struct state_binding {
    const char *admin;           /* the actor: "person:<email>" */
    const char *session_hash;    /* admin_sessions.id_hash of the starting session */
    const char *provider_tenant; /* Microsoft: the session's directory (tid); else NULL */
};

/* Issue a state for (tenant, provider, binding) valid for ttl_s seconds, with a fresh PKCE
 * verifier stored sealed and a fresh nonce. 0 or -1 with a message. */
int states_create(struct db_conn *db, const struct grants *g, const char *tenant,
                  const char *provider, const struct state_binding *b, const char *redirect_uri,
                  long ttl_s, struct state_new *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

struct state_info {
    char tenant[80];
    char admin[320];
    char verifier[VERIFIER_LEN_MAX]; /* PKCE verifier (wipe after use) */
    char nonce[64];                  /* "" for a state issued before nonces existed */
    char session_hash[65];           /* "" for a state issued before sessions were bound */
    char provider_tenant[160];       /* Microsoft: the directory the consent must be for */
};

/* What every single-use state table (oauth_states for consents, signin_states for sign-ins)
 * shares. states_take runs take (a STATES_TAKE_SQL statement of the table) to consume the row
 * whose state_hash is hash: it is marked used
 * whatever comes next, so a state is never accepted twice even when two callbacks race, and
 * judged by its old values (unknown, used, expired, another provider's). On STATE_OK *row
 * (caller PQclear()s) holds the old row: the verifier's columns, then the statement's own
 * columns from STATE_COL_EXTRA on; otherwise *row is NULL. err gets the reason. */
#define STATE_COL_EXTRA 2
/* The statement states_take runs on a table, with a select list over old.* (literals). */
#define STATES_TAKE_SQL(table, columns)                                                            \
    "WITH old AS (SELECT * FROM " table " WHERE state_hash = $1 FOR UPDATE) "                      \
    "UPDATE " table " s SET used_at = coalesce(s.used_at, now()) FROM old "                        \
    "WHERE s.state_hash = old.state_hash RETURNING encode(old.verifier_sealed, 'hex'), "           \
    "old.verifier_key_id, " columns ", old.provider, old.used_at IS NOT NULL, "                    \
    "old.expires_at <= now()"
enum state_result states_take(struct db_conn *db, const struct db_stmt *take, const char *hash,
                              const char *provider, PGresult **row, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The PKCE verifier a taken row carries, sealed under the key ring with aad, into out. 0, or
 * -1 with a message when it cannot be opened (an unknown key, a wrong aad, too long). */
int states_open_verifier(const struct grants *g, const PGresult *row, const char *aad, char *out,
                         size_t outlen, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Consume a state for provider atomically: it is marked used whatever comes next, so a
 * second use is STATE_USED. */
enum state_result states_consume(struct db_conn *db, const struct grants *g, const char *provider,
                                 const char *state, struct state_info *out, char *err,
                                 size_t errlen);

#endif
