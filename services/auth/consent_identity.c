/* consent_identity: the Google consent's id_token and the consenting admin's Workspace. */
#include "consent_identity.h"

#include "buf.h"
#include "json.h"
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Every SQL text of this module (lib/db prepares each by its name). */
static const struct db_stmt st_bind = {"consent_identity_bind",
                                       "UPDATE connections SET provider_tenant = $2 "
                                       "WHERE tenant_id = $1 AND provider = 'google' AND "
                                       "(provider_tenant IS NULL OR provider_tenant = $2) "
                                       "RETURNING 1"};

#define DIRECTORY_REPLY_MAX (256 * 1024)

/* A customer id as Google writes them (C0abc123): letters and digits. */
static int customer_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= CONSENT_CUSTOMER_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

/* users.get of the consenting admin: their own record carries the Workspace's customerId. */
static enum consent_id_result read_customer(const struct consent_id_cfg *cfg, struct http_client *h,
                                            const char *email, const char *access_token,
                                            char customer_id[CONSENT_CUSTOMER_MAX], char *msg,
                                            size_t msglen)
{
    enum consent_id_result r = CONSENT_ID_UNAVAILABLE;
    struct buf url, auth;
    struct http_response resp;
    json_t *j = NULL;
    char err[256] = "";
    buf_init(&url, 4096);
    buf_init(&auth, 8192);
    http_response_init(&resp);
    if (buf_appends(&url, cfg->api_url) || buf_appends(&url, "/admin/directory/v1/users/") ||
        buf_append_urlencoded(&url, email) || buf_appends(&auth, "Authorization: Bearer ") ||
        buf_appends(&auth, access_token)) {
        snprintf(msg, msglen, "the Directory request is too long");
        r = CONSENT_ID_REFUSED;
        goto out;
    }
    const char *headers[] = {auth.data, "Accept: application/json", NULL};
    struct http_request req = {.url = url.data, .headers = headers};
    if (http_client_do(h, &req, &resp, err, sizeof err) != HTTP_RESULT_OK || resp.status >= 500) {
        snprintf(msg, msglen, "Google's Directory API could not be reached; try again");
        goto out;
    }
    if (resp.status != 200 || resp.body.len > DIRECTORY_REPLY_MAX) {
        snprintf(msg, msglen,
                 "%s's own Directory record could not be read (HTTP %ld): the consent must be "
                 "given by a Google Workspace administrator",
                 email, resp.status);
        r = CONSENT_ID_REFUSED;
        goto out;
    }
    j = pjson_parse(resp.body.data ? resp.body.data : "", resp.body.len, err, sizeof err);
    const char *c = j ? pjson_str(j, "customerId") : NULL;
    if (!c || !customer_valid(c)) {
        snprintf(msg, msglen, "%s's Directory record names no Workspace customer", email);
        r = CONSENT_ID_REFUSED;
        goto out;
    }
    snprintf(customer_id, CONSENT_CUSTOMER_MAX, "%s", c);
    r = CONSENT_ID_OK;
out:
    json_decref(j);
    http_response_free(&resp);
    buf_free(&url);
    if (auth.data)
        memset(auth.data, 0, auth.len); /* it carries the access token */
    buf_free(&auth);
    return r;
}

enum consent_id_result consent_identity_check(const struct consent_id_cfg *cfg,
                                              struct http_client *h, const char *id_token,
                                              const char *nonce, const char *admin,
                                              const char *access_token,
                                              char customer_id[CONSENT_CUSTOMER_MAX], char *msg,
                                              size_t msglen)
{
    struct oidc_claims cl;
    char err[384];
    if (!id_token || !*id_token) {
        snprintf(msg, msglen, "Google returned no identity token; authorize again");
        return CONSENT_ID_REFUSED;
    }
    if (!nonce || !*nonce) {
        snprintf(msg, msglen, "this consent was started before an upgrade; start it again");
        return CONSENT_ID_REFUSED;
    }
    struct oidc_expect x = {
        .issuer = cfg->issuer,
        .issuer_alt =
            !strcmp(cfg->issuer, "https://accounts.google.com") ? "accounts.google.com" : NULL,
        .audience = cfg->client_id,
        .nonce = nonce,
    };
    enum oidc_err oe = oidc_verify_id_token(cfg->oidc, id_token, &x, &cl, err, sizeof err);
    if (oe == OIDC_ERR_FETCH) {
        snprintf(msg, msglen, "Google's signing keys could not be fetched; try again");
        return CONSENT_ID_UNAVAILABLE;
    }
    if (oe != OIDC_OK) {
        log_warn("google consent: id_token refused: %s: %s", oidc_err_str(oe), err);
        snprintf(msg, msglen, "Google's identity token was refused (%s)", oidc_err_str(oe));
        return CONSENT_ID_REFUSED;
    }
    if (!cl.email[0] || !cl.email_verified) {
        snprintf(msg, msglen, "Google did not confirm who consented (no verified address)");
        return CONSENT_ID_REFUSED;
    }
    const char *who = strncmp(admin, "person:", 7) == 0 ? admin + 7 : admin;
    if (strcasecmp(cl.email, who) != 0) {
        snprintf(msg, msglen,
                 "the consent was given by %s, but %s started it: sign in to Google as %s",
                 cl.email, who, who);
        return CONSENT_ID_REFUSED;
    }
    return read_customer(cfg, h, cl.email, access_token, customer_id, msg, msglen);
}

enum consent_id_result consent_identity_bind(struct db_conn *db, const char *tenant,
                                             const char *customer_id, char *msg, size_t msglen)
{
    enum consent_id_result r = CONSENT_ID_UNAVAILABLE;
    const char *p[] = {tenant, customer_id};
    /* the tenant's own earlier Workspace, if any, must be this one */
    PGresult *res = db_exec(db, &st_bind, 2, p);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        if (PQntuples(res) == 1) {
            r = CONSENT_ID_OK;
        } else {
            snprintf(msg, msglen,
                     "this district is connected to another Google Workspace; a consent for "
                     "Workspace %s is refused",
                     customer_id);
            r = CONSENT_ID_REFUSED;
        }
    } else {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && !strcmp(state, "23505")) { /* the unique index: another district has it */
            snprintf(msg, msglen,
                     "this Google Workspace (%s) is already connected to another district",
                     customer_id);
            r = CONSENT_ID_REFUSED;
        } else {
            snprintf(msg, msglen, "the Workspace could not be recorded: %s",
                     PQresultErrorMessage(res));
        }
    }
    PQclear(res);
    return r;
}
