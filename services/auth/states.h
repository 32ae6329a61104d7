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

/* Consume a state for provider atomically: it is marked used whatever comes next, so a
 * second use is STATE_USED. */
enum state_result states_consume(struct db_conn *db, const struct grants *g, const char *provider,
                                 const char *state, struct state_info *out, char *err,
                                 size_t errlen);

#endif
