#include "httpd.h"
#include "crypto.h"
#include "json.h"
#include "log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HTTPD_MAX_ROUTES 64

struct httpd_route {
    struct httpd *h;
    char name[96];
    mg_request_handler handler;
    void *ctx;
    bool quiet; /* a probe: its access-log line is at debug level */
};

/* What httpd knows of the request being served; civetweb's per-connection user data points
 * to it while the route's handler runs. */
struct httpd_request {
    char id[HTTPD_REQUEST_ID_MAX + 1];
    char caller[64];
    const char *label; /* the route pattern or name, for metrics and the access log */
};

struct httpd {
    struct mg_context *ctx;
    struct metrics *metrics;
    long port;
    int nroutes;
    struct httpd_route routes[HTTPD_MAX_ROUTES];
};

static int civet_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("civetweb: %s", message);
    return 1;
}

/* civetweb's own refusals (a malformed request line or header, a method it does not know)
 * never reach a route: answer them in the JSON error shape with a request id, like every
 * reply, instead of civetweb's text page. */
static int civet_http_error(struct mg_connection *conn, int status, const char *errmsg)
{
    char id[HTTPD_REQUEST_ID_MAX + 1], extra[128];
    /* The request's own X-Request-Id may be the malformed part: always make one. */
    httpd_request_id(NULL, id);
    snprintf(extra, sizeof extra, "%s: %s\r\nConnection: close\r\n", HTTPD_REQUEST_HEADER, id);
    const char *code = status == 400   ? "bad_request"
                       : status == 404 ? "not_found"
                       : status == 405 ? "method_not_allowed"
                       : status == 413 ? "body_too_large"
                       : status >= 500 ? "internal"
                                       : "http_error";
    json_t *body =
        json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message",
                  errmsg && *errmsg ? errmsg : "the request was refused", "request_id", id);
    char *text = body ? pjson_dump_compact(body) : NULL;
    static const char fallback[] = "{\"error\":{\"code\":\"http_error\",\"message\":\"refused\"}}";
    httpd_reply(conn, status, "application/json", text ? text : fallback,
                text ? strlen(text) : sizeof fallback - 1, extra);
    free(text);
    json_decref(body);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int route_dispatch(struct mg_connection *conn, void *cbdata)
{
    struct httpd_route *r = cbdata;
    struct httpd_request req = {.caller = "-", .label = r->name};
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *method = ri && ri->request_method ? ri->request_method : "?";
    double t0 = now_s();
    httpd_request_id(mg_get_header(conn, HTTPD_REQUEST_HEADER), req.id);
    mg_set_user_connection_data(conn, &req);
    log_set_request(req.id);
    int status = r->handler(conn, r->ctx);
    double seconds = now_s() - t0;
    if (r->h->metrics && status > 0) {
        char labels[300];
        snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",code=\"%d\"", req.label, method,
                 status);
        metrics_counter_add(r->h->metrics, "http_requests_total", labels, 1);
        snprintf(labels, sizeof labels, "route=\"%s\"", req.label);
        metrics_observe(r->h->metrics, "http_request_duration_seconds", labels, seconds);
    }
    /* The access log: the route pattern, never the path or query (ids, codes, states); its
     * values have no spaces, so the line splits into name=value pairs. */
    char route[96];
    snprintf(route, sizeof route, "%s", req.label);
    for (char *p = route; *p; p++)
        if (*p == ' ')
            *p = '_';
    enum log_level level = status >= 500 ? LOG_WARN : r->quiet ? LOG_DEBUG : LOG_INFO;
    LOG_AT(level, NULL, NULL, "access method=%s route=%s status=%d duration_ms=%.3f caller=%s",
           method, route, status, seconds * 1000.0, req.caller);
    log_set_request(NULL);
    mg_set_user_connection_data(conn, NULL);
    return status;
}

static struct httpd_request *current(const struct mg_connection *conn)
{
    return conn ? mg_get_user_connection_data(conn) : NULL;
}

const char *httpd_current_request_id(const struct mg_connection *conn)
{
    struct httpd_request *req = current(conn);
    return req ? req->id : NULL;
}

void httpd_set_caller(const struct mg_connection *conn, const char *who)
{
    struct httpd_request *req = current(conn);
    if (!req || !who || !*who)
        return;
    /* Printable ASCII without spaces only: the access line stays one parseable line. */
    size_t i = 0;
    for (; who[i] && i < sizeof req->caller - 1; i++)
        req->caller[i] = isgraph((unsigned char)who[i]) && who[i] != '"' ? who[i] : '?';
    req->caller[i] = '\0';
}

void httpd_set_route_label(const struct mg_connection *conn, const char *pattern)
{
    struct httpd_request *req = current(conn);
    if (req && pattern)
        req->label = pattern;
}

struct httpd *httpd_new(const struct httpd_opts *opts, char *err, size_t errlen)
{
    struct httpd *h = calloc(1, sizeof *h);
    char listen[128], threads[16], request_timeout[24], keepalive_timeout[24];
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->metrics = opts->metrics;
    snprintf(listen, sizeof listen, "%s:%ld", opts->addr && *opts->addr ? opts->addr : "127.0.0.1",
             opts->port);
    /* civetweb gives each open connection a thread until it closes, idle or not: the thread
     * count, not the CPU, is what a few slow or idle clients exhaust. */
    snprintf(threads, sizeof threads, "%d", opts->threads > 0 ? opts->threads : 128);
    snprintf(request_timeout, sizeof request_timeout, "%ld",
             opts->request_timeout_ms > 0 ? opts->request_timeout_ms : 10000);
    snprintf(keepalive_timeout, sizeof keepalive_timeout, "%ld",
             opts->keepalive_timeout_ms > 0 ? opts->keepalive_timeout_ms : 5000);
    const char *options[] = {"listening_ports",
                             listen,
                             "num_threads",
                             threads,
                             "request_timeout_ms",
                             request_timeout,
                             "keep_alive_timeout_ms",
                             keepalive_timeout,
                             "enable_keep_alive",
                             opts->keepalive_timeout_ms >= 0 ? "yes" : "no",
                             "listen_backlog",
                             "1024",
                             "connection_queue",
                             "256",
                             "max_request_size",
                             "65536",
                             NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = civet_log;
    cb.http_error = civet_http_error;
    mg_init_library(0);
    h->ctx = mg_start(&cb, h, options);
    if (!h->ctx) {
        snprintf(err, errlen, "cannot listen on %s (port in use or bad address)", listen);
        free(h);
        return NULL;
    }
    struct mg_server_port ports[4];
    int n = mg_get_server_ports(h->ctx, 4, ports);
    h->port = n > 0 ? ports[0].port : opts->port;
    return h;
}

static int add_route(struct httpd *h, const char *uri, const char *name, mg_request_handler handler,
                     void *ctx, bool quiet)
{
    if (h->nroutes >= HTTPD_MAX_ROUTES)
        return -1;
    struct httpd_route *r = &h->routes[h->nroutes++];
    r->h = h;
    snprintf(r->name, sizeof r->name, "%s", name ? name : uri);
    r->handler = handler;
    r->ctx = ctx;
    r->quiet = quiet;
    mg_set_request_handler(h->ctx, uri, route_dispatch, r);
    return 0;
}

int httpd_route(struct httpd *h, const char *uri, const char *name, mg_request_handler handler,
                void *ctx)
{
    return add_route(h, uri, name, handler, ctx, false);
}

int httpd_route_quiet(struct httpd *h, const char *uri, const char *name,
                      mg_request_handler handler, void *ctx)
{
    return add_route(h, uri, name, handler, ctx, true);
}

long httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_destroy(struct httpd *h)
{
    if (!h)
        return;
    if (h->ctx)
        mg_stop(h->ctx);
    free(h);
}

static const char *status_text(int status)
{
    const char *t = mg_get_response_code_text(NULL, status);
    return t ? t : "";
}

int httpd_reply(struct mg_connection *conn, int status, const char *content_type, const void *body,
                size_t len, const char *extra_headers)
{
    struct buf b;
    char id_header[HTTPD_REQUEST_ID_MAX + 32] = "";
    const char *id = httpd_current_request_id(conn);
    if (id)
        snprintf(id_header, sizeof id_header, "%s: %s\r\n", HTTPD_REQUEST_HEADER, id);
    /* Headers and body in one write: two small writes on a keep-alive connection meet Nagle's
     * algorithm and the client's delayed ACK (about 40 ms per response). */
    buf_init(&b, len + 4096);
    if (buf_appendf(&b,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s%s\r\n",
                    status, status_text(status), content_type, len, id_header,
                    extra_headers ? extra_headers : "") == 0 &&
        buf_append(&b, body, len) == 0) {
        mg_write(conn, b.data, b.len);
    } else {
        /* Out of memory for the copy: send in two writes rather than not at all. */
        mg_printf(conn,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s%s\r\n",
                  status, status_text(status), content_type, len, id_header,
                  extra_headers ? extra_headers : "");
        if (len)
            mg_write(conn, body, len);
    }
    buf_free(&b);
    return status;
}

int httpd_reply_json(struct mg_connection *conn, int status, const json_t *body)
{
    char *s = pjson_dump_compact(body);
    if (!s)
        return httpd_reply(conn, 500, "application/json",
                           "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}", 58,
                           NULL);
    int rc = httpd_reply(conn, status, "application/json", s, strlen(s), NULL);
    free(s);
    return rc;
}

int httpd_append_error_members(struct buf *out, const char *code, const char *message,
                               const char *request_id)
{
    if (buf_appends(out, "\"code\":") || buf_append_json_string(out, code) ||
        buf_appends(out, ",\"message\":") || buf_append_json_string(out, message))
        return -1;
    if (request_id &&
        (buf_appends(out, ",\"request_id\":") || buf_append_json_string(out, request_id)))
        return -1;
    return 0;
}

int httpd_reply_error(struct mg_connection *conn, int status, const char *code, const char *message)
{
    return httpd_reply_error_headers(conn, status, NULL, code, message);
}

int httpd_reply_error_headers(struct mg_connection *conn, int status, const char *extra_headers,
                              const char *code, const char *message)
{
    struct buf b;
    int rc;
    buf_init(&b, 8192);
    if (buf_appends(&b, "{\"error\":{") ||
        httpd_append_error_members(&b, code, message, httpd_current_request_id(conn)) ||
        buf_appends(&b, "}}"))
        rc = httpd_reply(conn, 500, "application/json",
                         "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}", 58,
                         NULL);
    else
        rc = httpd_reply(conn, status, "application/json", b.data, b.len, extra_headers);
    buf_free(&b);
    return rc;
}

int httpd_reply_errorf(struct mg_connection *conn, int status, const char *code, const char *fmt,
                       ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return httpd_reply_error(conn, status, code, msg);
}

int httpd_read_body(struct mg_connection *conn, struct buf *out, size_t max)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char chunk[8192];
    if (ri->content_length > 0 && (unsigned long long)ri->content_length > max)
        return -1;
    for (;;) {
        int n = mg_read(conn, chunk, sizeof chunk);
        if (n < 0)
            return -2;
        if (n == 0)
            break;
        if (out->len + (size_t)n > max)
            return -1;
        if (buf_append(out, chunk, (size_t)n))
            return -2;
    }
    if (!out->data && buf_append(out, "", 0))
        return -2;
    return 0;
}

int httpd_param(const char *query, const char *name, char *out, size_t outlen)
{
    if (!query)
        return 1;
    int n = mg_get_var(query, strlen(query), name, out, outlen);
    if (n == -1)
        return 1;
    if (n < 0)
        return -1;
    return 0;
}

int httpd_query_param(const struct mg_request_info *ri, const char *name, char *out, size_t outlen)
{
    out[0] = '\0';
    int r = httpd_param(ri->query_string, name, out, outlen);
    if (r == 1)
        out[0] = '\0';
    return r < 0 ? -1 : 0;
}

int httpd_request_id(const char *incoming, char *out)
{
    size_t n = incoming ? strlen(incoming) : 0;
    bool ok = n > 0 && n <= HTTPD_REQUEST_ID_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = isgraph((unsigned char)incoming[i]) && incoming[i] != '"' && incoming[i] != '\\';
    if (ok) {
        memcpy(out, incoming, n + 1);
        return 1;
    }
    unsigned char raw[16];
    if (crypto_random(raw, sizeof raw) != 0) {
        /* No randomness: still unique enough within this process to match logs. */
        static unsigned long counter;
        snprintf(out, HTTPD_REQUEST_ID_MAX + 1, "local-%lx-%lx", (unsigned long)time(NULL),
                 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
        return 0;
    }
    crypto_hex(raw, sizeof raw, out);
    return 0;
}
