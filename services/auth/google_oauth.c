/* google_oauth: consent URL, code exchange, refresh and revoke at Google. */
#include "google_oauth.h"

#include "json.h"
#include "oauth_http.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const google_scopes[GOOGLE_NSCOPES] = {GOOGLE_SCOPE_USERS, GOOGLE_SCOPE_ORGUNIT,
                                                   GOOGLE_SCOPE_DEVICES};

const char *google_result_str(enum google_result r)
{
    switch (r) {
    case GOOGLE_OK:
        return "ok";
    case GOOGLE_INVALID_GRANT:
        return "invalid_grant";
    case GOOGLE_REJECTED:
        return "rejected";
    case GOOGLE_UNAVAILABLE:
        return "unavailable";
    }
    return "unknown";
}

static void free_secret(char **s)
{
    if (*s) {
        OPENSSL_cleanse(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

void google_tokens_clear(struct google_tokens *t)
{
    free_secret(&t->access_token);
    free_secret(&t->refresh_token);
    free(t->scope);
    t->scope = NULL;
    free(t->id_token);
    t->id_token = NULL;
    t->expires_in = 0;
    t->message[0] = '\0';
}

int google_consent_url(struct buf *out, const struct google_cfg *cfg, const char *state,
                       const char *nonce, const char *code_challenge, const char *login_hint)
{
    struct buf scopes;
    int rc = -1;
    buf_init(&scopes, 4096);
    for (size_t i = 0; i < GOOGLE_NSCOPES; i++)
        if (buf_appendf(&scopes, "%s%s", i ? " " : "", google_scopes[i]))
            goto out;
    if (buf_appends(&scopes, " openid email"))
        goto out;
    if (buf_appends(out, cfg->auth_url) ||
        buf_appends(out, strchr(cfg->auth_url, '?') ? "&" : "?") ||
        oauth_param(out, 1, "response_type", "code") ||
        oauth_param(out, 0, "client_id", cfg->client_id) ||
        oauth_param(out, 0, "redirect_uri", cfg->redirect_uri) ||
        oauth_param(out, 0, "scope", scopes.data) ||
        oauth_param(out, 0, "access_type", "offline") || oauth_param(out, 0, "prompt", "consent") ||
        oauth_param(out, 0, "include_granted_scopes", "true") ||
        oauth_param(out, 0, "state", state) || oauth_param(out, 0, "nonce", nonce) ||
        oauth_param(out, 0, "code_challenge", code_challenge) ||
        oauth_param(out, 0, "code_challenge_method", "S256"))
        goto out;
    if (login_hint && *login_hint && oauth_param(out, 0, "login_hint", login_hint))
        goto out;
    rc = 0;
out:
    buf_free(&scopes);
    return rc;
}

size_t google_missing_scopes(const char *granted, const char *missing[GOOGLE_NSCOPES])
{
    size_t n = 0;
    for (size_t i = 0; i < GOOGLE_NSCOPES; i++) {
        const char *want = google_scopes[i];
        size_t wl = strlen(want);
        int found = 0;
        const char *p = granted ? granted : "";
        while (*p && !found) {
            while (*p == ' ')
                p++;
            size_t len = strcspn(p, " ");
            if (len == wl && memcmp(p, want, wl) == 0)
                found = 1;
            p += len;
        }
        if (!found)
            missing[n++] = want;
    }
    return n;
}

static void copy_message(struct google_tokens *out, const json_t *reply, long status)
{
    const char *e = reply ? pjson_str(reply, "error") : NULL;
    const char *d = reply ? pjson_str(reply, "error_description") : NULL;
    snprintf(out->message, sizeof out->message, "%s%s%s", e ? e : "HTTP error", d ? ": " : "",
             d ? d : "");
    if (!e && !d)
        snprintf(out->message, sizeof out->message, "HTTP %ld", status);
}

static char *dup_str(const json_t *o, const char *key)
{
    const char *s = pjson_str(o, key);
    return s ? strdup(s) : NULL;
}

/* Post a token request and read the reply into out. */
static enum google_result token_call(struct http_client *c, const char *url, const struct buf *form,
                                     struct google_tokens *out)
{
    enum google_result r = GOOGLE_UNAVAILABLE;
    json_t *reply = NULL;
    long status = 0;
    char err[256];
    google_tokens_clear(out);
    if (oauth_http_post_form(c, url, form, &status, &reply, err, sizeof err) != OAUTH_HTTP_OK) {
        snprintf(out->message, sizeof out->message, "%s", err);
        goto out;
    }
    if (status == 200 && reply && pjson_str(reply, "access_token")) {
        int64_t exp = 3600;
        (void)pjson_get_int(reply, "expires_in", &exp);
        out->access_token = dup_str(reply, "access_token");
        out->refresh_token = dup_str(reply, "refresh_token");
        out->scope = dup_str(reply, "scope");
        out->id_token = dup_str(reply, "id_token");
        out->expires_in = exp;
        r = out->access_token ? GOOGLE_OK : GOOGLE_UNAVAILABLE;
        goto out;
    }
    copy_message(out, reply, status);
    if (status == 200) {
        snprintf(out->message, sizeof out->message, "token reply without access_token");
        r = GOOGLE_UNAVAILABLE;
    } else if (reply && pjson_str(reply, "error") &&
               strcmp(pjson_str(reply, "error"), "invalid_grant") == 0) {
        r = GOOGLE_INVALID_GRANT;
    } else {
        r = GOOGLE_REJECTED;
    }
out:
    oauth_reply_free(reply);
    return r;
}

/* A token-endpoint call: the grant's NULL-terminated name/value pairs, then the client's
 * credentials. The form, which carries secrets, is wiped. */
static enum google_result token_request(struct http_client *c, const struct google_cfg *cfg,
                                        const char *const *grant, struct google_tokens *out)
{
    enum google_result r = GOOGLE_REJECTED;
    struct buf form;
    int fail = 0;
    buf_init(&form, 16384);
    for (size_t i = 0; grant[i] && !fail; i += 2)
        fail = oauth_param(&form, i == 0, grant[i], grant[i + 1]);
    if (fail || oauth_param(&form, 0, "client_id", cfg->client_id) ||
        oauth_param(&form, 0, "client_secret", cfg->client_secret))
        snprintf(out->message, sizeof out->message, "request too large");
    else
        r = token_call(c, cfg->token_url, &form, out);
    oauth_form_free(&form);
    return r;
}

enum google_result google_exchange_code(struct http_client *c, const struct google_cfg *cfg,
                                        const char *code, const char *verifier,
                                        struct google_tokens *out)
{
    const char *grant[] = {"grant_type",   "authorization_code", "code",
                           code,           "code_verifier",      verifier,
                           "redirect_uri", cfg->redirect_uri,    NULL};
    return token_request(c, cfg, grant, out);
}

enum google_result google_refresh(struct http_client *c, const struct google_cfg *cfg,
                                  const char *refresh_token, struct google_tokens *out)
{
    const char *grant[] = {"grant_type", "refresh_token", "refresh_token", refresh_token, NULL};
    return token_request(c, cfg, grant, out);
}

enum google_result google_revoke(struct http_client *c, const struct google_cfg *cfg,
                                 const char *token, char *message, size_t msglen)
{
    enum google_result r = GOOGLE_UNAVAILABLE;
    struct buf form;
    json_t *reply = NULL;
    long status = 0;
    char err[256];
    buf_init(&form, 16384);
    if (oauth_param(&form, 1, "token", token)) {
        snprintf(message, msglen, "request too large");
        r = GOOGLE_REJECTED;
        goto out;
    }
    if (oauth_http_post_form(c, cfg->revoke_url, &form, &status, &reply, err, sizeof err) !=
        OAUTH_HTTP_OK) {
        snprintf(message, msglen, "%s", err);
        goto out;
    }
    if (status == 200) {
        r = GOOGLE_OK;
    } else if (status == 400 && reply && pjson_str(reply, "error") &&
               (strcmp(pjson_str(reply, "error"), "invalid_token") == 0 ||
                strcmp(pjson_str(reply, "error"), "invalid_grant") == 0)) {
        /* Already revoked or expired at Google: nothing left to revoke. */
        r = GOOGLE_OK;
    } else {
        snprintf(message, msglen, "revoke answered HTTP %ld", status);
        r = GOOGLE_REJECTED;
    }
out:
    json_decref(reply);
    oauth_form_free(&form);
    return r;
}
