#include "control.h"
#include "google_oauth.h"
#include "json.h"
#include "log.h"
#include "signin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTROL_BODY_MAX (1024 * 1024)

static int reply_err(struct mg_connection *conn, int status, const char *code, const char *msg)
{
    return httpd_reply_error(conn, status, code, msg);
}

/* Read a JSON object body; on failure a reply was sent and *status holds it. */
static json_t *read_json(struct mg_connection *conn, int *status)
{
    struct buf b;
    char err[160];
    json_t *v = NULL;
    buf_init(&b, CONTROL_BODY_MAX);
    int rc = httpd_read_body(conn, &b, CONTROL_BODY_MAX);
    if (rc == -1) {
        *status = reply_err(conn, 413, "too_large", "body too large");
    } else if (rc) {
        *status = reply_err(conn, 400, "bad_request", "cannot read body");
    } else if (!(v = json_parse(b.data, b.len, err, sizeof err))) {
        *status = reply_err(conn, 400, "bad_json", err);
    } else if (!json_is_object(v)) {
        json_decref(v);
        v = NULL;
        *status = reply_err(conn, 400, "bad_json", "body must be a JSON object");
    }
    buf_free(&b);
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

static int mutate(struct mg_connection *conn, struct district *d, enum dcoll c, const char *id,
                  const char *method)
{
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
    json_t *body = read_json(conn, &status);
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

static int create_district(struct mg_connection *conn, struct emu *e)
{
    struct district_spec spec;
    char err[256];
    int status = 0;
    json_t *body = read_json(conn, &status);
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
static int admins(struct mg_connection *conn, struct emu *e, struct district *d, const char *m)
{
    if (!strcmp(m, "GET"))
        return send_json(conn, 200, json_pack("{s:o}", "admins", emu_signin_list(e, d)));
    if (strcmp(m, "POST"))
        return reply_err(conn, 405, "method_not_allowed", "GET or POST");
    int status = 0;
    bool google = true, microsoft = true;
    const char *email = NULL;
    json_t *body = read_json(conn, &status);
    if (!body)
        return status;
    if (json_get_str(body, "email", &email) != JSON_GET_OK ||
        json_get_bool(body, "google", &google) == JSON_GET_WRONG_TYPE ||
        json_get_bool(body, "microsoft", &microsoft) == JSON_GET_WRONG_TYPE) {
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

/* POST /control/oidc/rotate: a new signing key (the old one stays published);
 * POST /control/oidc/mode {"mode":"normal|unknown_key|expired|other_audience"}. */
static int oidc_handler(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->request_method, "POST"))
        return reply_err(conn, 405, "method_not_allowed", "POST");
    if (!strcmp(ri->local_uri, "/control/oidc/rotate")) {
        if (emu_signin_rotate(e))
            return reply_err(conn, 500, "internal", "key generation failed");
        return send_json(conn, 200, json_pack("{s:s}", "status", "rotated"));
    }
    if (!strcmp(ri->local_uri, "/control/oidc/mode")) {
        int status = 0;
        enum signin_mode mode;
        json_t *body = read_json(conn, &status);
        if (!body)
            return status;
        int bad = signin_mode_parse(json_str(body, "mode"), &mode);
        json_decref(body);
        if (bad)
            return reply_err(conn, 400, "bad_request",
                             "mode must be normal, unknown_key, expired or other_audience");
        emu_signin_set_mode(e, mode);
        return send_json(conn, 200, json_pack("{s:s}", "status", "ok"));
    }
    return reply_err(conn, 404, "not_found", "no such resource");
}

static int districts_handler(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *m = ri->request_method;
    char path[1024];
    snprintf(path, sizeof path, "%s", ri->local_uri);
    const char *rest = path + strlen("/control/districts");
    if (!*rest || !strcmp(rest, "/")) {
        if (!strcmp(m, "POST"))
            return create_district(conn, e);
        if (!strcmp(m, "GET")) {
            json_t *arr = json_array();
            for (size_t i = 0; i < emu_district_count(e); i++)
                json_array_append_new(arr, district_info(emu_district_at(e, i), true));
            return send_json(conn, 200, json_pack("{s:o}", "districts", arr));
        }
        return reply_err(conn, 405, "method_not_allowed", "GET or POST");
    }
    /* /{id}[/{provider}/{what}[/{objid}]] */
    char *segs[6] = {0};
    int nseg = 0;
    char *save = NULL;
    for (char *t = strtok_r(path + strlen("/control/districts/"), "/", &save); t && nseg < 6;
         t = strtok_r(NULL, "/", &save))
        segs[nseg++] = t;
    struct district *d = nseg ? emu_district(e, segs[0]) : NULL;
    if (!d)
        return reply_err(conn, 404, "not_found", "no such district");
    if (nseg == 1) {
        if (strcmp(m, "GET"))
            return reply_err(conn, 405, "method_not_allowed", "GET");
        return send_json(conn, 200, district_info(d, true));
    }
    if (nseg == 2 && !strcmp(segs[1], "admins"))
        return admins(conn, e, d, m);
    if (nseg == 3 && !strcmp(segs[1], "google") && !strcmp(segs[2], "revoke") &&
        !strcmp(m, "POST")) {
        google_oauth_revoke_district(e, d);
        log_info("district %s: every Google grant revoked", district_id(d));
        return send_json(conn, 200, json_pack("{s:s}", "status", "revoked"));
    }
    if (nseg == 3 && !strcmp(segs[1], "azure") && !strcmp(m, "POST") &&
        (!strcmp(segs[2], "revoke") || !strcmp(segs[2], "consent"))) {
        bool grant = !strcmp(segs[2], "consent");
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
        return send_json(conn, 200, json_pack("{s:s}", "status", grant ? "consented" : "revoked"));
    }
    if (nseg == 3 && !strcmp(segs[1], "azure") && !strcmp(segs[2], "permission") &&
        !strcmp(m, "POST")) {
        int status = 0;
        bool granted;
        json_t *body = read_json(conn, &status);
        if (!body)
            return status;
        enum json_get g = json_get_bool(body, "granted", &granted);
        json_decref(body);
        if (g != JSON_GET_OK)
            return reply_err(conn, 400, "bad_request", "\"granted\" must be a boolean");
        district_lock(d);
        district_auth(d)->azure_permission = granted;
        district_unlock(d);
        return send_json(conn, 200, json_pack("{s:b}", "granted", granted));
    }
    if (nseg == 3 && !strcmp(segs[1], "azure") && !strcmp(segs[2], "delta") && !strcmp(m, "POST")) {
        int status = 0;
        bool repeats;
        json_t *body = read_json(conn, &status);
        if (!body)
            return status;
        enum json_get g = json_get_bool(body, "repeat_changes", &repeats);
        json_decref(body);
        if (g != JSON_GET_OK)
            return reply_err(conn, 400, "bad_request", "\"repeat_changes\" must be a boolean");
        district_lock(d);
        district_set_delta_repeats(d, repeats);
        district_unlock(d);
        return send_json(conn, 200, json_pack("{s:b}", "repeat_changes", repeats));
    }
    if (nseg == 3 && !strcmp(segs[1], "google") && !strcmp(segs[2], "orgunits-order") &&
        !strcmp(m, "POST")) {
        int status = 0;
        bool children_first;
        json_t *body = read_json(conn, &status);
        if (!body)
            return status;
        enum json_get g = json_get_bool(body, "children_first", &children_first);
        json_decref(body);
        if (g != JSON_GET_OK)
            return reply_err(conn, 400, "bad_request", "\"children_first\" must be a boolean");
        district_lock(d);
        district_set_ous_children_first(d, children_first);
        district_unlock(d);
        return send_json(conn, 200, json_pack("{s:b}", "children_first", children_first));
    }
    if (nseg == 5 && (!strcmp(segs[1], "azure") || !strcmp(segs[1], "google")) &&
        !strcmp(segs[2], "users") && !strcmp(segs[4], "restore")) {
        if (strcmp(m, "POST"))
            return reply_err(conn, 405, "method_not_allowed", "POST");
        district_lock(d);
        int rc = district_restore(d, !strcmp(segs[1], "azure") ? DC_AUSERS : DC_GUSERS, segs[3]);
        district_unlock(d);
        if (rc == -2)
            return reply_err(conn, 404, "not_found", "no deleted user with this id");
        if (rc)
            return reply_err(conn, 500, "internal", "out of memory");
        return send_json(conn, 200, json_pack("{s:s}", "status", "restored"));
    }
    if (nseg < 3 || nseg > 4)
        return reply_err(conn, 404, "not_found", "no such resource");
    enum dcoll c;
    if (!strcmp(segs[1], "google") && !strcmp(segs[2], "users"))
        c = DC_GUSERS;
    else if (!strcmp(segs[1], "google") && !strcmp(segs[2], "orgunits"))
        c = DC_OUS;
    else if (!strcmp(segs[1], "google") && !strcmp(segs[2], "devices"))
        c = DC_DEVICES;
    else if (!strcmp(segs[1], "azure") && !strcmp(segs[2], "users"))
        c = DC_AUSERS;
    else
        return reply_err(conn, 404, "not_found", "no such collection");
    if (nseg == 3 && !strcmp(m, "GET"))
        return dump(conn, d, c);
    return mutate(conn, d, c, nseg == 4 ? segs[3] : NULL, m);
}

static int faults_handler(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    const char *m = mg_get_request_info(conn)->request_method;
    if (!strcmp(m, "DELETE")) {
        faults_clear(e->faults);
        return httpd_reply(conn, 204, "application/json", "", 0, NULL);
    }
    if (strcmp(m, "POST"))
        return reply_err(conn, 405, "method_not_allowed", "POST or DELETE");
    int status = 0;
    char err[256];
    uint64_t id;
    json_t *body = read_json(conn, &status);
    if (!body)
        return status;
    int rc = faults_add(e->faults, body, &id, err, sizeof err);
    json_decref(body);
    if (rc)
        return reply_err(conn, 400, "bad_request", err);
    return send_json(conn, 201, json_pack("{s:I}", "id", (json_int_t)id));
}

static int expire_handler(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    if (strcmp(mg_get_request_info(conn)->request_method, "POST"))
        return reply_err(conn, 405, "method_not_allowed", "POST");
    page_tokens_expire_all(e->tokens);
    log_info("every page, skip and delta token expired");
    return send_json(conn, 200, json_pack("{s:s}", "status", "expired"));
}

static int stats_handler(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    json_t *req = json_object();
    for (int r = 0; r < R_COUNT; r++)
        json_object_set_new(req, emu_route_name((enum emu_route)r),
                            json_integer((json_int_t)atomic_load(&e->requests[r])));
    return send_json(conn, 200,
                     json_pack("{s:o,s:I}", "requests", req, "faults_injected",
                               (json_int_t)faults_injected(e->faults)));
}

static int reset_stats_handler(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    if (strcmp(mg_get_request_info(conn)->request_method, "POST"))
        return reply_err(conn, 405, "method_not_allowed", "POST");
    for (int r = 0; r < R_COUNT; r++)
        atomic_store(&e->requests[r], 0);
    faults_reset_stats(e->faults);
    return send_json(conn, 200, json_pack("{s:s}", "status", "reset"));
}

int control_routes(struct httpd *h, struct emu *e)
{
    if (httpd_route(h, "/control/districts", "control.districts", districts_handler, e) ||
        httpd_route(h, "/control/faults", "control.faults", faults_handler, e) ||
        httpd_route(h, "/control/oidc", "control.oidc", oidc_handler, e) ||
        httpd_route(h, "/control/expire-page-tokens", "control.expire", expire_handler, e) ||
        httpd_route(h, "/control/stats", "control.stats", stats_handler, e) ||
        httpd_route(h, "/control/reset-stats", "control.reset_stats", reset_stats_handler, e))
        return -1;
    return 0;
}
