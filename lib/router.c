/* router: see router.h. */
#include "router.h"

#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct router {
    const struct router_route *routes; /* borrowed */
    size_t nroutes;
    const struct callers *callers; /* borrowed; NULL = public */
    void *ctx;
    char label[96];
};

static bool is_param(const char *seg, size_t len)
{
    return len >= 3 && seg[0] == '{' && seg[len - 1] == '}';
}

/* Check one pattern: absolute, non-empty segments, well-formed {name}s, within the limits. */
static int pattern_ok(const char *pattern, char *err, size_t errlen)
{
    int nsegs = 0, nparams = 0;
    if (!pattern || pattern[0] != '/' || strlen(pattern) >= ROUTER_PATH_MAX) {
        snprintf(err, errlen, "route pattern '%s' must be an absolute path",
                 pattern ? pattern : "(null)");
        return -1;
    }
    for (const char *p = pattern + 1;; p++) {
        size_t len = strcspn(p, "/");
        bool param = is_param(p, len);
        if (len == 0 && p[len] == '/') {
            snprintf(err, errlen, "route pattern '%s' has an empty segment", pattern);
            return -1;
        }
        if (!param && (memchr(p, '{', len) || memchr(p, '}', len))) {
            snprintf(err, errlen, "route pattern '%s': a parameter is a whole {segment}", pattern);
            return -1;
        }
        nsegs++;
        nparams += param;
        p += len;
        if (!*p)
            break;
    }
    if (nsegs > ROUTER_MAX_SEGS || nparams > ROUTER_MAX_PARAMS) {
        snprintf(err, errlen, "route pattern '%s' has more than %d segments or %d parameters",
                 pattern, ROUTER_MAX_SEGS, ROUTER_MAX_PARAMS);
        return -1;
    }
    return 0;
}

struct router *router_new(const struct router_route *routes, size_t nroutes,
                          const struct callers *callers, void *ctx, char *err, size_t errlen)
{
    for (size_t i = 0; i < nroutes; i++) {
        const struct router_route *r = &routes[i];
        if (pattern_ok(r->pattern, err, errlen))
            return NULL;
        if (!r->method || !*r->method || !r->fn) {
            snprintf(err, errlen, "route %s needs a method and a handler", r->pattern);
            return NULL;
        }
        /* An internal route nobody may call, or a public route that names callers, is a
         * table written for the other kind of router. */
        if (callers ? r->callers == 0 : r->callers != 0) {
            snprintf(err, errlen, "route %s %s: %s", r->method, r->pattern,
                     callers ? "an internal route must name its callers"
                             : "a public route has no callers");
            return NULL;
        }
    }
    struct router *rt = calloc(1, sizeof *rt);
    if (!rt) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rt->routes = routes;
    rt->nroutes = nroutes;
    rt->callers = callers;
    rt->ctx = ctx;
    return rt;
}

void router_destroy(struct router *rt)
{
    free(rt);
}

/* Split path (into q->path) at '/': segs[i] are its segments. -1 when it cannot match any
 * pattern (not absolute, too long, too many segments). */
static int split(struct router_req *q, const char *path, char *segs[ROUTER_MAX_SEGS], int *nsegs)
{
    size_t len = path ? strlen(path) : 0;
    if (len == 0 || path[0] != '/' || len >= sizeof q->path)
        return -1;
    memcpy(q->path, path + 1, len);
    *nsegs = 0;
    for (char *p = q->path;;) {
        if (*nsegs == ROUTER_MAX_SEGS)
            return -1;
        segs[(*nsegs)++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    return 0;
}

/* Does the pattern match the segments? Its {name}s' values go to params. */
static bool pattern_matches(const char *pattern, char *const *segs, int nsegs,
                            const char *params[ROUTER_MAX_PARAMS], int *nparams)
{
    int i = 0;
    *nparams = 0;
    for (const char *p = pattern + 1;; i++) {
        size_t len = strcspn(p, "/");
        if (i >= nsegs)
            return false;
        if (is_param(p, len)) {
            if (!*segs[i])
                return false;
            params[(*nparams)++] = segs[i];
        } else if (strlen(segs[i]) != len || memcmp(segs[i], p, len) != 0) {
            return false;
        }
        p += len;
        if (!*p++)
            break;
    }
    return i + 1 == nsegs;
}

static void allow_add(char allow[ROUTER_ALLOW_MAX], const char *method)
{
    /* Each method once, in table order. */
    size_t mlen = strlen(method);
    for (const char *p = allow; *p;) {
        size_t len = strcspn(p, ",");
        if (len == mlen && memcmp(p, method, mlen) == 0)
            return;
        p += len;
        p += strspn(p, ", ");
    }
    size_t used = strlen(allow);
    snprintf(allow + used, ROUTER_ALLOW_MAX - used, "%s%s", used ? ", " : "", method);
}

enum router_match router_match(const struct router *rt, const char *method, const char *path,
                               struct router_req *q, const struct router_route **route,
                               char allow[ROUTER_ALLOW_MAX])
{
    char *segs[ROUTER_MAX_SEGS];
    int nsegs = 0;
    bool path_known = false;
    allow[0] = '\0';
    *route = NULL;
    if (split(q, path, segs, &nsegs))
        return ROUTER_NO_ROUTE;
    for (size_t i = 0; i < rt->nroutes; i++) {
        const struct router_route *r = &rt->routes[i];
        const char *params[ROUTER_MAX_PARAMS];
        int nparams = 0;
        if (!pattern_matches(r->pattern, segs, nsegs, params, &nparams))
            continue;
        path_known = true;
        allow_add(allow, r->method);
        if (!*route && method && strcmp(r->method, method) == 0) {
            *route = r;
            q->pattern = r->pattern;
            q->nparams = nparams;
            memcpy(q->params, params, sizeof params);
        }
    }
    if (*route)
        return ROUTER_MATCHED;
    return path_known ? ROUTER_NO_METHOD : ROUTER_NO_ROUTE;
}

const char *router_param(const struct router_req *q, const char *name)
{
    size_t nlen = strlen(name);
    int k = 0;
    if (!q->pattern)
        return NULL;
    for (const char *p = q->pattern + 1;; p++) {
        size_t len = strcspn(p, "/");
        if (is_param(p, len)) {
            if (len - 2 == nlen && memcmp(p + 1, name, nlen) == 0)
                return k < q->nparams ? q->params[k] : NULL;
            k++;
        }
        p += len;
        if (!*p)
            return NULL;
    }
}

struct db_conn *router_db(struct router_req *q, struct db_pool *pool, long wait_ms, int *status)
{
    struct db_conn *db = NULL;
    char err[256];
    enum db_result got = db_get(pool, wait_ms, &db, err, sizeof err);
    if (got == DB_OK)
        return db;
    log_warn("%s %s: %s", q->method, q->pattern ? q->pattern : "", err);
    *status = httpd_reply_error(q->conn, 503, "unavailable",
                                got == DB_BUSY ? "the server is busy; try again"
                                               : "the database is unavailable; try again");
    return NULL;
}

/* The core: see the steps in router.h. */
static int router_serve(struct mg_connection *conn, void *cbdata)
{
    struct router *rt = cbdata;
    struct router_req q;
    const struct router_route *route = NULL;
    char allow[ROUTER_ALLOW_MAX], headers[ROUTER_ALLOW_MAX + 16], msg[160];
    int status;
    memset(&q, 0, sizeof q);
    q.conn = conn;
    q.ri = mg_get_request_info(conn);
    q.method = q.ri->request_method ? q.ri->request_method : "";
    q.query = q.ri->query_string;
    q.ctx = rt->ctx;
    q.request_id = httpd_current_request_id(conn);
    buf_init(&q.body, 0);

    enum router_match m = router_match(rt, q.method, q.ri->local_uri, &q, &route, allow);
    if (rt->callers) {
        q.caller = callers_identify(rt->callers, mg_get_header(conn, "Authorization"));
        if (q.caller == CALLER_NONE) {
            status = callers_reply_refused(conn, CALLERS_UNKNOWN, q.caller);
            goto out;
        }
        httpd_set_caller(conn, caller_name(q.caller));
    }
    if (m == ROUTER_NO_ROUTE) {
        status = httpd_reply_error(conn, 404, "not_found", "no such route");
        goto out;
    }
    if (m == ROUTER_NO_METHOD) {
        snprintf(headers, sizeof headers, "Allow: %s\r\n", allow);
        snprintf(msg, sizeof msg, "method %.20s is not allowed here (allowed: %s)", q.method,
                 allow);
        status = httpd_reply_error_headers(conn, 405, headers, "method_not_allowed", msg);
        goto out;
    }
    httpd_set_route_label(conn, route->pattern);
    if (rt->callers && !(route->callers & (unsigned)q.caller)) {
        status = callers_reply_refused(conn, CALLERS_FORBIDDEN, q.caller);
        goto out;
    }
    if (route->body_max > 0) {
        buf_init(&q.body, route->body_max);
        int b = httpd_read_body(conn, &q.body, route->body_max);
        if (b == -1) {
            /* The rest of the body is not read: the connection cannot be reused. */
            snprintf(msg, sizeof msg, "the body is larger than %zu bytes", route->body_max);
            status = httpd_reply_error_headers(conn, 413, "Connection: close\r\n", "body_too_large",
                                               msg);
            goto out;
        }
        if (b != 0) {
            status = httpd_reply_error(conn, 400, "bad_request", "cannot read the body");
            goto out;
        }
    }
    status = route->fn(&q);
out:
    buf_free(&q.body);
    return status;
}

int router_mount(struct router *rt, struct httpd *h, const char *prefix, const char *label)
{
    snprintf(rt->label, sizeof rt->label, "%s", label ? label : prefix);
    return httpd_route(h, prefix, rt->label, router_serve, rt);
}
