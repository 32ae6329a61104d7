/* upstream: see upstream.h. One short-lived libcurl client per call: requests are rare
 * (admin actions), and http_client is not thread-safe. */
#include "upstream.h"

#include "http_client.h"
#include "json.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int upstream_call(struct api_req *r, const char *base, const char *method, const char *path,
                  json_t *body, long *status, json_t **out)
{
    char err[256], auth[512], url[2048];
    char *text = NULL;
    int rc = -1;
    struct http_client_opts o = {.connect_timeout_ms = 3000,
                                 .timeout_ms = r->api->upstream_timeout_ms,
                                 .max_body = 1024 * 1024,
                                 .max_attempts = 1,
                                 .user_agent = "panel-api"};
    struct http_response resp;
    http_response_init(&resp);
    *out = NULL;
    struct http_client *c = http_client_new(&o, err, sizeof err);
    if (!c) {
        rest_error(r, 500, "internal", "cannot create an HTTP client");
        goto out;
    }
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->api->service_secret);
    snprintf(url, sizeof url, "%s%s", base, path);
    /* The same request id in auth's and the merger's logs as in the api's. */
    char request_id[HTTPD_REQUEST_ID_MAX + 32];
    snprintf(request_id, sizeof request_id, "%s: %s", HTTPD_REQUEST_HEADER, r->request_id);
    const char *headers[] = {auth, request_id, "Content-Type: application/json",
                             "Accept: application/json", NULL};
    if (body)
        text = pjson_dump_compact(body);
    struct http_request req = {.method = method,
                               .url = url,
                               .headers = headers,
                               .body = text,
                               .body_len = text ? strlen(text) : 0};
    enum http_result hr = http_client_do(c, &req, &resp, err, sizeof err);
    if (hr != HTTP_RESULT_OK) {
        log_warn_t(r->principal.tenant, NULL, "%s %s failed: %s", method, path, err);
        rest_error(r, 502, "upstream_unavailable",
                   "a Panel service needed for this request is unavailable; try again");
        goto out;
    }
    *status = resp.status;
    if (resp.body.len > 0)
        *out = pjson_parse(resp.body.data, resp.body.len, err, sizeof err);
    rc = 0;
out:
    free(text);
    http_response_free(&resp);
    http_client_destroy(c);
    return rc;
}

void upstream_post(struct api_req *r, const char *base, const char *path, json_t *body)
{
    long status = 0;
    json_t *out = NULL;
    if (!body) {
        rest_error(r, 500, "internal", "out of memory");
        return;
    }
    if (upstream_call(r, base, "POST", path, body, &status, &out) == 0)
        upstream_reply(r, status, out);
    json_decref(out);
}

void upstream_reply(struct api_req *r, long status, json_t *out)
{
    json_t *e = out ? json_object_get(out, "error") : NULL;
    if (status >= 200 && status < 300) {
        if (out)
            rest_reply_json(r, (int)status, out);
        else
            rest_reply_text(r, (int)status, "{}");
    } else if (status >= 400 && status < 500 && status != 401 && json_is_object(e) &&
               json_is_string(json_object_get(e, "code"))) {
        const char *msg = json_string_value(json_object_get(e, "message"));
        rest_error(r, (int)status, json_string_value(json_object_get(e, "code")), "%s",
                   msg ? msg : "the request was refused");
    } else {
        log_warn_t(r->principal.tenant, NULL, "upstream answered %ld", status);
        rest_error(r, 502, "upstream_error",
                   "a Panel service failed to handle the request "
                   "(status %ld)",
                   status);
    }
}
