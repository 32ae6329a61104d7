#include "http_client.h"
#include "crypto.h"
#include "log.h"

#include <curl/curl.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct http_client {
    CURL *curl;
    struct http_client_opts opts;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_global(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int64_t http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *http_result_str(enum http_result r)
{
    switch (r) {
    case HTTP_RESULT_OK:
        return "ok";
    case HTTP_RESULT_TRANSPORT:
        return "transport error";
    case HTTP_RESULT_TOO_LARGE:
        return "response too large";
    case HTTP_RESULT_DEADLINE:
        return "deadline exceeded";
    case HTTP_RESULT_STOPPED:
        return "stopped";
    case HTTP_RESULT_RETRY_AFTER_TOO_LONG:
        return "Retry-After longer than the maximum backoff";
    }
    return "unknown";
}

struct http_client *http_client_new(const struct http_client_opts *opts, char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_global);
    struct http_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (opts)
        c->opts = *opts;
    if (!c->opts.connect_timeout_ms)
        c->opts.connect_timeout_ms = 5000;
    if (!c->opts.timeout_ms)
        c->opts.timeout_ms = 60000;
    if (!c->opts.max_body)
        c->opts.max_body = 32u * 1024u * 1024u;
    if (!c->opts.max_attempts)
        c->opts.max_attempts = 6;
    if (!c->opts.backoff_base_ms)
        c->opts.backoff_base_ms = 500;
    if (!c->opts.backoff_max_ms)
        c->opts.backoff_max_ms = 30000;
    if (!c->opts.retry_after_max_ms)
        c->opts.retry_after_max_ms = 600000;
    c->curl = curl_easy_init();
    if (!c->curl) {
        snprintf(err, errlen, "curl_easy_init failed");
        free(c);
        return NULL;
    }
    return c;
}

void http_client_destroy(struct http_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

void http_response_init(struct http_response *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body, 0);
    r->retry_after_s = -1;
}

void http_response_free(struct http_response *r)
{
    buf_free(&r->body);
}

struct write_ctx {
    struct buf *body;
    int too_large;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct write_ctx *w = userp;
    size_t n = size * nmemb;
    if (buf_append(w->body, data, n)) {
        w->too_large = 1;
        return 0; /* abort the transfer */
    }
    return n;
}

static void copy_header_value(const char *line, size_t n, char *out, size_t outlen)
{
    const char *v = memchr(line, ':', n);
    if (!v)
        return;
    v++;
    while (v < line + n && (*v == ' ' || *v == '\t'))
        v++;
    size_t len = (size_t)(line + n - v);
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userp)
{
    struct http_response *r = userp;
    size_t n = size * nmemb;
    if (n > 12 && strncasecmp(line, "Retry-After:", 12) == 0) {
        char v[128] = "";
        copy_header_value(line, n, v, sizeof v);
        r->retry_after_s = http_parse_retry_after(v);
    } else if (n > 9 && strncasecmp(line, "Location:", 9) == 0) {
        copy_header_value(line, n, r->location, sizeof r->location);
    } else if (n > 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
        copy_header_value(line, n, r->content_type, sizeof r->content_type);
    }
    return n;
}

double http_parse_retry_after(const char *value)
{
    if (!value || !*value)
        return -1;
    char *end = NULL;
    double d = strtod(value, &end);
    if (end != value && *end == '\0') {
        if (d < 0 || d > 86400)
            return -1;
        return d;
    }
    time_t t = curl_getdate(value, NULL);
    if (t < 0)
        return -1;
    double delta = difftime(t, time(NULL));
    return delta < 0 ? 0 : delta;
}

long http_backoff_ms(const struct http_client_opts *opts, int retry, double retry_after_s)
{
    long base = opts->backoff_base_ms > 0 ? opts->backoff_base_ms : 500;
    long cap = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 30000;
    long exp = base;
    for (int i = 1; i < retry && exp < cap; i++)
        exp *= 2;
    if (exp > cap)
        exp = cap;
    /* "Equal jitter": half fixed, half random, so waits neither collapse nor synchronise. */
    uint32_t r = 0;
    if (crypto_random(&r, sizeof r))
        r = (uint32_t)rand();
    long wait = exp / 2 + (long)(r % (uint32_t)(exp / 2 + 1));
    if (retry_after_s >= 0) {
        long ra = (long)(retry_after_s * 1000.0 + 0.5);
        if (ra > wait)
            wait = ra;
    }
    return wait;
}

enum http_retry http_classify_default(long status, const struct buf *body, void *ctx)
{
    (void)body;
    (void)ctx;
    if (status == 429)
        return HTTP_RETRY_THROTTLED;
    if (status == 500 || status == 502 || status == 503 || status == 504)
        return HTTP_RETRY_YES;
    return HTTP_RETRY_NO;
}

static int transport_retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

/* Sleep ms, polling cancelled(); returns 1 when cancelled. */
static int wait_ms(const struct http_client_opts *o, long ms)
{
    while (ms > 0) {
        if (o->cancelled && o->cancelled(o->cancelled_ctx))
            return 1;
        long step = ms > 50 ? 50 : ms;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return o->cancelled && o->cancelled(o->cancelled_ctx);
}

enum http_result http_client_do(struct http_client *c, const struct http_request *req,
                                struct http_response *resp, char *err, size_t errlen)
{
    struct curl_slist *hdrs = NULL;
    enum http_result result = HTTP_RESULT_TRANSPORT;
    enum http_retry (*classify)(long, const struct buf *, void *) =
        req->classify ? req->classify : http_classify_default;
    size_t max = c->opts.max_body;
    char curl_err[CURL_ERROR_SIZE];

    int throttled = 0, retried = 0;
    buf_free(&resp->body);
    http_response_init(resp);
    resp->body.max = max;
    for (size_t i = 0; req->headers && req->headers[i]; i++)
        hdrs = curl_slist_append(hdrs, req->headers[i]);
    hdrs = curl_slist_append(hdrs, "Expect:");

    for (int attempt = 1;; attempt++) {
        CURL *h = c->curl;
        struct write_ctx w = {.body = &resp->body, .too_large = 0};
        curl_easy_reset(h);
        buf_reset(&resp->body);
        resp->status = 0;
        resp->retry_after_s = -1;
        resp->location[0] = resp->content_type[0] = '\0';
        curl_err[0] = '\0';
        curl_easy_setopt(h, CURLOPT_URL, req->url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->opts.timeout_ms);
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT,
                         c->opts.user_agent ? c->opts.user_agent : "k12-panel");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
        if (req->method && strcmp(req->method, "GET") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        }
        resp->attempts = attempt;
        CURLcode rc = curl_easy_perform(h);
        enum http_retry retry = HTTP_RETRY_NO;
        if (w.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
            snprintf(err, errlen, "response from %s is larger than %zu bytes", req->url, max);
            result = HTTP_RESULT_TOO_LARGE;
            goto out;
        }
        if (rc != CURLE_OK) {
            snprintf(err, errlen, "%s: %s", curl_easy_strerror(rc), curl_err);
            if (!transport_retryable(rc)) {
                result = HTTP_RESULT_TRANSPORT;
                goto out;
            }
            retry = HTTP_RETRY_YES;
        } else {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
            retry = classify(resp->status, &resp->body, req->classify_ctx);
            if (retry == HTTP_RETRY_NO) {
                result = HTTP_RESULT_OK;
                goto out;
            }
            snprintf(err, errlen, "HTTP %ld from %s", resp->status, req->url);
        }
        if (retry == HTTP_RETRY_THROTTLED)
            throttled++;
        else
            retried++;
        resp->throttled = throttled;
        resp->retried_errors = retried;
        if (attempt >= c->opts.max_attempts) {
            result = rc == CURLE_OK ? HTTP_RESULT_OK : HTTP_RESULT_TRANSPORT;
            goto out;
        }
        long wait = http_backoff_ms(&c->opts, attempt, resp->retry_after_s);
        if (req->deadline_ms && http_now_ms() + wait > req->deadline_ms) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s; the next retry (in %ld ms) would pass the deadline", err,
                     wait);
            snprintf(err, errlen, "%s", msg);
            result = HTTP_RESULT_DEADLINE;
            goto out;
        }
        if (resp->retry_after_s * 1000.0 > (double)c->opts.retry_after_max_ms) {
            char msg[512];
            snprintf(msg, sizeof msg,
                     "%s; the server asked to wait %.3g s, longer than the %ld ms "
                     "allowed",
                     err, resp->retry_after_s, c->opts.retry_after_max_ms);
            snprintf(err, errlen, "%s", msg);
            result = HTTP_RESULT_RETRY_AFTER_TOO_LONG;
            goto out;
        }
        log_debug("retrying %s in %ld ms (attempt %d): %s", req->url, wait, attempt + 1, err);
        if (wait_ms(&c->opts, wait)) {
            snprintf(err, errlen, "stopped while waiting to retry");
            result = HTTP_RESULT_STOPPED;
            goto out;
        }
    }
out:
    resp->throttled = throttled;
    resp->retried_errors = retried;
    curl_slist_free_all(hdrs);
    return result;
}
