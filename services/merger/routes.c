#include "routes.h"
#include "apply.h"
#include "callers.h"
#include "db.h"
#include "json.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

#define ROUTES_MAX_BODY 4096

/* The longest tenant id and run / case id a route accepts (longer ones are no such route). */
#define TENANT_MAX 79
#define ID_MAX     39

/* POST /internal/tenants/{tenant}/runs/{run}/approve|reject {"admin"}
 * POST /internal/tenants/{tenant}/match-cases/{case}/resolve {"person_id"|null, "admin"}
 * Reads the body's members; 0, or the status of the error reply sent. */
static int read_decision(struct router_req *q, json_t **req, const char **admin,
                         const char **person_id)
{
    char err[512];
    *admin = *person_id = NULL;
    if (q->body.len > 0) {
        *req = pjson_parse(q->body.data, q->body.len, err, sizeof err);
        if (!*req || pjson_get_str(*req, "admin", admin) == PJSON_WRONG_TYPE ||
            pjson_get_str(*req, "person_id", person_id) == PJSON_WRONG_TYPE)
            return httpd_reply_error(q->conn, 400, "bad_request",
                                     "body must be {\"admin\":\"...\"} (and \"person_id\")");
    }
    if (!*admin || !**admin || strlen(*admin) > 320)
        return httpd_reply_error(q->conn, 400, "bad_request", "admin is required");
    return 0;
}

/* The tenant and id of the path, within their limits; NULL ids are no such route. */
static int path_ids(struct router_req *q, const char *id_name, const char **tenant, const char **id)
{
    *tenant = router_param(q, "tenant");
    *id = router_param(q, id_name);
    if (!*tenant || !*id || strlen(*tenant) > TENANT_MAX || strlen(*id) > ID_MAX)
        return httpd_reply_error(q->conn, 404, "not_found", "no such route");
    return 0;
}

/* A decision route's request: the path's tenant and id, the body's admin and person_id
 * (borrowed from the parsed body). */
struct decision_req {
    const char *tenant, *id, *admin, *person_id;
};

/* What a decision route replies when its apply_* call does not succeed, and the words its
 * error log starts with. */
struct decision_replies {
    const char *log_what;                 /* "<log_what> <id>: <reason>" */
    const char *not_found;                /* 404 not_found */
    const char *not_held_code, *not_held; /* 409 */
    const char *failed;                   /* 500 internal */
};

/* Calls the apply_* function of a route on pg; on DECIDE_OK, *reply is the 200 body (new
 * reference) and the success is logged. */
typedef enum apply_decide_result (*decision_apply_fn)(const struct decision_req *d, PGconn *pg,
                                                      void *arg, json_t **reply, char *err,
                                                      size_t errlen);

/* The steps every decision route takes: the path's ids (the id named id_name), the body, a
 * borrowed database connection, the apply_* call and its reply. The status of the reply. */
static int decision_route(struct router_req *q, const char *id_name,
                          const struct decision_replies *replies, decision_apply_fn apply,
                          void *arg)
{
    struct routes_ctx *ctx = q->ctx;
    struct mg_connection *conn = q->conn;
    struct decision_req d;
    char err[512];
    json_t *req = NULL, *reply = NULL;
    struct db_conn *db = NULL;
    int status;
    if ((status = path_ids(q, id_name, &d.tenant, &d.id)) ||
        (status = read_decision(q, &req, &d.admin, &d.person_id)))
        goto out;
    if (!(db = router_db(q, ctx->db, ROUTES_DB_WAIT_MS, &status)))
        goto out;
    enum apply_decide_result res = apply(&d, db_pg(db), arg, &reply, err, sizeof err);
    if (res == DECIDE_NOT_FOUND)
        status = httpd_reply_error(conn, 404, "not_found", replies->not_found);
    else if (res == DECIDE_NOT_HELD)
        status = httpd_reply_error(conn, 409, replies->not_held_code, replies->not_held);
    else if (res != DECIDE_OK) {
        log_error("%s %s: %s", replies->log_what, d.id, err);
        status = httpd_reply_error(conn, 500, "internal", replies->failed);
    } else
        status = httpd_reply_json(conn, 200, reply);
out:
    db_put(db);
    json_decref(req);
    json_decref(reply);
    return status;
}

static enum apply_decide_result resolve_apply(const struct decision_req *d, PGconn *pg, void *arg,
                                              json_t **reply, char *err, size_t errlen)
{
    (void)arg;
    char resolved[40] = "", warning[400];
    enum apply_decide_result res =
        apply_resolve_case(pg, d->tenant, d->id, d->person_id, d->admin, resolved, sizeof resolved,
                           warning, sizeof warning, err, errlen);
    if (res == DECIDE_OK) {
        *reply = json_pack("{s:s,s:s,s:s}", "case_id", d->id, "status", "resolved", "person_id",
                           resolved);
        if (*reply && *warning)
            json_object_set_new(*reply, "warning", json_string(warning));
        log_info("match case %s of %s resolved by %s -> %s", d->id, d->tenant, d->admin, resolved);
    }
    return res;
}

static int handle_resolve(struct router_req *q)
{
    static const struct decision_replies replies = {
        .log_what = "resolve match case",
        .not_found = "no such match case or person",
        .not_held_code = "conflict",
        .not_held = "the case is not open, or its e-mail belongs to another "
                    "Person (link it to that Person instead)",
        .failed = "could not resolve the case",
    };
    return decision_route(q, "case", &replies, resolve_apply, NULL);
}

static enum apply_decide_result decide_apply(const struct decision_req *d, PGconn *pg, void *arg,
                                             json_t **reply, char *err, size_t errlen)
{
    enum apply_decision decision = *(const enum apply_decision *)arg;
    const char *action = decision == APPLY_APPROVE ? "approve" : "reject";
    long removed = 0;
    enum apply_decide_result res =
        apply_decide(pg, d->tenant, d->id, d->admin, decision, &removed, err, errlen);
    if (res == DECIDE_OK) {
        *reply = json_pack("{s:s,s:s,s:I}", "run_id", d->id, "status",
                           decision == APPLY_APPROVE ? "approved" : "rejected", "removed",
                           (json_int_t)removed);
        log_info("run %s of %s %s by %s (%ld removed)", d->id, d->tenant, action, d->admin,
                 removed);
    }
    return res;
}

static int decide(struct router_req *q, enum apply_decision decision)
{
    static const struct decision_replies approve = {
        .log_what = "approve run",
        .not_found = "no such run",
        .not_held_code = "not_held",
        .not_held = "the run is not held",
        .failed = "could not record the decision",
    };
    static const struct decision_replies reject = {
        .log_what = "reject run",
        .not_found = "no such run",
        .not_held_code = "not_held",
        .not_held = "the run is not held",
        .failed = "could not record the decision",
    };
    return decision_route(q, "run", decision == APPLY_APPROVE ? &approve : &reject, decide_apply,
                          &decision);
}

static int handle_approve(struct router_req *q)
{
    return decide(q, APPLY_APPROVE);
}

static int handle_reject(struct router_req *q)
{
    return decide(q, APPLY_REJECT);
}

/* Who may call each internal route: the one table (docs/security.md shows the same). */
static const struct router_route internal_routes[] = {
    {"POST", "/internal/tenants/{tenant}/runs/{run}/approve", handle_approve, CALLER_API,
     ROUTES_MAX_BODY},
    {"POST", "/internal/tenants/{tenant}/runs/{run}/reject", handle_reject, CALLER_API,
     ROUTES_MAX_BODY},
    {"POST", "/internal/tenants/{tenant}/match-cases/{case}/resolve", handle_resolve, CALLER_API,
     ROUTES_MAX_BODY},
};

int routes_register(struct httpd *h, struct routes_ctx *ctx)
{
    char err[256];
    ctx->router = router_new(internal_routes, sizeof internal_routes / sizeof internal_routes[0],
                             ctx->callers, ctx, err, sizeof err);
    if (!ctx->router) {
        log_error("routes: %s", err);
        return -1;
    }
    return router_mount(ctx->router, h, "/internal/tenants/", "/internal/tenants/*");
}

void routes_free(struct routes_ctx *ctx)
{
    router_destroy(ctx->router);
    ctx->router = NULL;
}
