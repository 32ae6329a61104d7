/* apply_runs: see apply_runs.h. */
#include "apply_runs.h"
#include "apply_ctx.h"
#include "apply_removals.h"
#include "buf.h"
#include "json.h"
#include "merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *kind_str(Panel__V1__RunKind k)
{
    return k == PB_RUN_KIND_DELTA ? "delta" : "full";
}

int runs_ensure(struct actx *c, const Envelope *env, const char *status)
{
    const char *kind = "full", *reason = "", *preview = "false";
    if (env->payload_case == PB_PAYLOAD_RUN_STARTED) {
        kind = kind_str(env->run_started->kind);
        reason = env->run_started->reason ? env->run_started->reason : "";
        preview = env->run_started->preview ? "true" : "false";
    }
    const char *params[7] = {
        env->tenant_id, env->run_id, events_source_str(env->source), kind, preview, reason, status};
    if (actx_cmd(c, "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", 1,
                 params))
        return -1;
    /* RunStarted: a row auth created stays, and becomes running; so does one auth expired
     * (a fetcher started it late after all: what happens now is what the admin sees). */
    if (status)
        return actx_cmd(
            c,
            "INSERT INTO sync_runs AS s (tenant_id, run_id, source, kind, preview, reason,"
            " status, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now())"
            " ON CONFLICT (tenant_id, run_id) DO UPDATE SET kind = EXCLUDED.kind,"
            " preview = s.preview OR EXCLUDED.preview,"
            " reason = CASE WHEN s.reason = '' THEN EXCLUDED.reason ELSE s.reason END,"
            " status = CASE WHEN s.status IN ('requested', 'expired') THEN 'running'"
            " ELSE s.status END,"
            " failure_reason = CASE WHEN s.status = 'expired' THEN NULL"
            " ELSE s.failure_reason END,"
            " message = CASE WHEN s.status = 'expired' THEN NULL ELSE s.message END,"
            " finished_at = CASE WHEN s.status = 'expired' THEN NULL ELSE s.finished_at END,"
            " started_at = coalesce(s.started_at, now())",
            7, params);
    return actx_cmd(c,
                    "INSERT INTO sync_runs (tenant_id, run_id, source, status, started_at)"
                    " VALUES ($1, $2, $3, 'running', now()) ON CONFLICT DO NOTHING",
                    3, params);
}

int runs_info(struct actx *c, const char *tenant, const char *run, struct run_info *ri)
{
    const char *params[2] = {tenant, run};
    PGresult *r =
        actx_query(c,
                   "SELECT preview, kind = 'delta', status IN ('requested', 'running', 'expired')"
                   " FROM sync_runs WHERE tenant_id = $1 AND run_id = $2",
                   2, params, PGRES_TUPLES_OK);
    if (!r)
        return -1;
    memset(ri, 0, sizeof *ri);
    if (PQntuples(r) == 1) {
        ri->found = true;
        ri->preview = col_bool(r, 0, 0);
        ri->delta = col_bool(r, 0, 1);
        ri->open = col_bool(r, 0, 2);
    }
    PQclear(r);
    return 0;
}

/* The barrier of runs_end_reached for an open run. */
static int runs_end_barrier(struct actx *c, const Envelope *env, int32_t partition, uint32_t count)
{
    if (count <= 1)
        return 1;
    char part[16], cnt[16];
    snprintf(part, sizeof part, "%d", (int)partition);
    snprintf(cnt, sizeof cnt, "%u", (unsigned)count);
    const char *params[3] = {env->tenant_id, env->run_id, part};
    /* The run row's lock orders the members that apply copies of one run's end: the second
     * one counts after the first has committed (NO KEY: observations' sightings, which only
     * reference the row, do not wait). */
    PGresult *r = actx_query(c,
                             "SELECT 1 FROM sync_runs WHERE tenant_id = $1 AND run_id = $2"
                             " FOR NO KEY UPDATE",
                             2, params, PGRES_TUPLES_OK);
    if (!r)
        return -1;
    PQclear(r);
    if (actx_cmd(c,
                 "INSERT INTO run_partition_ends (tenant_id, run_id, partition)"
                 " VALUES ($1, $2, $3::int) ON CONFLICT DO NOTHING",
                 3, params))
        return -1;
    r = actx_query(c,
                   "SELECT count(*) >= $3::int FROM run_partition_ends WHERE tenant_id = $1"
                   " AND run_id = $2 AND partition < $3::int",
                   3, (const char *[]){env->tenant_id, env->run_id, cnt}, PGRES_TUPLES_OK);
    if (!r)
        return -1;
    int passed = col_bool(r, 0, 0) ? 1 : 0;
    PQclear(r);
    return passed;
}

int runs_end_reached(struct actx *c, const Envelope *env, int32_t partition, uint32_t count,
                     struct run_info *ri)
{
    if (runs_info(c, env->tenant_id, env->run_id, ri))
        return -1;
    if (!ri->found || !ri->open)
        return 0;
    return runs_end_barrier(c, env, partition, count);
}

/* A finished run's sightings and reported removals are of no more use: params are the
 * tenant and the run. */
static int runs_forget_sightings(struct actx *c, const char *const params[2])
{
    return actx_cmd(c, "DELETE FROM run_seen WHERE tenant_id = $1 AND run_id = $2", 2, params) ||
           actx_cmd(c, "DELETE FROM run_reported_removals WHERE tenant_id = $1 AND run_id = $2", 2,
                    params) ||
           actx_cmd(c, "DELETE FROM run_partition_ends WHERE tenant_id = $1 AND run_id = $2", 2,
                    params);
}

/* RunCompleted: remove (or hold) what a full run did not see, or what a delta run reported
 * deleted. The kind is the one RunCompleted reports (a delta run that fell back to a full
 * listing completes as full), and it is stored as the run's kind. */
int runs_completed(struct actx *c, const Envelope *env, int32_t partition)
{
    int rc = -1;
    PGresult *r = NULL;
    json_t *list = json_array(), *counts = NULL;
    struct run_info ri;
    const char *t = env->tenant_id, *run = env->run_id, *src = events_source_str(env->source);
    long n[3] = {0, 0, 0}, total[3] = {0, 0, 0}, removed = 0, max_count = 500;
    int max_pct = 10;
    int64_t incomplete = 0;
    bool held = false;
    struct buf b;
    buf_init(&b, 64 * 1024);
    const Panel__V1__RunCompleted *rcm = env->run_completed;
    int passed = runs_end_reached(c, env, partition, rcm->partition_count, &ri);
    if (passed <= 0) { /* -1: error; 0: nothing to end yet */
        rc = passed;
        goto out;
    }
    if (rcm->counts && events_to_json(&rcm->counts->base, &b))
        goto out;
    bool full = rcm->has_kind && rcm->kind != PB_RUN_KIND_UNSPECIFIED
                    ? rcm->kind == PB_RUN_KIND_FULL
                    : !ri.delta;
    const char *params[3] = {t, src, run};
    if (actx_cmd(c, "UPDATE sync_runs SET kind = $3 WHERE tenant_id = $1 AND run_id = $2", 3,
                 (const char *[]){t, run, full ? "full" : "delta"}))
        goto out;
    if (!full) {
        /* what the run reported deleted, still there */
        r = actx_query(
            c,
            "SELECT x.object_kind, x.source_id FROM run_reported_removals x"
            " WHERE x.tenant_id = $1 AND x.source = $2 AND x.run_id = $3::uuid AND CASE"
            " x.object_kind WHEN 'person' THEN EXISTS (SELECT 1 FROM person_sources ps"
            "  WHERE ps.tenant_id = x.tenant_id AND ps.source = x.source"
            "  AND ps.source_id = x.source_id AND ps.removed_at IS NULL)"
            " WHEN 'device' THEN EXISTS (SELECT 1 FROM assets a WHERE a.tenant_id = x.tenant_id"
            "  AND a.device_id = x.source_id AND a.in_google)"
            " ELSE EXISTS (SELECT 1 FROM org_units o WHERE o.tenant_id = x.tenant_id"
            "  AND o.org_unit_id = x.source_id AND o.removed_at IS NULL) END"
            " ORDER BY x.object_kind, x.source_id",
            3, params, PGRES_TUPLES_OK);
    } else {
        r = actx_query(
            c,
            /* EXCEPT (a hash set operation) whatever the statistics of run_seen say */
            "(SELECT 'person' AS k, ps.source_id FROM person_sources ps WHERE ps.tenant_id = $1"
            " AND ps.source = $2 AND ps.removed_at IS NULL"
            " EXCEPT SELECT 'person', x.source_id FROM run_seen x WHERE x.tenant_id = $1"
            " AND x.run_id = $3::uuid AND x.object_kind = 'person')"
            " UNION ALL (SELECT 'device', a.device_id FROM assets a WHERE $2 = 'google'"
            " AND a.tenant_id = $1 AND a.device_id IS NOT NULL AND a.in_google"
            " EXCEPT SELECT 'device', x.source_id FROM run_seen x WHERE x.tenant_id = $1"
            " AND x.run_id = $3::uuid AND x.object_kind = 'device')"
            " UNION ALL (SELECT 'org_unit', o.org_unit_id FROM org_units o WHERE $2 = 'google'"
            " AND o.tenant_id = $1 AND o.removed_at IS NULL"
            " EXCEPT SELECT 'org_unit', x.source_id FROM run_seen x WHERE x.tenant_id = $1"
            " AND x.run_id = $3::uuid AND x.object_kind = 'org_unit')",
            3, params, PGRES_TUPLES_OK);
    }
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *k = col_str(r, i, 0);
        n[k[0] == 'p' ? 0 : k[0] == 'd' ? 1 : 2]++;
        json_array_append_new(
            list,
            removals_row(&(struct removal){
                .tenant_id = t, .object_kind = k, .source = src, .source_id = col_str(r, i, 1)}));
    }
    PQclear(r);
    r = NULL;
    if (json_array_size(list) > 0) {
        /* the same threshold for a full run's and a delta run's removals */
        r = actx_query(
            c,
            "SELECT (SELECT count(*) FROM person_sources WHERE tenant_id = $1 AND source = $2"
            " AND removed_at IS NULL),"
            " (SELECT count(*) FROM assets WHERE tenant_id = $1 AND device_id IS NOT NULL"
            " AND in_google),"
            " (SELECT count(*) FROM org_units WHERE tenant_id = $1 AND removed_at IS NULL),"
            " t.delete_threshold_count, t.delete_threshold_percent"
            " FROM tenants t WHERE t.tenant_id = $1",
            2, params, PGRES_TUPLES_OK);
        if (!r)
            goto out;
        if (PQntuples(r) == 1) {
            for (int k = 0; k < 3; k++)
                total[k] = (long)col_i64(r, 0, k);
            max_count = (long)col_i64(r, 0, 3);
            max_pct = (int)col_i64(r, 0, 4);
        }
        PQclear(r);
        r = NULL;
        for (int k = 0; k < 3; k++)
            held |= merge_threshold_exceeded(n[k], total[k], max_count, max_pct);
    }
    if (full && json_array_size(list) > 0) {
        /* Objects the fetcher skipped, that were dead-lettered, or whose events never reached
         * the merger are unseen too: deleting them would be a guess, so such a run's removals
         * wait for an admin. */
        r = actx_query(
            c,
            "SELECT (SELECT count(*) FROM run_outcomes WHERE tenant_id = $1"
            " AND run_id = $2::uuid AND outcome = 'invalid'),"
            " (SELECT observed FROM sync_runs WHERE tenant_id = $1 AND run_id = $2::uuid)",
            2, (const char *[]){t, run}, PGRES_TUPLES_OK);
        if (!r)
            goto out;
        const Panel__V1__RunCounts *rc_counts = rcm->counts;
        long invalid = (long)col_i64(r, 0, 0), received = (long)col_i64(r, 0, 1);
        long skipped = rc_counts && rc_counts->has_skipped ? (long)rc_counts->skipped : 0;
        long reported =
            rc_counts ? (long)(rc_counts->people + rc_counts->org_units + rc_counts->devices) : 0;
        PQclear(r);
        r = NULL;
        if (merge_run_incomplete(reported, received, skipped, invalid)) {
            held = true;
            incomplete = invalid + skipped + (received < reported ? reported - received : 0);
        }
    }
    long nlist = (long)json_array_size(list);
    char nbuf[32], rbuf[32];
    if (ri.preview) {
        json_t *report = json_pack("{s:{s:I,s:I,s:I},s:b}", "would_remove", "people",
                                   (json_int_t)n[0], "devices", (json_int_t)n[1], "org_units",
                                   (json_int_t)n[2], "would_hold", held);
        char *rep = pjson_dump_compact(report);
        json_decref(report);
        const char *params[4] = {t, run, b.data ? b.data : "{}", rep};
        rc = actx_cmd(
            c,
            "UPDATE sync_runs SET status = 'completed', finished_at = now(),"
            " fetched_counts = $3::jsonb, report = jsonb_build_object('would_create', created,"
            " 'would_update', updated, 'unchanged', unchanged, 'seen', seen,"
            " 'skipped', skipped, 'match_cases', match_cases) || $4::jsonb"
            " WHERE tenant_id = $1 AND run_id = $2",
            4, params);
        free(rep);
    } else if (held) {
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *o = json_array_get(list, i);
            actx_outcome_add(c, t, run, json_string_value(json_object_get(o, "object_kind")), src,
                             json_string_value(json_object_get(o, "source_id")), NULL,
                             "held_removal",
                             "deletion threshold exceeded: waiting for an admin's approval");
        }
        char msg[200];
        if (incomplete > 0)
            snprintf(msg, sizeof msg,
                     "run incomplete (%lld objects skipped, invalid or not received): removals "
                     "wait for an admin's approval",
                     (long long)incomplete);
        else
            snprintf(msg, sizeof msg, "deletions exceed the threshold; approve or reject");
        snprintf(nbuf, sizeof nbuf, "%ld", nlist);
        const char *params[5] = {t, run, b.data ? b.data : "{}", nbuf, msg};
        rc = actx_flush_outcomes(c) ||
             actx_cmd(c,
                      "UPDATE sync_runs SET status = 'held', finished_at = now(),"
                      " fetched_counts = $3::jsonb, pending_removals = $4::bigint, message = $5"
                      " WHERE tenant_id = $1 AND run_id = $2",
                      5, params);
    } else {
        if (nlist > 0 && removals_apply(c, list, run, false, &removed))
            goto out;
        snprintf(rbuf, sizeof rbuf, "%ld", removed);
        const char *params[4] = {t, run, b.data ? b.data : "{}", rbuf};
        rc = actx_cmd(c,
                      "UPDATE sync_runs SET status = 'completed', finished_at = now(),"
                      " fetched_counts = $3::jsonb, removed = removed + $4::bigint"
                      " WHERE tenant_id = $1 AND run_id = $2",
                      4, params);
    }
    if (rc == 0 && full && !ri.preview) {
        /* A newer complete listing supersedes older held deletions of the same source: they
         * are decided again from this run's view. */
        const char *params[3] = {t, src, run};
        rc = actx_cmd(
            c,
            "UPDATE sync_runs SET status = 'rejected', pending_removals = 0,"
            " decided_by = 'merger', decided_at = now(),"
            " message = 'superseded by the newer complete run ' || $3"
            " WHERE tenant_id = $1 AND source = $2 AND status = 'held' AND run_id <> $3::uuid",
            3, params);
    }
    if (rc == 0) {
        const char *params[2] = {t, run};
        rc = runs_forget_sightings(c, params);
    }
out:
    PQclear(r);
    json_decref(list);
    json_decref(counts);
    buf_free(&b);
    return rc;
}

/* The open run of env fails and deletes nothing: what it saw is forgotten. reason: a
 * RunFailureReason's name, stored as the short code admins see ("revoked", "throttled", ...),
 * or such a code itself; listings: a JSON array of the listings the provider refused (what
 * the connection then says is missing). 0 or -1. */
static int runs_fail(struct actx *c, const Envelope *env, const char *reason, const char *message,
                     const char *listings)
{
    const char *params[5] = {env->tenant_id, env->run_id, reason, message, listings};
    return actx_cmd(c,
                    "UPDATE sync_runs SET status = 'failed', finished_at = now(),"
                    " failure_reason = lower(regexp_replace($3, '^RUN_FAILURE_REASON_', '')),"
                    " message = $4,"
                    " forbidden_listings = ARRAY(SELECT jsonb_array_elements_text($5::jsonb))"
                    " WHERE tenant_id = $1 AND run_id = $2"
                    " AND status IN ('requested', 'running', 'expired')",
                    5, params) ||
           runs_forget_sightings(c, params);
}

#define FORBIDDEN_LISTINGS_MAX   8
#define FORBIDDEN_LISTING_MAXLEN 64

int runs_failed(struct actx *c, const Envelope *env, int32_t partition)
{
    const Panel__V1__RunFailed *f = env->run_failed;
    struct run_info ri;
    int passed = runs_end_reached(c, env, partition, f->partition_count, &ri);
    if (passed <= 0)
        return passed;
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value(&panel__v1__run_failure_reason__descriptor, f->reason);
    /* The refused listings (a handful of short names from the fetcher; more is not kept). */
    json_t *forbidden = json_array();
    for (size_t i = 0; forbidden && i < f->n_forbidden_listings && i < FORBIDDEN_LISTINGS_MAX; i++)
        if (strlen(f->forbidden_listings[i]) <= FORBIDDEN_LISTING_MAXLEN)
            json_array_append_new(forbidden, json_string(f->forbidden_listings[i]));
    char *listings = forbidden ? pjson_dump_compact(forbidden) : NULL;
    json_decref(forbidden);
    if (!listings) {
        snprintf(c->err, c->errlen, "out of memory");
        return -1;
    }
    int rc = runs_fail(c, env, ev ? ev->name : "RUN_FAILURE_REASON_UNSPECIFIED",
                       f->message ? f->message : "", listings);
    free(listings);
    return rc;
}

int runs_end_refused(struct actx *c, const Envelope *env, const char *why)
{
    char msg[512];
    snprintf(msg, sizeof msg, "the run's end was refused (dead-lettered): %s", why);
    return runs_fail(c, env, "invalid_end", msg, "[]");
}
