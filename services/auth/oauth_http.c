/* oauth_http: form POSTs to OAuth token/revoke endpoints. */
#include "oauth_http.h"

#include "json.h"

#include <openssl/crypto.h>
#include <stdio.h>

#define OAUTH_DEADLINE_MS 20000

struct http_client *oauth_http_client_new(char *err, size_t errlen)
{
    struct http_client_opts o = {
        .connect_timeout_ms = 2000,
        .timeout_ms = 15000,
        .max_body = OAUTH_MAX_REPLY,
        .max_attempts = 3,
        .backoff_base_ms = 200,
        .backoff_max_ms = 2000,
        .retry_after_max_ms = 10000, /* an admin's browser is waiting */
        .user_agent = "k12-panel-auth",
    };
    return http_client_new(&o, err, errlen);
}

enum oauth_http_result oauth_http_post_form(struct http_client *c, const char *url,
                                            const struct buf *form, long *status, json_t **reply,
                                            char *err, size_t errlen)
{
    enum oauth_http_result rc = OAUTH_HTTP_UNAVAILABLE;
    static const char *const headers[] = {"Content-Type: application/x-www-form-urlencoded",
                                          "Accept: application/json", NULL};
    struct http_response resp;
    char herr[256] = "";
    http_response_init(&resp);
    struct http_request req = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = form->data ? form->data : "",
        .body_len = form->len,
        /* a browser or the scheduler waits on this: no retry starts after it */
        .deadline_ms = http_now_ms() + OAUTH_DEADLINE_MS,
    };
    *reply = NULL;
    *status = 0;
    enum http_result hr = http_client_do(c, &req, &resp, herr, sizeof herr);
    if (hr != HTTP_RESULT_OK) {
        snprintf(err, errlen, "provider unreachable: %s (%s)", http_result_str(hr), herr);
        goto out;
    }
    if (resp.status >= 500) {
        snprintf(err, errlen, "provider answered HTTP %ld", resp.status);
        goto out;
    }
    *status = resp.status;
    if (resp.body.len > 0) {
        char perr[128];
        json_t *j = pjson_parse(resp.body.data, resp.body.len, perr, sizeof perr);
        if (j && !json_is_object(j)) {
            json_decref(j);
            j = NULL;
        }
        *reply = j;
    }
    rc = OAUTH_HTTP_OK;
out:
    http_response_free(&resp);
    return rc;
}

int oauth_param(struct buf *b, int first, const char *name, const char *value)
{
    if (buf_appendf(b, "%s%s=", first ? "" : "&", name) || buf_append_urlencoded(b, value))
        return -1;
    return 0;
}

void oauth_form_free(struct buf *form)
{
    if (form->data)
        OPENSSL_cleanse(form->data, form->len);
    buf_free(form);
}

void oauth_reply_free(json_t *reply)
{
    const char *k;
    json_t *v;
    if (!reply)
        return;
    json_object_foreach(reply, k, v) if (json_is_string(v))
        OPENSSL_cleanse((void *)json_string_value(v), json_string_length(v));
    json_decref(reply);
}
