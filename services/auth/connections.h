/* connections: one row per (tenant, provider) and its status transitions. Every statement
 * filters by the tenant it is given. The grant is stored sealed (grants.h) with the AAD
 * "grant:<tenant>/<provider>", so a sealed value copied to another tenant's row won't open. */
#ifndef AUTH_CONNECTIONS_H
#define AUTH_CONNECTIONS_H

#include "grants.h"

#include <jansson.h>
#include "db.h"
#include <stdbool.h>
#include <stddef.h>

enum conn_result {
    CONN_OK = 0,
    CONN_NO_TENANT = 1, /* the tenant does not exist */
    CONN_NOT_FOUND = 2, /* no usable connection */
    CONN_ERROR = 3,     /* database or key trouble (message in err) */
    CONN_TAKEN = 4,     /* the directory is connected to another district */
};

/* True for "google" and "azure". */
bool conn_provider_valid(const char *provider);
/* Whether the tenant exists. -1 on error. */
int conn_tenant_exists(struct db_conn *db, const char *tenant, char *err, size_t errlen);

/* Store a Google authorization inside the caller's transaction: the sealed refresh token,
 * the granted scopes and the missing ones (nmissing > 0 -> status scope_missing, no sync).
 * *first: the connection was not connected before (an AuthEvent is due). */
enum conn_result conn_store_google(struct db_conn *db, const struct grants *g, const char *tenant,
                                   const char *admin, const char *refresh_token,
                                   const char *granted_scopes, const char *const *missing,
                                   size_t nmissing, bool *first, char *err, size_t errlen);
/* Store a Microsoft admin consent (the directory id) inside the caller's transaction.
 * CONN_TAKEN when another district holds the directory (the unique index decides). */
enum conn_result conn_store_azure(struct db_conn *db, const char *tenant, const char *admin,
                                  const char *provider_tenant, bool *first, char *err,
                                  size_t errlen);

struct conn_grant {
    char status[24];
    char provider_tenant[160];
    char *secret; /* Google refresh token (grants_free_secret), or NULL */
};
/* Load the connection's status, provider tenant and (Google) opened grant. CONN_NOT_FOUND
 * when there is no row. */
enum conn_result conn_load(struct db_conn *db, const struct grants *g, const char *tenant,
                           const char *provider, struct conn_grant *out, char *err, size_t errlen);
/* connected -> revoked with the provider's message. *changed: this call made the change
 * (so exactly one caller publishes the REVOKED event). */
enum conn_result conn_mark_revoked(struct db_conn *db, const char *tenant, const char *provider,
                                   const char *message, bool *changed, char *err, size_t errlen);
/* De-authorize: delete the usable grant, status deauthorized (Microsoft: the directory and its
 * delta position are forgotten, so a later consent starts with a full run). For Google, the sealed
 * grant moves to revoke_sealed and remote_revoke_pending is set; *revoke_token gets it opened (the
 * caller revokes remotely, then calls conn_revoke_done). CONN_NOT_FOUND when there is no
 * row. */
enum conn_result conn_deauthorize(struct db_conn *db, const struct grants *g, const char *tenant,
                                  const char *provider, const char *admin, char **revoke_token,
                                  char *err, size_t errlen);
/* The remote revoke succeeded: forget the kept grant. */
int conn_revoke_done(struct db_conn *db, const char *tenant, const char *provider, char *err,
                     size_t errlen) __attribute__((warn_unused_result));
/* {"connections":[...]} as docs/contracts.md section 2 says (new reference) or NULL. */
json_t *conn_list_json(struct db_conn *db, const char *tenant, char *err, size_t errlen);

#endif
