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

static int handle_resolve(struct router_req *q)
{
    struct routes_ctx *ctx = q->ctx;
    struct mg_connection *conn = q->conn;
    const char *tenant, *run, *admin, *person_id;
    char err[512];
    json_t *req = NULL;
    struct db_conn *db = NULL;
    int status;
    if ((status = path_ids(q, "case", &tenant, &run)) ||
        (status = read_decision(q, &req, &admin, &person_id)))
        goto out;
    if (!(db = router_db(q, ctx->db, ROUTES_DB_WAIT_MS, &status)))
        goto out;
    char resolved[40] = "";
    enum apply_decide_result d = apply_resolve_case(db_pg(db), tenant, run, person_id, admin,
                                                    resolved, sizeof resolved, err, sizeof err);
    if (d == DECIDE_NOT_FOUND)
        status = httpd_reply_error(conn, 404, "not_found", "no such match case or person");
    else if (d == DECIDE_NOT_HELD)
        status = httpd_reply_error(conn, 409, "conflict",
                                   "the case is not open, or its e-mail belongs to another "
                                   "Person (link it to that Person instead)");
    else if (d != DECIDE_OK) {
        log_error("resolve match case %s: %s", run, err);
        status = httpd_reply_error(conn, 500, "internal", "could not resolve the case");
    } else {
        json_t *out =
            json_pack("{s:s,s:s,s:s}", "case_id", run, "status", "resolved", "person_id", resolved);
        log_info("match case %s of %s resolved by %s -> %s", run, tenant, admin, resolved);
        status = httpd_reply_json(conn, 200, out);
        json_decref(out);
    }
out:
    db_put(db);
    json_decref(req);
    return status;
}

static int decide(struct router_req *q, enum apply_decision decision)
{
    struct routes_ctx *ctx = q->ctx;
    struct mg_connection *conn = q->conn;
    const char *tenant, *run, *admin, *person_id;
    const char *action = decision == APPLY_APPROVE ? "approve" : "reject";
    char err[512];
    json_t *req = NULL;
    struct db_conn *db = NULL;
    int status;
    if ((status = path_ids(q, "run", &tenant, &run)) ||
        (status = read_decision(q, &req, &admin, &person_id)))
        goto out;
    if (!(db = router_db(q, ctx->db, ROUTES_DB_WAIT_MS, &status)))
        goto out;
    long removed = 0;
    enum apply_decide_result d =
        apply_decide(db_pg(db), tenant, run, admin, decision, &removed, err, sizeof err);
    if (d == DECIDE_NOT_FOUND)
        status = httpd_reply_error(conn, 404, "not_found", "no such run");
    else if (d == DECIDE_NOT_HELD)
        status = httpd_reply_error(conn, 409, "not_held", "the run is not held");
    else if (d != DECIDE_OK) {
        log_error("%s run %s: %s", action, run, err);
        status = httpd_reply_error(conn, 500, "internal", "could not record the decision");
    } else {
        json_t *out = json_pack("{s:s,s:s,s:I}", "run_id", run, "status",
                                decision == APPLY_APPROVE ? "approved" : "rejected", "removed",
                                (json_int_t)removed);
        log_info("run %s of %s %s by %s (%ld removed)", run, tenant, action, admin, removed);
        status = httpd_reply_json(conn, 200, out);
        json_decref(out);
    }
out:
    db_put(db);
    json_decref(req);
    return status;
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
