/* callers: which Panel service is calling an internal route, and whether it may.
 *
 * Each calling service has its own secret (its PANEL_SERVICE_SECRET). A callee (auth, the
 * merger) is configured with the list of secrets it accepts, each naming its caller:
 *
 *     api:<secret>,google-sync:<secret>,azure-sync:<secret>
 *
 * (entries separated by commas, spaces or new lines, so the same text works as an environment
 * variable and as a mounted file). A caller may be listed twice, with its old and its new
 * secret, while it is being rotated. The callee identifies the caller of a request by
 * comparing the presented Bearer secret with every configured one in constant time, then
 * checks the caller against the route's allowed set (one table per service, in that
 * service's routes.c; docs/security.md has the same tables). */
#ifndef PANEL_CALLERS_H
#define PANEL_CALLERS_H

#include <stdbool.h>
#include <stddef.h>

struct mg_connection;

/* The services that call internal routes; a route's allowed set is a bitwise OR of these. */
enum caller_id {
    CALLER_NONE = 0,
    CALLER_API = 1u << 0,
    CALLER_GOOGLE_SYNC = 1u << 1,
    CALLER_AZURE_SYNC = 1u << 2,
};

#define CALLERS_SECRET_MIN         16
#define CALLERS_SECRET_MAX         512
#define CALLERS_SECRETS_PER_CALLER 2 /* the old and the new one during a rotation */

/* "api", "google-sync", "azure-sync"; "unknown" for anything else. */
const char *caller_name(enum caller_id id);

struct callers;

/* Parse a callee's caller-secrets text (see above). `accepted` is the set of callers this
 * service has routes for: naming another caller is a configuration error, as are an unknown
 * caller name, a secret shorter than CALLERS_SECRET_MIN or with spaces or control characters,
 * the same secret twice (for one caller or two) and more than CALLERS_SECRETS_PER_CALLER
 * secrets for one caller. NULL or "" gives an empty set (every request is unknown). Returns
 * NULL with a message naming `env` (never a secret) in err. Caller frees with
 * callers_destroy. */
struct callers *callers_new(const char *env, const char *text, unsigned accepted, char *err,
                            size_t errlen) __attribute__((warn_unused_result));
void callers_destroy(struct callers *c);
/* Number of configured secrets. */
size_t callers_count(const struct callers *c);

/* The caller whose secret an "Authorization: Bearer <secret>" header carries, or CALLER_NONE.
 * Takes the same time whichever secret (if any) matches and whatever the secrets' lengths. */
enum caller_id callers_identify(const struct callers *c, const char *authorization);

enum callers_verdict {
    CALLERS_ALLOWED,
    CALLERS_UNKNOWN,   /* no or an unknown secret: 401 unauthorized */
    CALLERS_FORBIDDEN, /* a known caller, not in the route's set: 403 forbidden_caller */
};

/* Identify the caller of a request and check it against `allowed`; *who gets the caller
 * (CALLER_NONE when unknown). */
enum callers_verdict callers_check(const struct callers *c, const char *authorization,
                                   unsigned allowed, enum caller_id *who);

/* Reply 401 or 403 for a refused verdict (logging the caller's name on a 403, never a
 * secret); returns the HTTP status. */
int callers_reply_refused(struct mg_connection *conn, enum callers_verdict v, enum caller_id who);

#endif
