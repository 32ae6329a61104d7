/* apply: one transaction per batch (apply.h): the consumed offsets, then the batch cut into
 * segments at each run's control events; a segment's observations are staged per kind and
 * applied by apply_people, apply_devices, apply_orgunits and apply_removals, its runs'
 * bookkeeping by apply_runs, all on one apply_ctx. */
#include "apply.h"
#include "apply_ctx.h"
#include "apply_devices.h"
#include "apply_observe.h"
#include "apply_orgunits.h"
#include "apply_people.h"
#include "apply_removals.h"
#include "apply_runs.h"
#include "asset_event.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "merge.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *apply_result_str(enum apply_result r)
{
    switch (r) {
    case APPLY_OK:
        return "ok";
    case APPLY_FENCED:
        return "fenced";
    case APPLY_CONFLICT:
        return "conflict";
    default:
        return "error";
    }
}

/* ---------------------------------------------------------------- segments */

/* Key used to keep only the last observation of one object in a segment. */
static void obj_key(char *out, size_t outlen, const char *t, const char *s, const char *id)
{
    snprintf(out, outlen, "%s\x1f%s\x1f%s", t, s, id);
}

/* Stage the observations of msgs[from, to) of one preview-ness and apply them. */
static int apply_observations(struct actx *c, const struct apply_msg *msgs, size_t from, size_t to,
                              bool preview_group, json_t *previews)
{
    int rc = -1;
    json_t *people = json_array(), *devices = json_array(), *ous = json_array();
    json_t *idx = json_object(), *removals = json_array(), *suspends = json_array();
    json_t *rmidx = json_object(); /* object key -> its removal reported in this segment */
    char key[1024];
    for (size_t i = from; i < to; i++) {
        const Envelope *env = msgs[i].env;
        if (!env)
            continue;
        json_t *pv = json_object_get(previews, env->run_id);
        bool is_preview = pv && json_is_true(json_object_get(pv, "preview"));
        bool is_delta = pv && json_is_true(json_object_get(pv, "delta"));
        if (is_preview != preview_group)
            continue;
        const char *t = env->tenant_id, *src = events_source_str(env->source), *run = env->run_id;
        const char *observed_id;
        if (observe_kind(env, &observed_id))
            actx_count_observed(c, t, run);
        if (env->payload_case == PB_PAYLOAD_PERSON_OBSERVED) {
            const Panel__V1__Person *p = env->person_observed->person;
            char norm[320];
            const char *email = p->email_normalized ? p->email_normalized : p->email;
            bool has_email = ids_email_normalize(email, norm, sizeof norm) == 0;
            obj_key(key, sizeof key, t, src, p->source_id);
            json_t *rm = json_object_get(rmidx, key);
            if (rm) { /* seen after its removal was reported: it is back */
                json_object_set_new(rm, "observed_again", json_true());
                json_object_del(rmidx, key);
            }
            /* A delta carries only what changed: without the address it still updates the
             * account we already have (people_apply skips it when we have none). */
            if (!has_email && !is_delta) {
                actx_outcome_add(c, t, run, "person", src, p->source_id, NULL, "skipped",
                                 "no usable e-mail address");
                actx_count_skipped(c, t, run);
                continue;
            }
            json_t *f = people_fields(p, has_email ? norm : NULL);
            if (merge_person_drop_invalid(f) > 0)
                log_warn_t(t, run, "%s person %s: a value out of range was left out", src,
                           p->source_id);
            json_t *cl = json_array();
            for (size_t k = 0; k < p->n_cleared_fields; k++)
                json_array_append_new(cl, json_string(p->cleared_fields[k]));
            json_t *prev = json_object_get(idx, key);
            if (prev && is_delta) { /* Graph listed the object twice: combine the deltas */
                json_t *alt = people_alt_emails(p);
                int bad = !f || !cl || !alt ||
                          merge_delta_combine(json_object_get(prev, "f"),
                                              json_object_get(prev, "cl"), f, cl) ||
                          (has_email && json_object_set_new(prev, "e", json_string(norm))) ||
                          (json_array_size(alt) > 0 && json_object_set(prev, "alt", alt));
                json_decref(alt);
                json_decref(f);
                json_decref(cl);
                if (bad)
                    goto oom;
                continue;
            }
            json_t *row = json_pack("{s:s,s:s,s:s,s:s?,s:o,s:s,s:b,s:o,s:o}", "t", t, "s", src,
                                    "id", p->source_id, "e", has_email ? norm : NULL, "f", f, "r",
                                    run, "delta", is_delta, "cl", cl, "alt", people_alt_emails(p));
            if (!row)
                goto oom;
            if (prev) { /* a later full observation replaces the earlier one */
                json_object_update(prev, row);
                json_decref(row);
                continue;
            }
            json_object_set_new(row, "i", json_integer((json_int_t)json_array_size(people)));
            json_object_set(idx, key, row);
            json_array_append_new(people, row);
        } else if (env->payload_case == PB_PAYLOAD_DEVICE_OBSERVED ||
                   env->payload_case == PB_PAYLOAD_ORG_UNIT_OBSERVED) {
            bool dev = env->payload_case == PB_PAYLOAD_DEVICE_OBSERVED;
            const ProtobufCMessage *m =
                dev ? &env->device_observed->device->base : &env->org_unit_observed->org_unit->base;
            const char *id = dev ? env->device_observed->device->device_id
                                 : env->org_unit_observed->org_unit->org_unit_id;
            json_t *f = events_to_json_value(m);
            if (!f)
                goto oom;
            json_t *row = json_pack("{s:s,s:s,s:o,s:s}", "t", t, "id", id, "f", f, "r", run);
            if (dev) {
                const Panel__V1__Device *d = env->device_observed->device;
                char aue[11];
                json_object_set_new(
                    row, "aue", asset_auto_update_expiry(d, aue) ? json_string(aue) : json_null());
                /* the lifecycle Google's status gives a new asset (docs/sources.md) */
                const char *lc = asset_status_lifecycle(d->status);
                json_object_set_new(row, "lc", json_string(lc ? lc : "in_storage"));
                json_object_set_new(row, "ls",
                                    observe_date(d->last_sync, true) ? json_string(d->last_sync)
                                                                     : json_null());
            }
            obj_key(key, sizeof key, t, dev ? "device" : "org_unit", id);
            json_t *arr = dev ? devices : ous, *prev = json_object_get(idx, key);
            if (prev) {
                json_object_update(prev, row);
                json_decref(row);
                continue;
            }
            json_object_set_new(row, "i", json_integer((json_int_t)json_array_size(arr)));
            json_object_set(idx, key, row);
            json_array_append_new(arr, row);
        } else if (env->payload_case == PB_PAYLOAD_OBJECT_REMOVED) {
            const Panel__V1__ObjectRemoved *o = env->object_removed;
            const char *k = o->kind == PB_OBJECT_KIND_PERSON   ? "person"
                            : o->kind == PB_OBJECT_KIND_DEVICE ? "device"
                                                               : "org_unit";
            bool changed = o->reason == PB_REMOVAL_REASON_CHANGED;
            json_t *rm = removals_row(&(struct removal){.tenant_id = t,
                                                        .object_kind = k,
                                                        .source = src,
                                                        .source_id = o->source_id,
                                                        .run_id = run});
            if (!rm || json_array_append_new(changed ? suspends : removals, rm))
                goto oom;
            if (strcmp(k, "person") == 0) {
                obj_key(key, sizeof key, t, src, o->source_id);
                json_t *old = json_object_get(rmidx, key);
                if (old) /* the later report is the one that counts */
                    json_object_set_new(old, "observed_again", json_true());
                json_object_set(rmidx, key, rm);
            }
        }
    }
    if (people_apply(c, people) || devices_apply(c, devices) || orgunits_apply(c, ous))
        goto out;
    /* Reported deletions (Azure delta) wait for the run's RunCompleted, which applies them
     * through the deletion threshold (run_completed); a failed run drops them. */
    for (size_t i = 0; i < json_array_size(removals); i++) {
        json_t *o = json_array_get(removals, i);
        actx_count_seen(c, json_string_value(json_object_get(o, "tenant_id")),
                        json_string_value(json_object_get(o, "run_id")));
    }
    if (json_array_size(removals) > 0) {
        PGresult *r = actx_query_json(
            c,
            "INSERT INTO run_reported_removals (tenant_id, run_id, object_kind, source,"
            " source_id) SELECT v.tenant_id, v.run_id, v.object_kind, v.source, v.source_id"
            " FROM jsonb_to_recordset($1::jsonb) AS v(tenant_id text, run_id uuid,"
            " object_kind text, source text, source_id text, observed_again boolean)"
            " WHERE v.observed_again IS NOT TRUE ON CONFLICT DO NOTHING",
            removals, PGRES_COMMAND_OK);
        if (!r)
            goto out;
        PQclear(r);
    }
    /* Soft deletes (Azure "changed") suspend at once: nothing is removed. One set-based pass
     * per run, so that the events carry the run id. */
    json_t *groups = json_object();
    for (size_t i = 0; i < json_array_size(suspends); i++) {
        json_t *o = json_array_get(suspends, i);
        const char *t = json_string_value(json_object_get(o, "tenant_id"));
        const char *run = json_string_value(json_object_get(o, "run_id"));
        actx_count_seen(c, t, run);
        if (json_is_true(json_object_get(o, "observed_again")))
            continue; /* observed again later in the segment */
        snprintf(key, sizeof key, "%s\x1f%s", t, run);
        json_t *g = json_object_get(groups, key);
        if (!g) {
            g = json_pack("{s:s,s:s,s:[]}", "t", t, "r", run, "list");
            json_object_set_new(groups, key, g);
        }
        json_array_append(json_object_get(g, "list"), o);
    }
    const char *gk;
    json_t *g;
    int e = 0;
    json_object_foreach(groups, gk, g)
    {
        long suspended = 0;
        e = removals_apply(c, json_object_get(g, "list"),
                           json_string_value(json_object_get(g, "r")), true, &suspended);
        if (e)
            break;
    }
    json_decref(groups);
    if (e)
        goto out;
    rc = 0;
    goto out;
oom:
    snprintf(c->err, c->errlen, "out of memory staging observations");
out:
    json_decref(people);
    json_decref(devices);
    json_decref(ous);
    json_decref(idx);
    json_decref(removals);
    json_decref(suspends);
    json_decref(rmidx);
    return rc;
}

/* run_seen rows of a preview group, kept after its savepoint is rolled back. */
static int preview_seen(struct actx *c, const struct apply_msg *msgs, size_t from, size_t to,
                        json_t *previews)
{
    json_t *rows = json_array();
    for (size_t i = from; i < to; i++) {
        const Envelope *env = msgs[i].env;
        json_t *pv = env ? json_object_get(previews, env->run_id) : NULL;
        if (!pv || !json_is_true(json_object_get(pv, "preview")))
            continue;
        const char *id, *k = observe_kind(env, &id);
        if (k)
            json_array_append_new(rows, json_pack("{s:s,s:s,s:s,s:s}", "t", env->tenant_id, "r",
                                                  env->run_id, "k", k, "id", id));
    }
    int rc = 0;
    if (json_array_size(rows) > 0) {
        PGresult *r =
            actx_query_json(c,
                            "INSERT INTO run_seen (tenant_id, run_id, object_kind, source_id)"
                            " SELECT t, r, k, id FROM jsonb_to_recordset($1::jsonb)"
                            " AS v(t text, r uuid, k text, id text) ON CONFLICT DO NOTHING",
                            rows, PGRES_COMMAND_OK);
        rc = r ? 0 : -1;
        PQclear(r);
    }
    json_decref(rows);
    return rc;
}

/* A dead-lettered envelope whose tenant, run and source are valid: its run can learn of it. */
static bool dead_names_its_run(const Envelope *dead)
{
    return dead && ids_tenant_valid(dead->tenant_id) && ids_uuid_valid(dead->run_id) &&
           (dead->source == PB_SOURCE_GOOGLE || dead->source == PB_SOURCE_AZURE);
}

static int apply_segment(struct actx *c, const struct apply_msg *msgs, size_t from, size_t to)
{
    int rc = -1;
    json_t *previews = json_object();
    bool any_preview = false;
    /* Runs of this segment: make sure their rows exist, learn preview / delta. */
    for (size_t i = from; i < to; i++) {
        const Envelope *env = msgs[i].env, *dead = msgs[i].dead;
        if (!env && dead_names_its_run(dead)) {
            /* A dead-lettered observation: its run is incomplete and says which object. */
            const char *id, *k = observe_kind(dead, &id);
            if (k) {
                char idbuf[257];
                snprintf(idbuf, sizeof idbuf, "%s", id ? id : "");
                if (runs_ensure(c, dead, NULL))
                    goto out;
                actx_outcome_add(c, dead->tenant_id, dead->run_id, k,
                                 events_source_str(dead->source),
                                 id && ids_utf8_valid(idbuf, strlen(idbuf)) ? idbuf : NULL, NULL,
                                 "invalid", msgs[i].dead_reason ? msgs[i].dead_reason : "invalid");
                actx_count_skipped(c, dead->tenant_id, dead->run_id);
                actx_count_observed(c, dead->tenant_id, dead->run_id); /* though not applied */
            }
            continue;
        }
        if (!env || json_object_get(previews, env->run_id))
            continue;
        struct run_info ri;
        if (runs_ensure(c, env, NULL) || runs_info(c, env->tenant_id, env->run_id, &ri))
            goto out;
        json_object_set_new(previews, env->run_id,
                            json_pack("{s:b,s:b}", "preview", ri.preview, "delta", ri.delta));
        any_preview |= ri.preview;
    }
    if (apply_observations(c, msgs, from, to, false, previews) || actx_flush_outbox(c))
        goto out;
    if (any_preview) {
        /* Same code, then the savepoint goes: only counts and what was seen remain. */
        if (pgx_exec(c->pg, "SAVEPOINT preview", c->err, c->errlen) ||
            apply_observations(c, msgs, from, to, true, previews) ||
            pgx_exec(c->pg, "ROLLBACK TO SAVEPOINT preview", c->err, c->errlen))
            goto out;
        outbox_batch_clear(c->outbox);
        if (preview_seen(c, msgs, from, to, previews))
            goto out;
    }
    if (actx_flush_outcomes(c) || actx_flush_counts(c))
        goto out;
    rc = 0;
out:
    json_decref(previews);
    return rc;
}

/* A run's end that was dead-lettered, of a run it names: its run fails (runs_end_refused). */
static bool is_refused_end(const struct apply_msg *m)
{
    return !m->env && dead_names_its_run(m->dead) &&
           (m->dead->payload_case == PB_PAYLOAD_RUN_COMPLETED ||
            m->dead->payload_case == PB_PAYLOAD_RUN_FAILED);
}

static bool is_control(const struct apply_msg *m)
{
    const Envelope *env = m->env;
    return (env && (env->payload_case == PB_PAYLOAD_RUN_STARTED ||
                    env->payload_case == PB_PAYLOAD_RUN_COMPLETED ||
                    env->payload_case == PB_PAYLOAD_RUN_FAILED)) ||
           is_refused_end(m);
}

static int apply_control(struct actx *c, const struct apply_msg *m)
{
    const Envelope *env = m->env;
    int rc;
    if (!env) { /* is_refused_end */
        rc = runs_ensure(c, m->dead, NULL) ||
             runs_end_refused(c, m->dead, m->dead_reason ? m->dead_reason : "invalid");
        return rc || actx_flush_outbox(c) || actx_flush_outcomes(c);
    }
    switch (env->payload_case) {
    case PB_PAYLOAD_RUN_STARTED:
        return runs_ensure(c, env, "running");
    case PB_PAYLOAD_RUN_COMPLETED:
        rc = runs_ensure(c, env, NULL) || runs_completed(c, env, m->partition);
        break;
    default:
        rc = runs_ensure(c, env, NULL) || runs_failed(c, env, m->partition);
        break;
    }
    if (rc == 0)
        rc = actx_flush_outbox(c) || actx_flush_outcomes(c);
    return rc;
}

/* ---------------------------------------------------------------- batch */

static int store_offsets(struct actx *c, const char *group, const char *topic,
                         const struct apply_msg *msgs, size_t n, bool *fenced)
{
    int rc = -1;
    json_t *parts = json_object();
    PGresult *r = NULL;
    char k[16];
    for (size_t i = 0; i < n; i++) {
        snprintf(k, sizeof k, "%d", (int)msgs[i].partition);
        json_t *p = json_object_get(parts, k);
        if (!p) {
            p = json_pack("{s:i,s:I,s:I}", "p", (int)msgs[i].partition, "first",
                          (json_int_t)msgs[i].offset, "next", (json_int_t)msgs[i].offset + 1);
            json_object_set_new(parts, k, p);
        } else
            json_object_set_new(p, "next", json_integer((json_int_t)msgs[i].offset + 1));
    }
    json_t *arr = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(parts, key, v) json_array_append(arr, v);
    char *text = pjson_dump_compact(arr);
    const char *params[3] = {group, topic, text};
    /* Fencing: another member that owned a partition meanwhile may have stored further. */
    r = actx_query(c,
                   "SELECT count(*) FROM consumer_offsets o JOIN jsonb_to_recordset($3::jsonb)"
                   " AS v(p int, first bigint, next bigint) ON o.partition = v.p"
                   " WHERE o.group_id = $1 AND o.topic = $2 AND o.next_offset > v.first",
                   3, params, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    *fenced = col_i64(r, 0, 0) > 0;
    PQclear(r);
    r = NULL;
    if (*fenced) {
        snprintf(c->err, c->errlen, "partition offsets already advanced by another member");
        goto out;
    }
    rc = actx_cmd(c,
                  "INSERT INTO consumer_offsets AS o (group_id, topic, partition, next_offset)"
                  " SELECT $1, $2, v.p, v.next FROM jsonb_to_recordset($3::jsonb)"
                  " AS v(p int, first bigint, next bigint)"
                  " ON CONFLICT (group_id, topic, partition) DO UPDATE SET"
                  " next_offset = EXCLUDED.next_offset, updated_at = now()",
                  3, params);
out:
    PQclear(r);
    free(text);
    json_decref(arr);
    json_decref(parts);
    return rc;
}

enum apply_result apply_batch(PGconn *pg, const char *group, const char *topic,
                              const struct apply_msg *msgs, size_t n, struct apply_stats *stats,
                              char *err, size_t errlen)
{
    enum apply_result res = APPLY_ERROR;
    bool fenced = false;
    const Envelope **envs = NULL;
    struct actx *c = actx_new(pg, err, errlen);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return APPLY_ERROR;
    }
    err[0] = '\0';
    if (actx_begin(c))
        goto out;
    /* Offsets first: a fenced batch stops before doing any work. */
    if (store_offsets(c, group, topic, msgs, n, &fenced))
        goto rollback;
    /* Then every address lock of the batch, before any row lock (the run row, People). */
    envs = calloc(n ? n : 1, sizeof *envs);
    if (!envs) {
        snprintf(err, errlen, "out of memory");
        goto rollback;
    }
    for (size_t i = 0; i < n; i++)
        envs[i] = msgs[i].env;
    if (people_lock_batch(c, envs, n))
        goto rollback;
    size_t seg = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !is_control(&msgs[i]))
            continue;
        if (i > seg && apply_segment(c, msgs, seg, i))
            goto rollback;
        if (i < n && apply_control(c, &msgs[i]))
            goto rollback;
        seg = i + 1;
    }
    if (actx_commit(c))
        goto out;
    if (stats) {
        stats->events = (long)n;
        stats->rows_changed = c->rows_changed;
    }
    res = APPLY_OK;
    goto out;
rollback:
    actx_rollback(c);
    if (fenced)
        res = APPLY_FENCED;
    else if (c->conflict)
        res = APPLY_CONFLICT;
out:
    free(envs);
    actx_free(c);
    return res;
}
