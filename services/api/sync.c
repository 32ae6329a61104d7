/* sync: see sync.h. Reads come from PostgreSQL; actions go to auth (sync requests,
 * schedule settings) and the merger (held runs, match cases), which own those rows. */
#include "sync.h"

#include "ids.h"
#include "json.h"
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_JSON                                                                                   \
    "json_build_object('run_id', s.run_id, 'source', s.source, 'kind', s.kind,"                    \
    " 'preview', s.preview, 'reason', s.reason, 'status', s.status,"                               \
    " 'failure_reason', s.failure_reason, 'message', s.message,"                                   \
    " 'forbidden_listings', s.forbidden_listings,"                                                 \
    " 'requested_at', s.requested_at, 'started_at', s.started_at,"                                 \
    " 'finished_at', s.finished_at, 'seen', s.seen, 'created', s.created,"                         \
    " 'updated', s.updated, 'unchanged', s.unchanged, 'removed', s.removed,"                       \
    " 'skipped', s.skipped, 'match_cases', s.match_cases,"                                         \
    " 'pending_removals', s.pending_removals, 'fetched_counts', s.fetched_counts,"                 \
    " 'decided_by', s.decided_by, 'decided_at', s.decided_at)"

#define CASE_JSON                                                                                  \
    "json_build_object('case_id', m.case_id, 'source', m.source, 'source_id', m.source_id,"        \
    " 'reason', m.reason, 'run_id', m.run_id, 'status', m.status,"                                 \
    " 'resolved_person_id', m.resolved_person_id, 'resolved_by', m.resolved_by,"                   \
    " 'created_at', m.created_at, 'resolved_at', m.resolved_at,"                                   \
    " 'source_record', (SELECT json_build_object('email', ps.email_norm, 'fields', ps.fields)"     \
    "   FROM person_sources ps WHERE ps.tenant_id = m.tenant_id AND ps.source = m.source"          \
    "   AND ps.source_id = m.source_id),"                                                          \
    " 'candidates', (SELECT coalesce(json_agg(api_person_json(p)), '[]') FROM people p"            \
    "   WHERE p.tenant_id = m.tenant_id AND p.person_id = ANY (m.candidates)))"

static const struct db_stmt st_runs = {
    "sync_runs_list",
    "SELECT " RUN_JSON "::text, s.requested_at::text, s.run_id::text FROM sync_runs s"
    " WHERE s.tenant_id = $1 AND ($2::text IS NULL OR s.source = $2)"
    " AND ($3::text IS NULL OR s.status = $3)"
    " AND ($4::timestamptz IS NULL OR (s.requested_at, s.run_id) < ($4, $5::uuid))"
    " ORDER BY s.requested_at DESC, s.run_id DESC LIMIT $6::int"};
static const struct db_stmt st_run = {
    "sync_run_get", "SELECT (" RUN_JSON "::jsonb || jsonb_build_object('report', s.report))::text"
                    " FROM sync_runs s WHERE s.tenant_id = $1 AND s.run_id = $2::uuid"};
/* Each outcome names what it is about as the page shows it: the Person (by the run's
 * cloud and source id), the Asset (by Google device id) or the org unit. */
static const struct db_stmt st_outcomes = {
    "sync_outcomes",
    "SELECT json_build_object('outcome_id', o.outcome_id, 'object_kind', o.object_kind,"
    " 'source_id', o.source_id, 'email', coalesce(o.email, p.email_norm, ps.email_norm),"
    " 'outcome', o.outcome, 'reason', o.reason, 'created_at', o.created_at,"
    " 'person_id', p.person_id, 'display_name', p.display_name,"
    " 'asset_id', a.asset_id, 'serial_number', a.serial_number, 'asset_tag', a.asset_tag,"
    " 'org_unit_path', coalesce(p.org_unit_path, a.org_unit_path, ou.path))::text,"
    " o.outcome_id::text FROM run_outcomes o"
    " JOIN sync_runs s ON s.tenant_id = o.tenant_id AND s.run_id = o.run_id"
    " LEFT JOIN person_sources ps ON o.object_kind = 'person' AND ps.tenant_id = o.tenant_id"
    "   AND ps.source = s.source AND ps.source_id = o.source_id"
    " LEFT JOIN people p ON p.tenant_id = ps.tenant_id AND p.person_id = ps.person_id"
    " LEFT JOIN assets a ON o.object_kind = 'device' AND a.tenant_id = o.tenant_id"
    "   AND a.device_id = o.source_id"
    " LEFT JOIN org_units ou ON o.object_kind = 'org_unit' AND ou.tenant_id = o.tenant_id"
    "   AND ou.org_unit_id = o.source_id"
    " WHERE o.tenant_id = $1 AND o.run_id = $2::uuid AND ($5::text IS NULL OR o.outcome = $5)"
    " AND ($3::bigint IS NULL OR o.outcome_id > $3) ORDER BY o.outcome_id LIMIT $4::int"};
static const struct db_stmt st_cases = {
    "sync_cases_list",
    "SELECT " CASE_JSON "::text, m.created_at::text, m.case_id::text FROM match_cases m"
    " WHERE m.tenant_id = $1 AND ($2::text = 'all' OR m.status = $2)"
    " AND ($3::timestamptz IS NULL OR (m.created_at, m.case_id) < ($3, $4::uuid))"
    " ORDER BY m.created_at DESC, m.case_id DESC LIMIT $5::int"};
static const struct db_stmt st_case = {"sync_case_get",
                                       "SELECT " CASE_JSON "::text FROM match_cases m"
                                       " WHERE m.tenant_id = $1 AND m.case_id = $2::uuid"};
static const struct db_stmt st_person_exists = {
    "sync_person_exists", "SELECT 1 FROM people WHERE tenant_id = $1 AND person_id = $2::uuid"};
static const struct db_stmt st_settings = {
    "sync_settings",
    "SELECT json_build_object('sync_interval_seconds', t.sync_interval_seconds,"
    " 'delete_threshold_count', t.delete_threshold_count,"
    " 'delete_threshold_percent', t.delete_threshold_percent,"
    " 'pause_windows', (SELECT coalesce(json_agg(json_build_object('window_id', w.window_id,"
    "   'starts_at', w.starts_at, 'ends_at', w.ends_at, 'reason', w.reason)"
    "   ORDER BY w.starts_at), '[]') FROM pause_windows w WHERE w.tenant_id = t.tenant_id))::text"
    " FROM tenants t WHERE t.tenant_id = $1"};
static const struct db_stmt st_thresholds = {
    "sync_thresholds",
    "UPDATE tenants SET delete_threshold_count = coalesce($2::int, delete_threshold_count),"
    " delete_threshold_percent = coalesce($3::int, delete_threshold_percent)"
    " WHERE tenant_id = $1"};

static void reply_stmt(struct api_req *r, const struct db_stmt *st, const char *arg)
{
    const char *p[2] = {r->principal.tenant, arg};
    PGresult *res = rest_exec(r, st, arg ? 2 : 1, p);
    if (res)
        rest_reply_row(r, res, 200);
    PQclear(res);
}

/* 1 when the statement finds a row of this tenant, 0 (404 filled) when not, -1 on error. */
static int exists(struct api_req *r, const struct db_stmt *st, const char *id)
{
    const char *p[2] = {r->principal.tenant, id};
    PGresult *res = rest_exec(r, st, 2, p);
    if (!res)
        return -1;
    int found = PQntuples(res) > 0;
    PQclear(res);
    if (!found)
        rest_not_found(r);
    return found;
}

static void request_sync(struct api_req *r)
{
    static const char *const allowed[] = {"provider", "preview", NULL};
    json_t *body = NULL, *up = NULL;
    const char *provider = NULL;
    bool preview = false;
    char path[160];
    int rp, rv;
    if (rest_require_admin(r) || !(body = rest_json_body(r, allowed, true)) ||
        (rp = rest_field_str(r, body, "provider", 16, &provider)) < 0 ||
        (rv = rest_field_bool(r, body, "preview", &preview)) < 0)
        goto out;
    if (rp == 0 && strcmp(provider, "google") != 0 && strcmp(provider, "azure") != 0) {
        rest_error(r, 422, "invalid_field", "provider must be google, azure or null (both)");
        goto out;
    }
    if (rv == 2) {
        rest_error(r, 400, "invalid_field", "preview must be true or false");
        goto out;
    }
    up = json_pack("{s:o,s:b,s:s}", "provider", rp == 0 ? json_string(provider) : json_null(),
                   "preview", preview, "actor", r->principal.actor);
    snprintf(path, sizeof path, "/internal/tenants/%s/sync", r->principal.tenant);
    upstream_post(r, r->api->auth_url, path, up);
out:
    json_decref(body);
    json_decref(up);
}

static void list_runs(struct api_req *r)
{
    static const char *const allowed[] = {"source", "status", "limit", "cursor", NULL};
    static const char *const sources[] = {"google", "azure", NULL};
    static const char *const statuses[] = {"requested", "running",  "completed", "failed", "held",
                                           "approved",  "rejected", "expired",   NULL};
    char msg[256], source[16], status[16], lim[24], keys[2][PARAMS_CURSOR_MAX];
    bool has_cursor = false;
    long limit;
    int rs, rst;
    if (rest_check_query(r, allowed) || rest_page_params(r, "runs", 2, &limit, &has_cursor, keys))
        return;
    if ((rs = params_enum(r->query, "source", sources, source, sizeof source, msg, sizeof msg)) <
            0 ||
        (rst = params_enum(r->query, "status", statuses, status, sizeof status, msg, sizeof msg)) <
            0) {
        rest_error(r, 400, "invalid_parameter", "%s", msg);
        return;
    }
    if (has_cursor && !ids_uuid_valid(keys[1])) {
        rest_error(r, 400, "invalid_cursor", "cursor is not valid");
        return;
    }
    snprintf(lim, sizeof lim, "%ld", limit + 1);
    const char *p[6] = {r->principal.tenant,         rs == 0 ? source : NULL,
                        rst == 0 ? status : NULL,    has_cursor ? keys[0] : NULL,
                        has_cursor ? keys[1] : NULL, lim};
    PGresult *res = rest_exec(r, &st_runs, 6, p);
    if (res)
        rest_reply_page(r, res, limit, "runs", 2);
    PQclear(res);
}

static void list_outcomes(struct api_req *r, const char *run)
{
    static const char *const allowed[] = {"outcome", "limit", "cursor", NULL};
    static const char *const outcomes[] = {"skipped", "invalid", "match_case", "held_removal",
                                           NULL};
    char msg[256], lim[24], outcome[16], keys[1][PARAMS_CURSOR_MAX];
    bool has_cursor = false;
    long limit;
    int ro;
    if (rest_check_query(r, allowed) ||
        rest_page_params(r, "outcomes", 1, &limit, &has_cursor, keys))
        return;
    if ((ro = params_enum(r->query, "outcome", outcomes, outcome, sizeof outcome, msg,
                          sizeof msg)) < 0) {
        rest_error(r, 400, "invalid_parameter", "%s", msg);
        return;
    }
    if (exists(r, &st_run, run) != 1)
        return;
    snprintf(lim, sizeof lim, "%ld", limit + 1);
    const char *p[5] = {r->principal.tenant, run, has_cursor ? keys[0] : NULL, lim,
                        ro == 0 ? outcome : NULL};
    PGresult *res = rest_exec(r, &st_outcomes, 5, p);
    if (res)
        rest_reply_page(r, res, limit, "outcomes", 1);
    PQclear(res);
}

static void decide_run(struct api_req *r, const char *run, const char *decision)
{
    json_t *body = NULL, *up = NULL;
    char path[256];
    if (rest_require_admin(r) || !(body = rest_json_body(r, (const char *const[]){NULL}, true)) ||
        exists(r, &st_run, run) != 1)
        goto out;
    up = json_pack("{ss}", "admin", r->principal.actor);
    snprintf(path, sizeof path, "/internal/tenants/%s/runs/%s/%s", r->principal.tenant, run,
             decision);
    upstream_post(r, r->api->merger_url, path, up);
out:
    json_decref(body);
    json_decref(up);
}

static void list_cases(struct api_req *r)
{
    static const char *const allowed[] = {"status", "limit", "cursor", NULL};
    static const char *const statuses[] = {"open", "resolved", "dismissed", "all", NULL};
    char msg[256], status[16] = "open", lim[24], keys[2][PARAMS_CURSOR_MAX];
    bool has_cursor = false;
    long limit;
    if (rest_check_query(r, allowed) || rest_page_params(r, "cases", 2, &limit, &has_cursor, keys))
        return;
    if (params_enum(r->query, "status", statuses, status, sizeof status, msg, sizeof msg) < 0) {
        rest_error(r, 400, "invalid_parameter", "%s", msg);
        return;
    }
    if (has_cursor && !ids_uuid_valid(keys[1])) {
        rest_error(r, 400, "invalid_cursor", "cursor is not valid");
        return;
    }
    snprintf(lim, sizeof lim, "%ld", limit + 1);
    const char *p[5] = {r->principal.tenant, status, has_cursor ? keys[0] : NULL,
                        has_cursor ? keys[1] : NULL, lim};
    PGresult *res = rest_exec(r, &st_cases, 5, p);
    if (res)
        rest_reply_page(r, res, limit, "cases", 2);
    PQclear(res);
}

static void resolve_case(struct api_req *r, const char *case_id)
{
    static const char *const allowed[] = {"person_id", NULL};
    json_t *body = NULL, *up = NULL;
    const char *person = NULL;
    char path[256];
    int rp;
    if (rest_require_admin(r) || !(body = rest_json_body(r, allowed, false)) ||
        (rp = rest_field_str(r, body, "person_id", 64, &person)) < 0 ||
        exists(r, &st_case, case_id) != 1)
        goto out;
    if (rp == 1) {
        rest_error(r, 400, "missing_field", "person_id is required (null makes a new person)");
        goto out;
    }
    if (rp == 0 && !ids_uuid_valid(person)) {
        rest_error(r, 400, "invalid_field", "person_id must be a UUID or null");
        goto out;
    }
    if (rp == 0 && exists(r, &st_person_exists, person) != 1)
        goto out;
    up = json_pack("{s:o,s:s}", "person_id", rp == 0 ? json_string(person) : json_null(), "admin",
                   r->principal.actor);
    snprintf(path, sizeof path, "/internal/tenants/%s/match-cases/%s/resolve", r->principal.tenant,
             case_id);
    upstream_post(r, r->api->merger_url, path, up);
out:
    json_decref(body);
    json_decref(up);
}

/* Validate pause windows: an array of {starts_at, ends_at, reason?}. */
static int check_windows(struct api_req *r, json_t *w)
{
    static const char *const keys[] = {"starts_at", "ends_at", "reason", NULL};
    size_t i;
    json_t *o;
    if (!json_is_array(w) || json_array_size(w) > 100) {
        rest_error(r, 400, "invalid_field", "pause_windows must be an array of at most 100");
        return -1;
    }
    json_array_foreach(w, i, o)
    {
        const char *k, *s = NULL, *e = NULL, *why = NULL;
        json_t *v;
        if (!json_is_object(o)) {
            rest_error(r, 400, "invalid_field", "pause_windows[%zu] must be an object", i);
            return -1;
        }
        json_object_foreach(o, k, v)
        {
            bool ok = false;
            for (int j = 0; keys[j]; j++)
                ok |= strcmp(keys[j], k) == 0;
            if (!ok) {
                rest_error(r, 400, "unknown_field", "pause_windows[%zu]: unknown field '%.60s'", i,
                           k);
                return -1;
            }
        }
        if (rest_field_time(r, o, "starts_at", true, &s) != 0 ||
            rest_field_time(r, o, "ends_at", true, &e) != 0) {
            if (r->status == 0)
                rest_error(r, 400, "missing_field",
                           "pause_windows[%zu] needs starts_at and ends_at", i);
            return -1;
        }
        if (rest_field_str(r, o, "reason", 500, &why) < 0)
            return -1;
    }
    return 0;
}

static int int_field(struct api_req *r, json_t *body, const char *name, long long min,
                     long long max, int64_t *out)
{
    enum pjson_get g = pjson_get_int(body, name, out);
    if (g == PJSON_ABSENT)
        return 1;
    if (g != PJSON_OK || *out < min || *out > max) {
        rest_error(r, 422, "invalid_field", "%s must be an integer from %lld to %lld", name, min,
                   max);
        return -1;
    }
    return 0;
}

static void put_settings(struct api_req *r)
{
    static const char *const allowed[] = {"sync_interval_seconds", "pause_windows",
                                          "delete_threshold_count", "delete_threshold_percent",
                                          NULL};
    json_t *body = NULL, *up = NULL, *out = NULL;
    int64_t interval = 0, count = 0, percent = 0;
    char path[160], cbuf[24], pbuf[24];
    long status = 0;
    int ri, rc, rp;
    if (rest_require_admin(r) || !(body = rest_json_body(r, allowed, false)) ||
        (ri = int_field(r, body, "sync_interval_seconds", 300, 7 * 86400, &interval)) < 0 ||
        (rc = int_field(r, body, "delete_threshold_count", 0, 1000000000, &count)) < 0 ||
        (rp = int_field(r, body, "delete_threshold_percent", 0, 100, &percent)) < 0)
        goto out;
    json_t *windows = json_object_get(body, "pause_windows");
    if (windows && check_windows(r, windows))
        goto out;
    if (ri == 0 || windows) {
        up = json_pack("{ss}", "actor", r->principal.actor);
        if (ri == 0)
            json_object_set_new(up, "sync_interval_seconds", json_integer(interval));
        if (windows)
            json_object_set(up, "pause_windows", windows);
        snprintf(path, sizeof path, "/internal/tenants/%s/settings", r->principal.tenant);
        if (upstream_call(r, r->api->auth_url, "PUT", path, up, &status, &out))
            goto out;
        if (status < 200 || status >= 300) {
            upstream_reply(r, status, out);
            goto out;
        }
    }
    if (rc == 0 || rp == 0) {
        snprintf(cbuf, sizeof cbuf, "%lld", (long long)count);
        snprintf(pbuf, sizeof pbuf, "%lld", (long long)percent);
        const char *p[3] = {r->principal.tenant, rc == 0 ? cbuf : NULL, rp == 0 ? pbuf : NULL};
        PGresult *res = rest_exec(r, &st_thresholds, 3, p);
        if (!res)
            goto out;
        PQclear(res);
    }
    reply_stmt(r, &st_settings, NULL);
out:
    json_decref(body);
    json_decref(up);
    json_decref(out);
}

int sync_request(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    request_sync(r);
    return r->status;
}

int sync_settings(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    if (!rest_check_query(r, NULL))
        reply_stmt(r, &st_settings, NULL);
    return r->status;
}

int sync_put_settings(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    put_settings(r);
    return r->status;
}

int sync_runs(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    list_runs(r);
    return r->status;
}

int sync_run(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *run = rest_uuid_param(r, "run");
    if (run && !rest_check_query(r, NULL))
        reply_stmt(r, &st_run, run);
    return r->status;
}

int sync_run_outcomes(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "run");
    if (id)
        list_outcomes(r, id);
    return r->status;
}

/* The approve and reject routes: one decision on the run named in the path. */
static int run_decision(struct router_req *q, const char *decision)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "run");
    if (id)
        decide_run(r, id, decision);
    return r->status;
}

int sync_run_approve(struct router_req *q)
{
    return run_decision(q, "approve");
}

int sync_run_reject(struct router_req *q)
{
    return run_decision(q, "reject");
}

int sync_cases(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    list_cases(r);
    return r->status;
}

int sync_case(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "case");
    if (id)
        reply_stmt(r, &st_case, id);
    return r->status;
}

int sync_case_resolve(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "case");
    if (id)
        resolve_case(r, id);
    return r->status;
}
