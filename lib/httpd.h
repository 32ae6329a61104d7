/* httpd: a civetweb server with per-route metrics and small reply helpers. civetweb's own
 * log messages go through log.h. Handlers are civetweb's: they return the HTTP status they
 * sent (the reply helpers return it for you). */
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
long httpd_port(const struct httpd *h);
void httpd_destroy(struct httpd *h);

/* Reply helpers; each returns the status code sent. extra_headers: NULL or "Name: v\r\n"... */
int httpd_reply(struct mg_connection *conn, int status, const char *content_type, const void *body,
                size_t len, const char *extra_headers);
int httpd_reply_json(struct mg_connection *conn, int status, const json_t *body);
/* Body {"error":{"code":code,"message":message}}. */
int httpd_reply_error(struct mg_connection *conn, int status, const char *code,
                      const char *message);
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

#endif
