#include "routes.h"
#include "apply.h"
#include "callers.h"
#include "db.h"
#include "json.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

#define ROUTES_MAX_BODY 4096

/* Who may call each internal route: the one table (docs/security.md shows the same). All
 * are POST /internal/tenants/{t}/{kind}/{id}/{action}. */
static const struct internal_route {
    const char *kind;
    const char *action;
    unsigned callers;
} internal_routes[] = {
    {"runs", "approve", CALLER_API},
    {"runs", "reject", CALLER_API},
    {"match-cases", "resolve", CALLER_API},
};

static const struct internal_route *find_route(const char *kind, const char *action)
{
    for (size_t i = 0; i < sizeof internal_routes / sizeof internal_routes[0]; i++)
        if (strcmp(internal_routes[i].kind, kind) == 0 &&
            strcmp(internal_routes[i].action, action) == 0)
            return &internal_routes[i];
    return NULL;
}

/* POST /internal/tenants/{t}/runs/{run}/approve|reject {"admin"}
 * POST /internal/tenants/{t}/match-cases/{case}/resolve {"person_id"|null, "admin"} */
static int handle(struct mg_connection *conn, void *cbdata)
{
    struct routes_ctx *ctx = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char tenant[80], run[40], action[16], err[512];
    struct buf body;
    json_t *req = NULL;
    struct db_conn *db = NULL;
    int status;
    buf_init(&body, ROUTES_MAX_BODY);
    /* Unknown callers learn nothing about the routes: 401 before any 404. */
    enum caller_id who = callers_identify(ctx->callers, mg_get_header(conn, "Authorization"));
    if (who == CALLER_NONE) {
        status = callers_reply_refused(conn, CALLERS_UNKNOWN, who);
        goto out;
    }
    int used = 0, is_case = 0;
    char kind[16];
    const struct internal_route *route = NULL;
    if (sscanf(ri->local_uri, "/internal/tenants/%79[^/]/%15[a-z-]/%39[^/]/%15[a-z]%n", tenant,
               kind, run, action, &used) != 4 ||
        ri->local_uri[used] != '\0' || !(route = find_route(kind, action))) {
        status = httpd_reply_error(conn, 404, "not_found", "no such route");
        goto out;
    }
    if (!(route->callers & (unsigned)who)) {
        status = callers_reply_refused(conn, CALLERS_FORBIDDEN, who);
        goto out;
    }
    is_case = strcmp(kind, "match-cases") == 0;
    if (strcmp(ri->request_method, "POST") != 0) {
        status = httpd_reply_error(conn, 405, "method_not_allowed", "use POST");
        goto out;
    }
    int br = httpd_read_body(conn, &body, ROUTES_MAX_BODY);
    if (br) {
        status = br == -1 ? httpd_reply_error(conn, 413, "too_large", "body too large")
                          : httpd_reply_error(conn, 400, "bad_request", "cannot read body");
        goto out;
    }
    const char *admin = NULL, *person_id = NULL;
    if (body.len > 0) {
        req = json_parse(body.data, body.len, err, sizeof err);
        if (!req || json_get_str(req, "admin", &admin) == JSON_GET_WRONG_TYPE ||
            json_get_str(req, "person_id", &person_id) == JSON_GET_WRONG_TYPE) {
            status = httpd_reply_error(conn, 400, "bad_request",
                                       "body must be {\"admin\":\"...\"} (and \"person_id\")");
            goto out;
        }
    }
    if (!admin || !*admin || strlen(admin) > 320) {
        status = httpd_reply_error(conn, 400, "bad_request", "admin is required");
        goto out;
    }
    if (db_get(ctx->db, ROUTES_DB_WAIT_MS, &db, err, sizeof err) != DB_OK) {
        log_warn("%s: %s", ri->local_uri, err);
        status = httpd_reply_error(conn, 503, "unavailable", "database unavailable");
        goto out;
    }
    if (is_case) {
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
            json_t *out = json_pack("{s:s,s:s,s:s}", "case_id", run, "status", "resolved",
                                    "person_id", resolved);
            log_info("match case %s of %s resolved by %s -> %s", run, tenant, admin, resolved);
            status = httpd_reply_json(conn, 200, out);
            json_decref(out);
        }
        goto out;
    }
    long removed = 0;
    enum apply_decide_result d = apply_decide(
        db_pg(db), tenant, run, admin,
        strcmp(action, "approve") == 0 ? APPLY_APPROVE : APPLY_REJECT, &removed, err, sizeof err);
    if (d == DECIDE_NOT_FOUND)
        status = httpd_reply_error(conn, 404, "not_found", "no such run");
    else if (d == DECIDE_NOT_HELD)
        status = httpd_reply_error(conn, 409, "not_held", "the run is not held");
    else if (d != DECIDE_OK) {
        log_error("%s run %s: %s", action, run, err);
        status = httpd_reply_error(conn, 500, "internal", "could not record the decision");
    } else {
        json_t *out = json_pack("{s:s,s:s,s:I}", "run_id", run, "status",
                                strcmp(action, "approve") == 0 ? "approved" : "rejected", "removed",
                                (json_int_t)removed);
        log_info("run %s of %s %s by %s (%ld removed)", run, tenant, action, admin, removed);
        status = httpd_reply_json(conn, 200, out);
        json_decref(out);
    }
out:
    db_put(db);
    json_decref(req);
    buf_free(&body);
    return status;
}

int routes_register(struct httpd *h, struct routes_ctx *ctx)
{
    return httpd_route(h, "/internal/tenants/",
                       "/internal/tenants/{t}/{runs|match-cases}/{id}/{action}", handle, ctx);
}
