/* httpd: a civetweb server with per-route metrics and small reply helpers. civetweb's own
 * log messages go through log.h. Handlers are civetweb's: they return the HTTP status they
 * sent (the reply helpers return it for you).
 *
 * Around every route's handler httpd keeps the request's X-Request-Id (the client's when it
 * is valid, else a new one): every reply sent with httpd_reply* carries it as a header, every
 * error body as "request_id", and every log line the serving thread writes meanwhile as
 * "request_id". After the handler it writes one access-log line: method, route, status,
 * duration, caller (see httpd_set_caller). Routes with path patterns, caller checks and body
 * limits are lib/router.h, built on this. */
#ifndef PANEL_HTTPD_H
#define PANEL_HTTPD_H

#include "buf.h"
#include "metrics.h"

#include <civetweb.h>
#include <jansson.h>
#include <stddef.h>

struct httpd;

struct httpd_opts {
    const char *addr;          /* listen address, e.g. "127.0.0.1" or "0.0.0.0" */
    long port;                 /* 0 = any free port (see httpd_port) */
    int threads;               /* worker threads, one per open connection; 0 = 128 */
    long request_timeout_ms;   /* a request's headers and body must arrive within; 0 = 10 s */
    long keepalive_timeout_ms; /* idle keep-alive connections close after; 0 = 5 s; <0 = none */
    struct metrics *metrics;   /* borrowed; may be NULL */
};

/* Start listening. Returns NULL with a message in err. */
struct httpd *httpd_new(const struct httpd_opts *opts, char *err, size_t errlen);
/* Route exact URIs or prefixes ("/v1/people" also serves "/v1/people/..."). name labels
 * the route in metrics. ctx is borrowed. Register before serving traffic. */
int httpd_route(struct httpd *h, const char *uri, const char *name, mg_request_handler handler,
                void *ctx) __attribute__((warn_unused_result));
/* The same for probes (/healthz, /readyz, /metrics): their access-log line is at debug level,
 * so that an orchestrator's polling does not fill the log. */
int httpd_route_quiet(struct httpd *h, const char *uri, const char *name,
                      mg_request_handler handler, void *ctx) __attribute__((warn_unused_result));
long httpd_port(const struct httpd *h);
void httpd_destroy(struct httpd *h);

/* Reply helpers; each returns the status code sent. extra_headers: NULL or "Name: v\r\n"... */
int httpd_reply(struct mg_connection *conn, int status, const char *content_type, const void *body,
                size_t len, const char *extra_headers);
int httpd_reply_json(struct mg_connection *conn, int status, const json_t *body);
/* Body {"error":{"code":code,"message":message,"request_id":id}} (the one error shape of
 * every service; request_id is left out only outside a route's handler). */
int httpd_reply_error(struct mg_connection *conn, int status, const char *code,
                      const char *message);
/* The same with extra header lines ("Name: v\r\n"..., or NULL), e.g. Allow on a 405. */
int httpd_reply_error_headers(struct mg_connection *conn, int status, const char *extra_headers,
                              const char *code, const char *message);
/* The same with a printf-style message (cut at 512 bytes). */
int httpd_reply_errorf(struct mg_connection *conn, int status, const char *code, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
/* Append the members of an error object, "code":..,"message":..,"request_id":.. (the last
 * only when request_id is not NULL), for a service that builds its error bodies itself.
 * 0 or -1 (out of room). */
int httpd_append_error_members(struct buf *out, const char *code, const char *message,
                               const char *request_id) __attribute__((warn_unused_result));
/* Read the request body into out (capped at max). 0; -1 too large (reply 413); -2 error. */
int httpd_read_body(struct mg_connection *conn, struct buf *out, size_t max)
    __attribute__((warn_unused_result));
/* Query/form parameter, URL-decoded into out. 0 found; 1 absent; -1 too long or invalid. */
int httpd_param(const char *query, const char *name, char *out, size_t outlen)
    __attribute__((warn_unused_result));
/* A parameter of the request's query string, URL-decoded into out; "" when it (or the query)
 * is absent. 0, or -1 when too long or invalid. */
int httpd_query_param(const struct mg_request_info *ri, const char *name, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* Request ids: the X-Request-Id a reply and the logs carry, so that what a client quotes can be
 * found. HTTPD_REQUEST_ID_MAX characters at most, without the NUL. */
#define HTTPD_REQUEST_HEADER "X-Request-Id"
#define HTTPD_REQUEST_ID_MAX 64
/* Into out (HTTPD_REQUEST_ID_MAX + 1 bytes): incoming (the request's header, may be NULL) when
 * it is 1 to HTTPD_REQUEST_ID_MAX printable ASCII characters other than space, '"' and '\\',
 * else a new random id of 32 hex characters. Returns 1 when incoming was kept, 0 when made. */
int httpd_request_id(const char *incoming, char *out);
/* The request id of the request being served on conn, or NULL outside a route's handler
 * (borrowed: valid until the handler returns). */
const char *httpd_current_request_id(const struct mg_connection *conn);
/* Name who is calling (a service, an API key...; no secret) for the access-log line. Copied;
 * at most 63 characters are kept. */
void httpd_set_caller(const struct mg_connection *conn, const char *who);
/* Label the request with the route pattern that served it, for the metrics and the access
 * log (instead of the name given to httpd_route). pattern is borrowed and must outlive the
 * server (a string constant or a route table's). */
void httpd_set_route_label(const struct mg_connection *conn, const char *pattern);

#endif
