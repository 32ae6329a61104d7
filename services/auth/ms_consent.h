/* ms_consent: Microsoft Entra admin consent and client-credentials tokens, with the AADSTS
 * error codes classified as PROVIDERS.md says (decide on error_codes, never the text). */
#ifndef AUTH_MS_CONSENT_H
#define AUTH_MS_CONSENT_H

#include "buf.h"
#include "http_client.h"

#include <jansson.h>
#include <stddef.h>

#define MS_GRAPH_SCOPE "https://graph.microsoft.com/.default"
/* The application permission the app registration holds (read-only). */
#define MS_PERMISSION "User.Read.All"

struct ms_cfg {
    const char *login_url; /* https://login.microsoftonline.com */
    const char *client_id;
    const char *client_secret;
    const char *redirect_uri; /* our /oauth/microsoft/callback */
};

enum ms_result {
    MS_OK = 0,
    MS_REVOKED = 1,        /* 700016 app not in tenant, 65001 consent missing, 90002 no tenant */
    MS_SECRET_INVALID = 2, /* 7000215/7000222: the operator must rotate the client secret */
    MS_REJECTED = 3,       /* another 4xx */
    MS_UNAVAILABLE = 4,    /* unreachable or 5xx */
};
const char *ms_result_str(enum ms_result r);

/* Classify a token-endpoint error reply (status and parsed body, which may be NULL). */
enum ms_result ms_classify_error(long status, const json_t *reply);

struct ms_token {
    char *access_token; /* malloc'd; ms_token_clear wipes it */
    long long expires_in;
    char message[256]; /* the provider's error and codes (never a token) */
};
void ms_token_clear(struct ms_token *t);

/* Append the admin consent URL for one directory ({login}/{directory}/v2.0/adminconsent with
 * client_id, scope=.default, redirect_uri, state, and login_hint when not NULL). directory is
 * the signed-in admin's own tid (checked with ids_directory_valid). 0 or -1. */
int ms_consent_url(struct buf *out, const struct ms_cfg *cfg, const char *directory,
                   const char *state, const char *login_hint) __attribute__((warn_unused_result));
/* A client-credentials token for the tenant. */
enum ms_result ms_client_token(struct http_client *c, const struct ms_cfg *cfg, const char *tenant,
                               struct ms_token *out);

#endif
