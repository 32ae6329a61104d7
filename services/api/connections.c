/* connections: see connections.h. */
#include "connections.h"

#include "upstream.h"

#include <stdio.h>
#include <string.h>

static const struct db_stmt st_status = {
    "connections_status",
    "SELECT json_build_object('connections', json_agg(json_build_object("
    " 'provider', pr.provider,"
    " 'status', connection_shown_status(coalesce(c.status, 'never'), mp.missing),"
    " 'missing_permissions', mp.missing,"
    " 'granted_scopes', coalesce(c.granted_scopes, '{}'),"
    " 'missing_scopes', coalesce(c.missing_scopes, '{}'),"
    " 'provider_tenant', c.provider_tenant,"
    " 'authorized_at', c.authorized_at, 'authorized_by', c.authorized_by,"
    " 'revoked_at', c.revoked_at, 'status_message', c.status_message,"
    " 'remote_revoke_pending', coalesce(c.remote_revoke_pending, false),"
    " 'next_sync_at', c.next_sync_at,"
    " 'sync_interval_seconds', coalesce(c.sync_interval_seconds, t.sync_interval_seconds),"
    " 'paused', EXISTS (SELECT 1 FROM pause_windows w WHERE w.tenant_id = t.tenant_id"
    "   AND now() >= w.starts_at AND now() < w.ends_at),"
    " 'held_runs', (SELECT count(*) FROM sync_runs s WHERE s.tenant_id = t.tenant_id"
    "   AND s.source = pr.provider AND s.status = 'held'),"
    " 'last_run', (SELECT json_build_object('run_id', s.run_id, 'status', s.status,"
    "   'kind', s.kind, 'preview', s.preview, 'reason', s.reason,"
    "   'requested_at', s.requested_at, 'started_at', s.started_at,"
    "   'finished_at', s.finished_at, 'failure_reason', s.failure_reason,"
    "   'message', s.message, 'forbidden_listings', s.forbidden_listings, 'seen', s.seen, "
    "'created', s.created, 'updated', s.updated,"
    "   'unchanged', s.unchanged, 'removed', s.removed, 'skipped', s.skipped,"
    "   'match_cases', s.match_cases, 'pending_removals', s.pending_removals)"
    "   FROM sync_runs s WHERE s.tenant_id = t.tenant_id AND s.source = pr.provider"
    "   ORDER BY s.requested_at DESC LIMIT 1)) ORDER BY pr.ord))::text"
    " FROM tenants t CROSS JOIN (VALUES ('google', 1), ('azure', 2)) AS pr(provider, ord)"
    " LEFT JOIN connections c ON c.tenant_id = t.tenant_id AND c.provider = pr.provider"
    " CROSS JOIN LATERAL (SELECT connection_missing_permissions(t.tenant_id, pr.provider)"
    "   AS missing) mp"
    " WHERE t.tenant_id = $1"};

/* Authorize or de-authorize: the authenticated caller is the actor auth records. An
 * authorization is started by a signed-in person only, and auth binds its state to the
 * session (its stored hash), so that the consent completes in that browser only. */
static void action(struct api_req *r, const char *provider, const char *what)
{
    json_t *body = NULL, *up = NULL;
    char path[256];
    if (rest_require_admin(r) || !(body = rest_json_body(r, (const char *const[]){NULL}, true)))
        goto out;
    bool authorize = strcmp(what, "authorize") == 0;
    /* A consent is given in a browser by a signed-in admin, and auth binds it to that
     * session: an API key cannot start one. */
    if (authorize && r->principal.kind != PRINCIPAL_SESSION) {
        rest_error(r, 403, "session_required",
                   "a cloud is connected by an admin signed in to the admin page, not with an "
                   "API key");
        goto out;
    }
    up = authorize ? json_pack("{ssss}", "actor", r->principal.actor, "session_hash",
                               r->principal.session_hash)
                   : json_pack("{ss}", "actor", r->principal.actor);
    snprintf(path, sizeof path, "/internal/tenants/%s/%s/%s", r->principal.tenant, provider, what);
    upstream_post(r, r->api->auth_url, path, up);
out:
    json_decref(body);
    json_decref(up);
}

int connections_status(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    if (rest_check_query(r, NULL))
        return r->status;
    const char *p[1] = {r->principal.tenant};
    PGresult *res = rest_exec(r, &st_status, 1, p);
    if (res)
        rest_reply_row(r, res, 200);
    PQclear(res);
    return r->status;
}

/* The cloud of /v1/connections/{provider}/...: google, or microsoft (also named azure). */
static int provider_action(struct router_req *q, const char *what)
{
    struct api_req *r = rest_req(q);
    const char *name = rest_param(r, "provider");
    if (strcmp(name, "google") == 0)
        action(r, "google", what);
    else if (strcmp(name, "microsoft") == 0 || strcmp(name, "azure") == 0)
        action(r, "microsoft", what);
    else
        rest_not_found(r);
    return r->status;
}

int connections_authorize(struct router_req *q)
{
    return provider_action(q, "authorize");
}

int connections_deauthorize(struct router_req *q)
{
    return provider_action(q, "deauthorize");
}
