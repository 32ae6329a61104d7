/* ms_consent: admin consent URL, client credentials, AADSTS classification. */
#include "ms_consent.h"

#include "ids.h"
#include "json.h"
#include "oauth_http.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ms_result_str(enum ms_result r)
{
    switch (r) {
    case MS_OK:
        return "ok";
    case MS_REVOKED:
        return "revoked";
    case MS_SECRET_INVALID:
        return "secret_invalid";
    case MS_REJECTED:
        return "rejected";
    case MS_UNAVAILABLE:
        return "unavailable";
    }
    return "unknown";
}

void ms_token_clear(struct ms_token *t)
{
    if (t->access_token) {
        OPENSSL_cleanse(t->access_token, strlen(t->access_token));
        free(t->access_token);
    }
    t->access_token = NULL;
    t->expires_in = 0;
    t->message[0] = '\0';
}

enum ms_result ms_classify_error(long status, const json_t *reply)
{
    if (status == 0 || status >= 500)
        return MS_UNAVAILABLE;
    const json_t *codes = reply ? json_object_get(reply, "error_codes") : NULL;
    size_t i;
    const json_t *v;
    if (json_is_array(codes)) {
        json_array_foreach(codes, i, v)
        {
            if (!json_is_integer(v))
                continue;
            switch (json_integer_value(v)) {
            case 700016: /* application not found in the directory: consent removed */
            case 65001:  /* consent missing */
            case 90002:  /* tenant not found */
                return MS_REVOKED;
            case 7000215: /* invalid client secret */
            case 7000222: /* expired client secret */
                return MS_SECRET_INVALID;
            default:
                break;
            }
        }
    }
    const char *e = reply ? pjson_str(reply, "error") : NULL;
    if (e && strcmp(e, "invalid_client") == 0)
        return MS_SECRET_INVALID;
    if (e && strcmp(e, "temporarily_unavailable") == 0)
        return MS_UNAVAILABLE;
    return MS_REJECTED;
}

int ms_consent_url(struct buf *out, const struct ms_cfg *cfg, const char *directory,
                   const char *state, const char *login_hint)
{
    if (!ids_directory_valid(directory) ||
        buf_appendf(out, "%s/%s/v2.0/adminconsent?", cfg->login_url, directory) ||
        oauth_param(out, 1, "client_id", cfg->client_id) ||
        oauth_param(out, 0, "scope", MS_GRAPH_SCOPE) ||
        oauth_param(out, 0, "redirect_uri", cfg->redirect_uri) ||
        oauth_param(out, 0, "state", state))
        return -1;
    if (login_hint && *login_hint && oauth_param(out, 0, "login_hint", login_hint))
        return -1;
    return 0;
}

enum ms_result ms_client_token(struct http_client *c, const struct ms_cfg *cfg, const char *tenant,
                               struct ms_token *out)
{
    enum ms_result r = MS_UNAVAILABLE;
    struct buf form, url;
    json_t *reply = NULL;
    long status = 0;
    char err[256];
    buf_init(&form, 16384);
    buf_init(&url, 4096);
    ms_token_clear(out);
    if (!ids_directory_valid(tenant)) {
        snprintf(out->message, sizeof out->message, "invalid tenant id");
        r = MS_REJECTED;
        goto out;
    }
    if (buf_appendf(&url, "%s/%s/oauth2/v2.0/token", cfg->login_url, tenant) ||
        oauth_param(&form, 1, "grant_type", "client_credentials") ||
        oauth_param(&form, 0, "client_id", cfg->client_id) ||
        oauth_param(&form, 0, "client_secret", cfg->client_secret) ||
        oauth_param(&form, 0, "scope", MS_GRAPH_SCOPE)) {
        snprintf(out->message, sizeof out->message, "request too large");
        r = MS_REJECTED;
        goto out;
    }
    if (oauth_http_post_form(c, url.data, &form, &status, &reply, err, sizeof err) !=
        OAUTH_HTTP_OK) {
        snprintf(out->message, sizeof out->message, "%s", err);
        goto out;
    }
    if (status == 200 && reply && pjson_str(reply, "access_token")) {
        int64_t exp = 3599;
        (void)pjson_get_int(reply, "expires_in", &exp);
        out->access_token = strdup(pjson_str(reply, "access_token"));
        out->expires_in = exp;
        r = out->access_token ? MS_OK : MS_UNAVAILABLE;
        goto out;
    }
    r = status == 200 ? MS_UNAVAILABLE : ms_classify_error(status, reply);
    {
        const char *e = reply ? pjson_str(reply, "error") : NULL;
        const json_t *codes = reply ? json_object_get(reply, "error_codes") : NULL;
        long long code0 = json_is_array(codes) && json_is_integer(json_array_get(codes, 0))
                              ? json_integer_value(json_array_get(codes, 0))
                              : 0;
        if (code0)
            snprintf(out->message, sizeof out->message, "%s (AADSTS%lld)", e ? e : "error", code0);
        else
            snprintf(out->message, sizeof out->message, "%s (HTTP %ld)", e ? e : "error", status);
    }
out:
    oauth_reply_free(reply);
    oauth_form_free(&form);
    buf_free(&url);
    return r;
}
