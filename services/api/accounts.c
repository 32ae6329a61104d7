/* accounts: see accounts.h. */
#include "accounts.h"

#include "ids.h"
#include "log.h"
#include "session.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCOUNT_JSON                                                                               \
    "json_build_object('account_id', a.account_id, 'email', a.email, 'role', a.role,"              \
    " 'allow_google', a.allow_google, 'allow_microsoft', a.allow_microsoft,"                       \
    " 'google_bound', a.google_sub IS NOT NULL, 'microsoft_bound', a.microsoft_oid IS NOT NULL,"   \
    " 'created_at', a.created_at, 'created_by', a.created_by,"                                     \
    " 'last_signin_at', a.last_signin_at)"

static const struct db_stmt st_tenant_name = {
    "accounts_tenant_name", "SELECT display_name, time_zone FROM tenants WHERE tenant_id = $1"};
static const struct db_stmt st_signout = {
    "accounts_signout",
    "UPDATE admin_sessions SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL"};
static const struct db_stmt st_list = {
    "accounts_list", "SELECT json_build_object('items', coalesce(json_agg(" ACCOUNT_JSON
                     " ORDER BY a.email), '[]'))::text FROM admin_accounts a"
                     " WHERE a.tenant_id = $1 AND a.removed_at IS NULL"};
static const struct db_stmt st_add = {
    "accounts_add",
    "INSERT INTO admin_accounts AS a (tenant_id, email, role, allow_google, allow_microsoft,"
    " created_by) VALUES ($1, lower(btrim($2)), $3, $4::boolean, $5::boolean, $6)"
    " RETURNING " ACCOUNT_JSON "::text"};
/* Locks the district's admins, so two removals at once cannot leave it without one. */
static const struct db_stmt st_lock_admins = {
    "accounts_lock_admins", "SELECT count(*) FROM (SELECT 1 FROM admin_accounts"
                            " WHERE tenant_id = $1 AND removed_at IS NULL AND role = 'admin'"
                            " FOR UPDATE) AS admins"};
static const struct db_stmt st_target = {
    "accounts_target", "SELECT role FROM admin_accounts WHERE tenant_id = $1"
                       " AND account_id = $2::uuid AND removed_at IS NULL FOR UPDATE"};
static const struct db_stmt st_update = {
    "accounts_update",
    "UPDATE admin_accounts AS a SET role = coalesce($3, a.role),"
    " allow_google = coalesce($4::boolean, a.allow_google),"
    " allow_microsoft = coalesce($5::boolean, a.allow_microsoft)"
    " WHERE a.tenant_id = $1 AND a.account_id = $2::uuid AND a.removed_at IS NULL"
    " RETURNING " ACCOUNT_JSON "::text"};
static const struct db_stmt st_remove = {
    "accounts_remove", "UPDATE admin_accounts SET removed_at = now(), removed_by = $3"
                       " WHERE tenant_id = $1 AND account_id = $2::uuid AND removed_at IS NULL"};
static const struct db_stmt st_end_sessions = {
    "accounts_end_sessions",
    "UPDATE admin_sessions SET ended_at = now()"
    " WHERE tenant_id = $1 AND account_id = $2::uuid AND ended_at IS NULL"};

/* 0 when the request is authenticated by a session; otherwise fills a 403 and returns -1. */
static int require_session(struct api_req *r)
{
    if (r->principal.kind == PRINCIPAL_SESSION)
        return 0;
    rest_error(r, 403, "not_a_session",
               "this request is authenticated by an API key, not a signed-in session");
    return -1;
}

/* An API key asking who it is (machine clients): no session fields, no CSRF token. */
static void describe_key(struct api_req *r)
{
    json_t *out = json_pack("{s:s,s:s,s:s,s:s,s:s}", "kind", "apikey", "tenant_id",
                            r->principal.tenant, "key_id", r->principal.key_id, "role",
                            r->principal.admin ? "admin" : "viewer", "actor", r->principal.actor);
    rest_reply_json(r, 200, out);
    json_decref(out);
}

static void get_session(struct api_req *r)
{
    char csrf[SESSION_TOKEN_MAX];
    json_t *out = NULL;
    PGresult *res = NULL;
    if (rest_check_query(r, NULL))
        goto out;
    if (r->principal.kind != PRINCIPAL_SESSION) {
        describe_key(r);
        goto out;
    }
    if (session_csrf_token(r->session_id, csrf) != 0) {
        rest_error(r, 500, "internal", "cannot derive the CSRF token");
        goto out;
    }
    const char *p[1] = {r->principal.tenant};
    if (!(res = rest_exec(r, &st_tenant_name, 1, p)))
        goto out;
    out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s}", "kind", "session", "actor",
                    r->principal.actor, "tenant_id", r->principal.tenant, "tenant_name",
                    PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "", "account_id",
                    r->principal.account_id, "email", r->principal.email, "role",
                    r->principal.admin ? "admin" : "viewer", "provider", r->principal.provider,
                    "csrf_token", csrf, "expires_at", r->principal.expires_at, "idle_timeout_s",
                    (json_int_t)r->api->session_idle_minutes * 60, "time_zone",
                    PQntuples(res) == 1 ? PQgetvalue(res, 0, 1) : "UTC");
    rest_reply_json(r, 200, out);
    if (r->status == 200)
        snprintf(r->headers, sizeof r->headers, "Cache-Control: no-store\r\n");
out:
    json_decref(out);
    PQclear(res);
}

static void sign_out(struct api_req *r)
{
    json_t *body = NULL;
    PGresult *res = NULL;
    if (require_session(r) || !(body = rest_json_body(r, (const char *const[]){NULL}, true)))
        goto out;
    const char *p[1] = {r->principal.session_hash};
    if (!(res = rest_exec(r, &st_signout, 1, p)))
        goto out;
    log_info_t(r->principal.tenant, NULL, "%s signed out", r->principal.actor);
    if (session_set_cookie(r->headers, sizeof r->headers, SESSION_COOKIE, "", 0,
                           r->api->cookie_secure) != 0) {
        rest_error(r, 500, "internal", "cannot delete the cookie");
        goto out;
    }
    rest_reply_text(r, 204, "");
out:
    json_decref(body);
    PQclear(res);
}

int accounts_session(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    get_session(r);
    return r->status;
}

int accounts_sign_out(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    sign_out(r);
    return r->status;
}

/* Role and provider switches of a POST or PATCH body. 0, or -1 with the reply filled. */
static int read_account_fields(struct api_req *r, json_t *body, const char **role,
                               const char **allow_google, const char **allow_microsoft)
{
    bool g = true, m = true;
    int rr, rg, rm;
    if ((rr = rest_field_str(r, body, "role", 16, role)) < 0 ||
        (rg = rest_field_bool(r, body, "allow_google", &g)) < 0 ||
        (rm = rest_field_bool(r, body, "allow_microsoft", &m)) < 0)
        return -1;
    if (rr == 2 || rg == 2 || rm == 2) {
        rest_error(r, 400, "invalid_field",
                   "role, allow_google and allow_microsoft cannot be null");
        return -1;
    }
    if (rr == 1)
        *role = NULL;
    else if (strcmp(*role, "admin") != 0 && strcmp(*role, "viewer") != 0) {
        rest_error(r, 422, "invalid_field", "role must be admin or viewer");
        return -1;
    }
    *allow_google = rg == 1 ? NULL : g ? "true" : "false";
    *allow_microsoft = rm == 1 ? NULL : m ? "true" : "false";
    return 0;
}

static void add_account(struct api_req *r)
{
    static const char *const allowed[] = {"email", "role", "allow_google", "allow_microsoft", NULL};
    json_t *body = NULL;
    PGresult *res = NULL;
    const char *email = NULL, *role = NULL, *g = NULL, *m = NULL;
    char normalized[AUTH_EMAIL_MAX + 1];
    int re;
    if (rest_require_admin(r) || !(body = rest_json_body(r, allowed, false)) ||
        (re = rest_field_str(r, body, "email", AUTH_EMAIL_MAX, &email)) < 0 ||
        read_account_fields(r, body, &role, &g, &m))
        goto out;
    if (re != 0 || !role) {
        rest_error(r, 400, "missing_field", "email and role are required");
        goto out;
    }
    if (ids_email_normalize(email, normalized, sizeof normalized) != 0 ||
        !ids_email_valid(normalized)) {
        rest_error(r, 422, "invalid_field", "email must be an email address");
        goto out;
    }
    if ((g && strcmp(g, "false") == 0) && (m && strcmp(m, "false") == 0)) {
        rest_error(r, 422, "invalid_field", "allow at least one of Google and Microsoft");
        goto out;
    }
    const char *p[6] = {r->principal.tenant, email,          role,
                        g ? g : "true",      m ? m : "true", r->principal.actor};
    if (!(res = rest_exec(r, &st_add, 6, p))) {
        if (r->status == 409)
            rest_error(r, 409, "conflict", "%s is already an admin account of this district",
                       normalized);
        goto out;
    }
    rest_reply_row(r, res, 201);
    log_info_t(r->principal.tenant, NULL, "admin account %s (%s) added by %s", normalized, role,
               r->principal.actor);
out:
    json_decref(body);
    PQclear(res);
}

/* Inside the open transaction: lock the district's admins and the target. 1 when the target
 * exists (its role in role_out), 0 (404 filled) when not, -1 on error; *admins counts the
 * district's admins. */
static int lock_target(struct api_req *r, const char *id, long *admins, char role_out[16])
{
    PGresult *res = NULL;
    int rc = -1;
    const char *p[2] = {r->principal.tenant, id};
    if (!(res = rest_exec(r, &st_lock_admins, 1, p)))
        goto out;
    *admins = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (!(res = rest_exec(r, &st_target, 2, p)))
        goto out;
    rc = PQntuples(res) == 1;
    if (rc)
        snprintf(role_out, 16, "%s", PQgetvalue(res, 0, 0));
    else
        rest_not_found(r);
out:
    PQclear(res);
    return rc;
}

static void change_account(struct api_req *r, const char *id, bool remove)
{
    static const char *const allowed[] = {"role", "allow_google", "allow_microsoft", NULL};
    json_t *body = NULL;
    PGresult *res = NULL;
    const char *role = NULL, *g = NULL, *m = NULL;
    char current[16] = "";
    long admins = 0;
    if (rest_require_admin(r))
        goto out;
    if (!remove && (!(body = rest_json_body(r, allowed, false)) ||
                    read_account_fields(r, body, &role, &g, &m)))
        goto out;
    if (rest_tx(r, "BEGIN") || lock_target(r, id, &admins, current) != 1)
        goto out;
    if (strcmp(current, "admin") == 0 && admins <= 1 &&
        (remove || (role && strcmp(role, "viewer") == 0))) {
        rest_error(r, 409, "last_admin",
                   "this is the district's last admin: add another admin first");
        goto out;
    }
    if (remove) {
        const char *p[3] = {r->principal.tenant, id, r->principal.actor};
        if (!(res = rest_exec(r, &st_remove, 3, p)))
            goto out;
        PQclear(res);
        if (!(res = rest_exec(r, &st_end_sessions, 2, p)) || rest_tx(r, "COMMIT"))
            goto out;
        rest_reply_text(r, 204, "");
        log_info_t(r->principal.tenant, NULL, "admin account %s removed by %s (its sessions ended)",
                   id, r->principal.actor);
    } else {
        const char *p[5] = {r->principal.tenant, id, role, g, m};
        if (!(res = rest_exec(r, &st_update, 5, p)) || rest_tx(r, "COMMIT"))
            goto out;
        rest_reply_row(r, res, 200);
        log_info_t(r->principal.tenant, NULL, "admin account %s changed by %s (role %s)", id,
                   r->principal.actor, role ? role : "unchanged");
    }
out:
    json_decref(body);
    PQclear(res);
}

int accounts_list(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    if (rest_check_query(r, NULL))
        return r->status;
    const char *p[1] = {r->principal.tenant};
    PGresult *res = rest_exec(r, &st_list, 1, p);
    if (res)
        rest_reply_row(r, res, 200);
    PQclear(res);
    return r->status;
}

int accounts_add(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    add_account(r);
    return r->status;
}

int accounts_change(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id)
        change_account(r, id, strcmp(r->method, "DELETE") == 0);
    return r->status;
}
