/* consent_identity: who gave a Google consent, and for which Workspace. The consent asks for
 * `openid email` beside the Directory scopes; its id_token (verified with lib/oidc, with the
 * nonce of the state) must name the admin who started the consent, and that admin's own
 * Directory record (users.get) gives the Workspace customer id the connection is bound to.
 * One Workspace belongs to at most one district; a district keeps its Workspace. */
#ifndef AUTH_CONSENT_IDENTITY_H
#define AUTH_CONSENT_IDENTITY_H

#include "http_client.h"
#include "oidc.h"

#include "db.h"
#include <stddef.h>

#define CONSENT_CUSTOMER_MAX 64

enum consent_id_result {
    CONSENT_ID_OK = 0,
    CONSENT_ID_REFUSED = 1,     /* msg says why, for the admin page */
    CONSENT_ID_UNAVAILABLE = 2, /* Google or the database could not be reached */
};

struct consent_id_cfg {
    struct oidc_provider *oidc; /* Google's keys (borrowed) */
    const char *issuer;         /* PANEL_GOOGLE_ISSUER */
    const char *client_id;
    const char *api_url; /* PANEL_GOOGLE_API_URL: the Directory API base */
};

/* Verify the consent's id_token (issuer, audience, nonce, verified address), check that it
 * names admin (the state's admin: an address, or "person:<address>"), and read that admin's
 * customerId with the consent's access token. */
enum consent_id_result consent_identity_check(const struct consent_id_cfg *cfg,
                                              struct http_client *h, const char *id_token,
                                              const char *nonce, const char *admin,
                                              const char *access_token,
                                              char customer_id[CONSENT_CUSTOMER_MAX], char *msg,
                                              size_t msglen) __attribute__((warn_unused_result));

/* Inside the open transaction that stored the grant: bind the tenant's Google connection to
 * customer_id. Refused when the tenant is bound to another Workspace or the Workspace to
 * another tenant (the transaction must then be rolled back). */
enum consent_id_result consent_identity_bind(struct db_conn *db, const char *tenant,
                                             const char *customer_id, char *msg, size_t msglen)
    __attribute__((warn_unused_result));

#endif
