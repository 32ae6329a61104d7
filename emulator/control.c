#include "control.h"
#include "google_oauth.h"
#include "json.h"
#include "log.h"
#include "router.h"
#include "signin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTROL_BODY_MAX (1024 * 1024)

static int reply_err(struct mg_connection *conn, int status, const char *code, const char *msg)
{
    return httpd_reply_error(conn, status, code, msg);
}

/* Parse the body the router read (within CONTROL_BODY_MAX) as a JSON object; on failure a
 * reply was sent and *status holds it. */
static json_t *read_json(struct router_req *q, int *status)
{
    char err[160];
    json_t *v = pjson_parse(q->body.data ? q->body.data : "", q->body.len, err, sizeof err);
    if (!v) {
        *status = reply_err(q->conn, 400, "bad_json", err);
    } else if (!json_is_object(v)) {
        json_decref(v);
        v = NULL;
        *status = reply_err(q->conn, 400, "bad_json", "body must be a JSON object");
    }
    return v;
}

static json_t *district_info(struct district *d, bool counts)
{
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s}", "id", district_id(d), "domain", district_domain(d),
                  "google_customer_id", district_customer_id(d), "azure_tenant_id",
                  district_tenant_id(d), "admin_email", district_admin_email(d));
    if (counts && o) {
        district_lock(d);
        struct district_auth a = *district_auth(d);
        json_t *c = json_pack("{s:I,s:I,s:I,s:I,s:I}", "google_users",
                              (json_int_t)district_live_count(d, DC_GUSERS), "google_orgunits",
                              (json_int_t)district_live_count(d, DC_OUS), "google_devices",
                              (json_int_t)district_live_count(d, DC_DEVICES), "azure_users",
                              (json_int_t)district_live_count(d, DC_AUSERS), "azure_version",
                              (json_int_t)district_azure_version(d));
        district_unlock(d);
        json_object_set_new(o, "counts", c);
        json_object_set_new(o, "azure_consented", json_boolean(a.azure_consented));
        json_object_set_new(o, "azure_permission", json_boolean(a.azure_permission));
    }
    return o;
}

static int send_json(struct mg_connection *conn, int status, json_t *o)
{
    int rc =
        o ? httpd_reply_json(conn, status, o) : reply_err(conn, 500, "internal", "out of memory");
    json_decref(o);
    return rc;
}

/* {"items":[...]} of every listed object, written by concatenation. */
static int dump(struct mg_connection *conn, struct district *d, enum dcoll c)
{
    struct buf b;
    int fail = 0;
    buf_init(&b, 0);
    fail |= buf_appends(&b, "{\"items\":[");
    district_lock(d);
    size_t n = district_count(d, c);
    int first = 1;
    for (size_t i = 0; i < n && !fail; i++) {
        const struct ditem *it = district_item(d, c, i);
        if (it->flags & (DITEM_DELETED | DITEM_GONE))
            continue;
        if (!first)
            fail |= buf_appends(&b, ",");
        fail |= buf_appends(&b, it->json);
        first = 0;
    }
    district_unlock(d);
    fail |= buf_appends(&b, "]}");
    int rc = fail ? reply_err(conn, 500, "internal", "out of memory")
                  : httpd_reply(conn, 200, "application/json", b.data, b.len, NULL);
    buf_free(&b);
    return rc;
}

static int mutate(struct router_req *q, struct district *d, enum dcoll c, const char *id)
{
    struct mg_connection *conn = q->conn;
    const char *method = q->method;
    char err[256];
    json_t *out = NULL;
    int status = 0, rc;
    if (!strcmp(method, "DELETE") && id) {
        char perm[16];
        bool permanent = emu_param(conn, "permanent", perm, sizeof perm) && !strcmp(perm, "true");
        district_lock(d);
        rc = district_delete(d, c, id, permanent);
        district_unlock(d);
        if (rc == -2)
            return reply_err(conn, 404, "not_found", "no such object");
        if (rc)
            return reply_err(conn, 500, "internal", "out of memory");
        return httpd_reply(conn, 204, "application/json", "", 0, NULL);
    }
    bool post = !strcmp(method, "POST") && !id;
    bool patch = !strcmp(method, "PATCH") && id;
    if (!post && !patch)
        return reply_err(conn, 405, "method_not_allowed",
                         "use POST on the collection, PATCH or "
                         "DELETE on an object");
    json_t *body = read_json(q, &status);
    if (!body)
        return status;
    district_lock(d);
    rc = post ? district_add(d, c, body, &out, err, sizeof err)
              : district_patch(d, c, id, body, &out, err, sizeof err);
    district_unlock(d);
    json_decref(body);
    if (rc == -2)
        return reply_err(conn, 404, "not_found", err);
    if (rc == -3)
        return reply_err(conn, 409, "conflict", err);
    if (rc)
        return reply_err(conn, 400, "bad_request", err);
    return send_json(conn, post ? 201 : 200, out);
}

static int create_district(struct router_req *q)
{
    struct mg_connection *conn = q->conn;
    struct emu *e = q->ctx;
    struct district_spec spec;
    char err[256];
    int status = 0;
    json_t *body = read_json(q, &status);
    if (!body)
        return status;
    int bad = district_spec_from_json(body, &spec, err, sizeof err);
    json_decref(body);
    if (bad)
        return reply_err(conn, 400, "bad_request", err);
    if (emu_district(e, spec.id))
        return reply_err(conn, 409, "exists", "a district with this id exists");
    struct district *d = district_generate(&spec, err, sizeof err);
    if (!d)
        return reply_err(conn, 500, "internal", err);
    int rc = emu_district_add(e, d);
    if (rc) {
        district_destroy(d);
        return rc == -1 ? reply_err(conn, 409, "exists", "a district with this id exists")
                        : reply_err(conn, 507, "full", "too many districts");
    }
    log_info("district %s created: %ld people, %ld azure people, %ld devices", spec.id, spec.people,
             spec.azure_people, spec.devices);
    return send_json(conn, 201, district_info(d, false));
}

/* GET|POST /control/districts/{id}/admins {"email","google":bool,"microsoft":bool}: people
 * who may sign in with the district's Google and Microsoft accounts. */
static struct district *path_district(struct router_req *q);

static int admins_get(struct router_req *q)
{
    struct emu *e = q->ctx;
    struct district *d = path_district(q);
    if (!d)
        return 404;
    return send_json(q->conn, 200, json_pack("{s:o}", "admins", emu_signin_list(e, d)));
}

static int admins_post(struct router_req *q)
{
    struct mg_connection *conn = q->conn;
    struct emu *e = q->ctx;
    struct district *d = path_district(q);
    if (!d)
        return 404;
    int status = 0;
    bool google = true, microsoft = true;
    const char *email = NULL;
    json_t *body = read_json(q, &status);
    if (!body)
        return status;
    if (pjson_get_str(body, "email", &email) != PJSON_OK ||
        pjson_get_bool(body, "google", &google) == PJSON_WRONG_TYPE ||
        pjson_get_bool(body, "microsoft", &microsoft) == PJSON_WRONG_TYPE) {
        json_decref(body);
        return reply_err(conn, 400, "bad_request",
                         "\"email\" (string), \"google\" and \"microsoft\" (booleans) expected");
    }
    int rc = emu_signin_add(e, d, email, google, microsoft);
    json_decref(body);
    if (rc == -1)
        return reply_err(conn, 400, "bad_request",
                         "email must be an address of the district's domain");
    if (rc)
        return reply_err(conn, 507, "full", "too many sign-in admins");
    return send_json(conn, 201, json_pack("{s:o}", "admins", emu_signin_list(e, d)));
}

/* POST /control/oidc/rotate: a new signing key (the old one stays published). */
static int oidc_rotate(struct router_req *q)
{
    if (emu_signin_rotate(q->ctx))
        return reply_err(q->conn, 500, "internal", "key generation failed");
    return send_json(q->conn, 200, json_pack("{s:s}", "status", "rotated"));
}

/* POST /control/oidc/mode {"mode":"normal|unknown_key|expired|other_audience"}. */
static int oidc_mode(struct router_req *q)
{
    int status = 0;
    enum signin_mode mode;
    json_t *body = read_json(q, &status);
    if (!body)
        return status;
    int bad = signin_mode_parse(pjson_str(body, "mode"), &mode);
    json_decref(body);
    if (bad)
        return reply_err(q->conn, 400, "bad_request",
                         "mode must be normal, unknown_key, expired or other_audience");
    emu_signin_set_mode(q->ctx, mode);
    return send_json(q->conn, 200, json_pack("{s:s}", "status", "ok"));
}

static int districts_list(struct router_req *q)
{
    struct emu *e = q->ctx;
    json_t *arr = json_array();
    for (size_t i = 0; i < emu_district_count(e); i++)
        json_array_append_new(arr, district_info(emu_district_at(e, i), true));
    return send_json(q->conn, 200, json_pack("{s:o}", "districts", arr));
}

/* The {district} of the path; NULL after a 404 reply when there is none such. */
static struct district *path_district(struct router_req *q)
{
    struct district *d = emu_district(q->ctx, router_param(q, "district"));
    if (!d)
        reply_err(q->conn, 404, "not_found", "no such district");
    return d;
}

static int district_get(struct router_req *q)
{
    struct district *d = path_district(q);
    return d ? send_json(q->conn, 200, district_info(d, true)) : 404;
}

static int google_revoke(struct router_req *q)
{
    struct district *d = path_district(q);
    if (!d)
        return 404;
    google_oauth_revoke_district(q->ctx, d);
    log_info("district %s: every Google grant revoked", district_id(d));
    return send_json(q->conn, 200, json_pack("{s:s}", "status", "revoked"));
}

static int azure_consent_set(struct router_req *q, bool grant)
{
    struct district *d = path_district(q);
    if (!d)
        return 404;
    district_lock(d);
    struct district_auth *a = district_auth(d);
    a->azure_consented = grant;
    if (grant) {
        a->azure_ever_consented = true;
        a->azure_permission = true;
    } else {
        a->azure_epoch++;
    }
    district_unlock(d);
    log_info("district %s: Azure consent %s", district_id(d), grant ? "granted" : "removed");
    return send_json(q->conn, 200, json_pack("{s:s}", "status", grant ? "consented" : "revoked"));
}

static int azure_consent(struct router_req *q)
{
    return azure_consent_set(q, true);
}

static int azure_revoke(struct router_req *q)
{
    return azure_consent_set(q, false);
}

/* The boolean member name of the body; 0, or the status of the error reply sent. */
static int body_bool(struct router_req *q, const char *name, bool *out)
{
    int status = 0;
    json_t *body = read_json(q, &status);
    if (!body)
        return status;
    enum pjson_get g = pjson_get_bool(body, name, out);
    json_decref(body);
    if (g != PJSON_OK)
        return httpd_reply_errorf(q->conn, 400, "bad_request", "\"%s\" must be a boolean", name);
    return 0;
}

static int azure_permission(struct router_req *q)
{
    struct district *d = path_district(q);
    bool granted;
    int status;
    if (!d)
        return 404;
    if ((status = body_bool(q, "granted", &granted)))
        return status;
    district_lock(d);
    district_auth(d)->azure_permission = granted;
    district_unlock(d);
    return send_json(q->conn, 200, json_pack("{s:b}", "granted", granted));
}

static int azure_delta(struct router_req *q)
{
    struct district *d = path_district(q);
    bool repeats;
    int status;
    if (!d)
        return 404;
    if ((status = body_bool(q, "repeat_changes", &repeats)))
        return status;
    district_lock(d);
    district_set_delta_repeats(d, repeats);
    district_unlock(d);
    return send_json(q->conn, 200, json_pack("{s:b}", "repeat_changes", repeats));
}

static int google_orgunits_order(struct router_req *q)
{
    struct district *d = path_district(q);
    bool children_first;
    int status;
    if (!d)
        return 404;
    if ((status = body_bool(q, "children_first", &children_first)))
        return status;
    district_lock(d);
    district_set_ous_children_first(d, children_first);
    district_unlock(d);
    return send_json(q->conn, 200, json_pack("{s:b}", "children_first", children_first));
}

/* POST .../{azure|google}/users/{id}/restore: a deleted user of that directory back. */
static int users_restore(struct router_req *q, enum dcoll c)
{
    struct district *d = path_district(q);
    if (!d)
        return 404;
    district_lock(d);
    int rc = district_restore(d, c, router_param(q, "id"));
    district_unlock(d);
    if (rc == -2)
        return reply_err(q->conn, 404, "not_found", "no deleted user with this id");
    if (rc)
        return reply_err(q->conn, 500, "internal", "out of memory");
    return send_json(q->conn, 200, json_pack("{s:s}", "status", "restored"));
}

static int azure_restore(struct router_req *q)
{
    return users_restore(q, DC_AUSERS);
}

static int google_restore(struct router_req *q)
{
    return users_restore(q, DC_GUSERS);
}

/* The district and collection of /control/districts/{district}/{cloud}/{collection}[/{id}];
 * 0, or the status of the 404 sent. */
static int path_collection(struct router_req *q, struct district **d, enum dcoll *c)
{
    static const struct {
        const char *cloud, *collection;
        enum dcoll c;
    } collections[] = {{"google", "users", DC_GUSERS},
                       {"google", "orgunits", DC_OUS},
                       {"google", "devices", DC_DEVICES},
                       {"azure", "users", DC_AUSERS}};
    if (!(*d = path_district(q)))
        return 404;
    for (size_t i = 0; i < sizeof collections / sizeof collections[0]; i++) {
        if (!strcmp(router_param(q, "cloud"), collections[i].cloud) &&
            !strcmp(router_param(q, "collection"), collections[i].collection)) {
            *c = collections[i].c;
            return 0;
        }
    }
    return reply_err(q->conn, 404, "not_found", "no such collection");
}

static int collection_get(struct router_req *q)
{
    struct district *d;
    enum dcoll c;
    int status = path_collection(q, &d, &c);
    return status ? status : dump(q->conn, d, c);
}

static int collection_change(struct router_req *q)
{
    struct district *d;
    enum dcoll c;
    int status = path_collection(q, &d, &c);
    return status ? status : mutate(q, d, c, router_param(q, "id"));
}

static int faults_delete(struct router_req *q)
{
    struct emu *e = q->ctx;
    faults_clear(e->faults);
    return httpd_reply(q->conn, 204, "application/json", "", 0, NULL);
}

static int faults_post(struct router_req *q)
{
    struct emu *e = q->ctx;
    int status = 0;
    char err[256];
    uint64_t id;
    json_t *body = read_json(q, &status);
    if (!body)
        return status;
    int rc = faults_add(e->faults, body, &id, err, sizeof err);
    json_decref(body);
    if (rc)
        return reply_err(q->conn, 400, "bad_request", err);
    return send_json(q->conn, 201, json_pack("{s:I}", "id", (json_int_t)id));
}

static int expire_tokens(struct router_req *q)
{
    struct emu *e = q->ctx;
    page_tokens_expire_all(e->tokens);
    log_info("every page, skip and delta token expired");
    return send_json(q->conn, 200, json_pack("{s:s}", "status", "expired"));
}

static int stats_get(struct router_req *q)
{
    struct emu *e = q->ctx;
    json_t *req = json_object();
    for (int r = 0; r < R_COUNT; r++)
        json_object_set_new(req, emu_route_name((enum emu_route)r),
                            json_integer((json_int_t)atomic_load(&e->requests[r])));
    return send_json(q->conn, 200,
                     json_pack("{s:o,s:I,s:i}", "requests", req, "faults_injected",
                               (json_int_t)faults_injected(e->faults), "slowed_at_once_max",
                               atomic_load(&e->slowed_at_once_max)));
}

static int stats_reset(struct router_req *q)
{
    struct emu *e = q->ctx;
    for (int r = 0; r < R_COUNT; r++)
        atomic_store(&e->requests[r], 0);
    atomic_store(&e->slowed_at_once_max, atomic_load(&e->slowed_now));
    faults_reset_stats(e->faults);
    return send_json(q->conn, 200, json_pack("{s:s}", "status", "reset"));
}

#define DISTRICT "/control/districts/{district}"
#define BODY     CONTROL_BODY_MAX

/* The control API: one table (docs/emulator.md lists the same routes). */
static const struct router_route control_table[] = {
    {"GET", "/control/districts", districts_list, 0, 0},
    {"POST", "/control/districts", create_district, 0, BODY},
    {"GET", "/control/districts/", districts_list, 0, 0},
    {"POST", "/control/districts/", create_district, 0, BODY},
    {"GET", DISTRICT, district_get, 0, 0},
    {"GET", DISTRICT "/admins", admins_get, 0, 0},
    {"POST", DISTRICT "/admins", admins_post, 0, BODY},
    {"POST", DISTRICT "/google/revoke", google_revoke, 0, 0},
    {"POST", DISTRICT "/azure/revoke", azure_revoke, 0, 0},
    {"POST", DISTRICT "/azure/consent", azure_consent, 0, 0},
    {"POST", DISTRICT "/azure/permission", azure_permission, 0, BODY},
    {"POST", DISTRICT "/azure/delta", azure_delta, 0, BODY},
    {"POST", DISTRICT "/azure/users/{id}/restore", azure_restore, 0, 0},
    {"POST", DISTRICT "/google/users/{id}/restore", google_restore, 0, 0},
    {"POST", DISTRICT "/google/orgunits-order", google_orgunits_order, 0, BODY},
    {"GET", DISTRICT "/{cloud}/{collection}", collection_get, 0, 0},
    {"POST", DISTRICT "/{cloud}/{collection}", collection_change, 0, BODY},
    {"PATCH", DISTRICT "/{cloud}/{collection}/{id}", collection_change, 0, BODY},
    {"DELETE", DISTRICT "/{cloud}/{collection}/{id}", collection_change, 0, 0},
    {"POST", "/control/faults", faults_post, 0, BODY},
    {"DELETE", "/control/faults", faults_delete, 0, 0},
    {"POST", "/control/oidc/rotate", oidc_rotate, 0, 0},
    {"POST", "/control/oidc/mode", oidc_mode, 0, BODY},
    {"POST", "/control/expire-page-tokens", expire_tokens, 0, 0},
    {"GET", "/control/stats", stats_get, 0, 0},
    {"POST", "/control/reset-stats", stats_reset, 0, 0},
};

int control_routes(struct httpd *h, struct emu *e, struct router **out)
{
    char err[256];
    *out = router_new(control_table, sizeof control_table / sizeof control_table[0], NULL, e, err,
                      sizeof err);
    if (!*out) {
        log_error("control routes: %s", err);
        return -1;
    }
    return router_mount(*out, h, "/control", "/control/*");
}
