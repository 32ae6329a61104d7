/* rest: what every /v1 handler shares — authentication, the tenant-scoped database
 * connection of the request, the route (main.c's table on lib/router: 404, and 405 with
 * Allow), strict JSON bodies, the one error shape, keyset pages, Idempotency-Key replay.
 * Handlers never write to the connection: they fill r->status and r->out and rest_serve
 * sends it. */
#ifndef API_REST_H
#define API_REST_H

#include "auth_keys.h"
#include "buf.h"
#include "db.h"
#include "ratelimit.h"
#include "httpd.h"
#include "params.h"
#include "router.h"

#include <civetweb.h>
#include <jansson.h>
#include <stdbool.h>

#define REST_MAX_BODY   (256 * 1024) /* larger bodies get 413 */
#define REST_DB_WAIT_MS 5000         /* no pooled connection free within this: 503 */

struct api {
    struct db_pool *db;
    struct router *router;       /* the /v1 routes; its handlers take a request's route */
    struct ratelimit *ratelimit; /* requests per caller; NULL = no limit */
    const char *auth_url;        /* borrowed config */
    const char *auth_public_url; /* where browsers reach auth's /signin routes */
    const char *merger_url;
    const char *service_secret;
    long upstream_timeout_ms;
    long session_idle_minutes;
    bool cookie_secure;    /* Secure on the cookies the api sets (false: plain-http development) */
    bool require_if_match; /* PATCH/DELETE of a versioned resource without If-Match: 428 */
};

struct api_req {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    struct api *api;
    struct db_conn *db;                        /* borrowed from the pool for this request */
    struct principal principal;                /* who is asking: tenant scopes every query, actor is
                                                  recorded as who changed what */
    char session_id[SESSION_TOKEN_MAX];        /* the session cookie when principal is a session */
    char headers[256];                         /* extra response header lines a handler sets */
    char request_id[HTTPD_REQUEST_ID_MAX + 1]; /* X-Request-Id: in every reply and error body */
    const char *method;
    struct router_req route; /* the matched route: its pattern and {name} segments */
    const char *query;       /* raw query string or NULL */
    struct buf body;         /* request body (POST/PUT/PATCH) */
    int status;              /* response status */
    struct buf out;          /* response body (JSON) */
    bool replied;            /* the handler wrote the whole response itself (a stream) */
};

/* The civetweb handler of every /v1 path; cbdata is the struct api. The route's handler (a
 * router_fn) is called with r->route after authentication, the rate limit, the body and the
 * Idempotency-Key claim; it finds its request with rest_req and returns r->status. */
int rest_serve(struct mg_connection *conn, void *cbdata);
/* The request whose route q is (q is borrowed from it). */
struct api_req *rest_req(struct router_req *q);
/* The "{name}" segment of the request's route (see router_param). */
const char *rest_param(struct api_req *r, const char *name);
/* The same for an id that must be a UUID: NULL after a 404 when it is not one. */
const char *rest_uuid_param(struct api_req *r, const char *name);

/* Fill the error reply {"error":{"code","message"}}. */
void rest_error(struct api_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void rest_not_found(struct api_req *r);
/* Add one response header line ("Name: value", without CRLF) to r->headers. */
void rest_add_header(struct api_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Optimistic concurrency for a resource whose current version the handler holds (locked):
 * 0 when the request may go on; -1 with 412 precondition_failed when If-Match names no
 * current ETag, or 428 precondition_required when If-Match is absent on a PATCH or DELETE
 * and the configuration requires it. The ETag of version v is "\"v\"". */
int rest_check_if_match(struct api_req *r, const char *version) __attribute__((warn_unused_result));
/* Map a failed statement to a reply: constraint and data errors are the client's (409/400),
 * everything else is logged and answered 503/500. */
void rest_db_error(struct api_req *r, PGresult *res);
/* Reply with a JSON text owned by the caller. */
void rest_reply_text(struct api_req *r, int status, const char *json);
/* Reply with body (borrowed) as compact JSON; NULL (a failed json_pack) is a 500. */
void rest_reply_json(struct api_req *r, int status, const json_t *body);
/* Reply 200 {"items": items} around a JSON array text (borrowed, e.g. a json_agg). */
void rest_reply_items(struct api_req *r, const char *items);
/* 0 when the caller (key or session) has the admin role; otherwise fills a 403 and returns
 * -1. Handlers call it before reading anything else of the request. */
int rest_require_admin(struct api_req *r) __attribute__((warn_unused_result));
/* Reject a query string with unknown parameters (400). 0 or -1 (reply filled). */
int rest_check_query(struct api_req *r, const char *const *allowed)
    __attribute__((warn_unused_result));
/* Parse the body as a JSON object whose members are all in allowed (NULL = any). New
 * reference or NULL with the reply filled (400/413). An empty body gives {} when
 * empty_ok. */
json_t *rest_json_body(struct api_req *r, const char *const *allowed, bool empty_ok);
/* Run a statement; on failure fills the reply via rest_db_error and returns NULL. */
PGresult *rest_exec(struct api_req *r, const struct db_stmt *st, int n, const char *const *p);
/* A page: res rows are (json text, key1..keyN). At most limit rows are shown; if there is
 * one more, next_cursor encodes the keys of the last shown row for scope. */
void rest_reply_page(struct api_req *r, PGresult *res, long limit, const char *scope, int nkeys);
/* Reply with column 0 of row 0 (a JSON text), or 404 when there is no row. */
void rest_reply_row(struct api_req *r, PGresult *res, int status);
/* The same for a versioned resource: column 1 is its version, sent as the ETag header. */
void rest_reply_versioned_row(struct api_req *r, PGresult *res, int status);
/* Validate and decode ?limit= and ?cursor= for scope. 0 or -1 (reply filled). has_cursor
 * tells whether a cursor was given; keys are filled then. */
int rest_page_params(struct api_req *r, const char *scope, int nkeys, long *limit, bool *has_cursor,
                     char keys[][PARAMS_CURSOR_MAX]) __attribute__((warn_unused_result));
/* Run BEGIN / COMMIT / ROLLBACK on the request's connection. 0, or -1 with the reply
 * filled. */
int rest_tx(struct api_req *r, const char *sql) __attribute__((warn_unused_result));

/* Typed reads of a JSON body member with a reply on error (400 for a wrong type or a value
 * too long; UTF-8 is already checked by the parser). Each returns 0 set, 1 absent, 2 null,
 * -1 error (reply filled). */
int rest_field_str(struct api_req *r, json_t *body, const char *name, size_t maxlen,
                   const char **out) __attribute__((warn_unused_result));
int rest_field_bool(struct api_req *r, json_t *body, const char *name, bool *out)
    __attribute__((warn_unused_result));
/* A date YYYY-MM-DD or an RFC 3339 timestamp, depending on timestamp. */
int rest_field_time(struct api_req *r, json_t *body, const char *name, bool timestamp,
                    const char **out) __attribute__((warn_unused_result));

#endif
