/* router: the request core of a service's HTTP routes, on top of httpd. A service declares
 * one table of routes — method, path pattern, handler, the callers allowed, the body limit —
 * and the router does what every route needs before its handler runs:
 *
 *   1. on an internal router (one made with callers): identify the calling service by its
 *      secret (lib/callers.h); an unknown caller gets 401 before anything else, so it learns
 *      nothing about the routes;
 *   2. match the path against the patterns: no pattern matches, 404 not_found; a pattern
 *      matches but not for this method, 405 method_not_allowed with an Allow header;
 *   3. on an internal router: a known caller not in the route's set gets 403 forbidden_caller;
 *   4. read the body up to the route's limit: past it, 413 body_too_large.
 *
 * Patterns are absolute paths whose segments are literals or "{name}" (one non-empty
 * segment, e.g. "/internal/tenants/{tenant}/sync"); the path must match segment by segment,
 * a trailing "/" included. Error replies have the one shape of httpd_reply_error, with the
 * request id httpd keeps; the metrics and the access log name the route by its pattern. */
#ifndef PANEL_ROUTER_H
#define PANEL_ROUTER_H

#include "buf.h"
#include "callers.h"
#include "db.h"
#include "httpd.h"

#include <stddef.h>

#define ROUTER_MAX_PARAMS 4    /* {name} segments per pattern */
#define ROUTER_MAX_SEGS   12   /* segments per pattern; a longer path matches nothing */
#define ROUTER_PATH_MAX   1024 /* a longer path matches nothing (404) */
#define ROUTER_ALLOW_MAX  64   /* room for an Allow header value */

/* One request, as the handler sees it. Everything is borrowed for the handler's call. */
struct router_req {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    const char *method;
    const char *pattern;                   /* the matched route's pattern */
    const char *query;                     /* raw query string or NULL */
    const char *params[ROUTER_MAX_PARAMS]; /* the {name} segments, in pattern order */
    int nparams;
    struct buf body;            /* the body, read up to the route's body_max (empty when 0) */
    enum caller_id caller;      /* the calling service; CALLER_NONE on a public router */
    const char *request_id;     /* as in the X-Request-Id reply header and the logs */
    void *ctx;                  /* the service's context given to router_new */
    char path[ROUTER_PATH_MAX]; /* private: the split path params point into */
};

/* A handler replies with httpd_reply* and returns the status it sent. */
typedef int (*router_fn)(struct router_req *q);

struct router_route {
    const char *method;  /* "GET", "POST", "PUT", ... */
    const char *pattern; /* see above; borrowed for the router's life */
    router_fn fn;
    unsigned callers; /* internal router: the callers allowed (enum caller_id bits); public: 0 */
    size_t body_max;  /* the body is read up to this before fn; 0 = not read */
};

struct router;

/* A router over routes (borrowed: a static table). callers (borrowed) makes it internal:
 * every request needs a known caller's secret and each route names its callers; NULL makes
 * it public (browser routes; their callers must be 0). ctx (borrowed) is handed to every
 * handler. Returns NULL with a message in err for a malformed table. Caller frees with
 * router_destroy after the server stopped. */
struct router *router_new(const struct router_route *routes, size_t nroutes,
                          const struct callers *callers, void *ctx, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void router_destroy(struct router *rt);

/* Serve every path under prefix (an httpd_route prefix, e.g. "/internal") with rt; label
 * names requests that match no route in the metrics. 0 or -1. */
int router_mount(struct router *rt, struct httpd *h, const char *prefix, const char *label)
    __attribute__((warn_unused_result));

enum router_match {
    ROUTER_MATCHED,
    ROUTER_NO_ROUTE,  /* 404 */
    ROUTER_NO_METHOD, /* 405; allow holds the methods the path has */
};

/* Match method and path against rt's table: on ROUTER_MATCHED, q->pattern, q->params and
 * q->nparams are set (pointing into q->path) and *route is the route; on ROUTER_NO_METHOD,
 * allow gets the path's methods ("GET, POST"). Exposed for the unit tests. */
enum router_match router_match(const struct router *rt, const char *method, const char *path,
                               struct router_req *q, const struct router_route **route,
                               char allow[ROUTER_ALLOW_MAX]);

/* The segment a "{name}" of the matched pattern captured, or NULL. */
const char *router_param(const struct router_req *q, const char *name);

/* Borrow a connection of pool for this request, waiting up to wait_ms: the one way a handler
 * gets its database. NULL after a 503 unavailable reply (logged with the route), *status
 * then holding the status sent. Give the connection back with db_put. */
struct db_conn *router_db(struct router_req *q, struct db_pool *pool, long wait_ms, int *status)
    __attribute__((warn_unused_result));

#endif
