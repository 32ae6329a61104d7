/* apply_ctx: see apply_ctx.h. */
#include "apply_ctx.h"
#include "crypto.h"
#include "json.h"
#include "log.h"
#include "merge.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A context for one transaction; NULL when out of memory. Free with actx_free. */
struct actx *actx_new(PGconn *pg, char *err, size_t errlen)
{
    struct actx *c = calloc(1, sizeof(struct actx));
    if (!c)
        return NULL;
    c->pg = pg;
    c->err = err;
    c->errlen = errlen;
    c->outbox = outbox_batch_new();
    c->outcomes = json_array();
    buf_init(&c->dump, PJSON_DUMP_MAX_BYTES);
    if (!c->outbox || !c->outcomes) {
        outbox_batch_free(c->outbox);
        json_decref(c->outcomes);
        free(c);
        return NULL;
    }
    return c;
}

void actx_free(struct actx *c)
{
    if (!c)
        return;
    outbox_batch_free(c->outbox);
    json_decref(c->outcomes);
    buf_free(&c->dump);
    free(c);
}

PGresult *actx_query(struct actx *c, const char *sql, int n, const char *const *params,
                     ExecStatusType want)
{
    PGresult *r = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
    if (!pgx_ok(r, want, c->err, c->errlen)) {
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        /* 40P01 deadlock_detected, 40001 serialization_failure */
        if (state && (!strcmp(state, "40P01") || !strcmp(state, "40001")))
            c->conflict = true;
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Run sql with one JSON parameter; returns the result (tuples or command). */
PGresult *actx_query_json(struct actx *c, const char *sql, const json_t *arr, ExecStatusType want)
{
    buf_reset(&c->dump);
    if (pjson_dump_compact_into(arr, &c->dump) || !c->dump.data) {
        snprintf(c->err, c->errlen, "out of memory serialising a batch");
        return NULL;
    }
    const char *params[1] = {c->dump.data};
    return actx_query(c, sql, 1, params, want);
}

int actx_cmd(struct actx *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = actx_query(c, sql, n, params, PGRES_COMMAND_OK);
    PQclear(r);
    return r ? 0 : -1;
}

struct run_counts *actx_run_counts(struct actx *c, const char *tenant, const char *run)
{
    for (size_t i = 0; i < c->nruns; i++)
        if (strcmp(c->runs[i].run_id, run) == 0 && strcmp(c->runs[i].tenant, tenant) == 0)
            return &c->runs[i];
    if (c->nruns == MAX_RUNS)
        return NULL;
    struct run_counts *rc = &c->runs[c->nruns++];
    memset(rc, 0, sizeof *rc);
    snprintf(rc->tenant, sizeof rc->tenant, "%s", tenant);
    snprintf(rc->run_id, sizeof rc->run_id, "%s", run);
    return rc;
}

void actx_count_seen(struct actx *c, const char *tenant, const char *run)
{
    struct run_counts *rc = run ? actx_run_counts(c, tenant, run) : NULL;
    if (rc)
        rc->seen++;
}

void actx_count_observed(struct actx *c, const char *tenant, const char *run)
{
    struct run_counts *rc = run ? actx_run_counts(c, tenant, run) : NULL;
    if (rc)
        rc->observed++;
}

void actx_count_skipped(struct actx *c, const char *tenant, const char *run)
{
    struct run_counts *rc = run ? actx_run_counts(c, tenant, run) : NULL;
    if (rc) {
        rc->seen++;
        rc->skipped++;
    }
}

void actx_count_applied(struct actx *c, const char *tenant, const char *run, bool changed,
                        bool isnew)
{
    struct run_counts *rc = run ? actx_run_counts(c, tenant, run) : NULL;
    if (!rc)
        return;
    rc->seen++;
    if (!changed)
        rc->unchanged++;
    else if (isnew)
        rc->created++;
    else
        rc->updated++;
}

json_t *run_counts_row(const struct run_counts *r)
{
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "tenant_id", r->tenant, "run_id",
                     r->run_id, "seen", (json_int_t)r->seen, "created", (json_int_t)r->created,
                     "updated", (json_int_t)r->updated, "unchanged", (json_int_t)r->unchanged,
                     "skipped", (json_int_t)r->skipped, "match_cases", (json_int_t)r->match_cases,
                     "removed", (json_int_t)r->removed, "observed", (json_int_t)r->observed);
}

int actx_flush_counts(struct actx *c)
{
    int rc = 0;
    if (c->nruns == 0)
        return 0;
    json_t *arr = json_array();
    for (size_t i = 0; i < c->nruns; i++) /* the one place a run_counts becomes a row */
        json_array_append_new(arr, run_counts_row(&c->runs[i]));
    PGresult *res = actx_query_json(
        c,
        "UPDATE sync_runs s SET seen = s.seen + v.seen, created = s.created + v.created,"
        " updated = s.updated + v.updated, unchanged = s.unchanged + v.unchanged,"
        " skipped = s.skipped + v.skipped, match_cases = s.match_cases + v.match_cases,"
        " removed = s.removed + v.removed, observed = s.observed + v.observed"
        " FROM jsonb_to_recordset($1::jsonb) AS v(tenant_id text, run_id uuid, seen bigint,"
        " created bigint, updated bigint, unchanged bigint, skipped bigint, match_cases bigint,"
        " removed bigint, observed bigint)"
        " WHERE s.tenant_id = v.tenant_id AND s.run_id = v.run_id",
        arr, PGRES_COMMAND_OK);
    rc = res ? 0 : -1;
    PQclear(res);
    json_decref(arr);
    c->nruns = 0;
    return rc;
}

/* ---------------------------------------------------------------- outbox and outcomes */

int actx_outbox_add(struct actx *c, Envelope *env, const char *topic, const char *entity_id)
{
    return outbox_batch_add_entity(c->outbox, env, topic, entity_id, c->err, c->errlen);
}

int actx_flush_outbox(struct actx *c)
{
    int rc = outbox_batch_write(c->outbox, c->pg, NULL, c->err, c->errlen);
    outbox_batch_clear(c->outbox); /* on failure the transaction is rolled back */
    return rc;
}

void actx_outcome_add(struct actx *c, const char *tenant, const char *run, const char *kind,
                      const char *source, const char *source_id, const char *email,
                      const char *outcome, const char *reason)
{
    struct run_outcome o = {.tenant_id = tenant,
                            .run_id = run,
                            .object_kind = kind,
                            .source = source,
                            .source_id = source_id,
                            .email = email,
                            .outcome = outcome,
                            .reason = reason};
    json_array_append_new(c->outcomes, run_outcome_row(&o));
}

json_t *run_outcome_row(const struct run_outcome *o)
{
    return json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s?,s:s,s:s}", "tenant_id", o->tenant_id, "run_id",
                     o->run_id, "object_kind", o->object_kind, "source", o->source, "source_id",
                     o->source_id, "email", o->email, "outcome", o->outcome, "reason", o->reason);
}

int actx_flush_outcomes(struct actx *c)
{
    if (json_array_size(c->outcomes) == 0)
        return 0;
    PGresult *r = actx_query_json(
        c,
        "INSERT INTO run_outcomes (tenant_id, run_id, object_kind, source, source_id,"
        " email, outcome, reason)"
        " SELECT v.tenant_id, v.run_id, v.object_kind, v.source, v.source_id, v.email,"
        " v.outcome, v.reason"
        " FROM jsonb_to_recordset($1::jsonb) AS v(tenant_id text, run_id uuid,"
        " object_kind text, source text, source_id text, email text, outcome text, reason text)"
        " WHERE EXISTS (SELECT 1 FROM sync_runs s WHERE s.tenant_id = v.tenant_id"
        " AND s.run_id = v.run_id)",
        c->outcomes, PGRES_COMMAND_OK);
    PQclear(r);
    json_array_clear(c->outcomes);
    return r ? 0 : -1;
}

/* Give each full row of rows (people or devices) its content hash "h": md5 of its fields "f"
 * as PostgreSQL prints them as jsonb, the very value md5(fields::text) gives in SQL, so hashes
 * stored by either side compare equal, and PostgreSQL need not parse the fields of rows that did
 * not change. A row whose fields cannot be printed that way (a real number) gets none: SQL hashes
 * it. */
void actx_rows_hash(struct actx *c, json_t *rows)
{
    char hex[33];
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        json_object_del(row, "h");
        if (json_is_true(json_object_get(row, "delta")))
            continue;
        buf_reset(&c->dump);
        if (pjson_dump_jsonb_text(json_object_get(row, "f"), &c->dump) || !c->dump.data)
            continue;
        crypto_md5_hex(c->dump.data, c->dump.len, hex);
        if (hex[0])
            json_object_set_new(row, "h", json_string(hex));
    }
}

int actx_upsert_row(struct actx *c, PGresult *r, int i, json_t *rows, struct upsert_row *u)
{
    memset(u, 0, sizeof *u);
    u->staged = json_array_get(rows, col_index(r, i, 0));
    u->tenant = json_string_value(json_object_get(u->staged, "t"));
    u->run = col_str(r, i, 4);
    u->isnew = col_bool(r, i, 2);
    bool changed = col_bool(r, i, 1);
    actx_count_applied(c, u->tenant, u->run, changed, u->isnew);
    if (!changed)
        return 0;
    c->rows_changed++;
    u->old_fields = u->isnew ? NULL : col_json(r, i, 3);
    u->changed = merge_changed_fields(u->old_fields, json_object_get(u->staged, "f"));
    if (!u->changed) {
        actx_upsert_row_clear(u);
        snprintf(c->err, c->errlen, "out of memory comparing fields");
        return -1;
    }
    return 1;
}

void actx_upsert_row_clear(struct upsert_row *u)
{
    json_decref(u->old_fields);
    json_decref(u->changed);
    u->old_fields = u->changed = NULL;
}

int actx_upsert_each(struct actx *c, PGresult *r, json_t *rows, actx_upsert_fn on_changed,
                     void *arg)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct upsert_row u;
        int changed = actx_upsert_row(c, r, i, rows, &u);
        if (changed < 0)
            return -1;
        if (!changed)
            continue;
        int e = on_changed(c, r, i, &u, arg);
        actx_upsert_row_clear(&u);
        if (e)
            return -1;
    }
    return 0;
}

int actx_begin(struct actx *c)
{
    return pgx_exec(c->pg, "BEGIN", c->err, c->errlen);
}

int actx_commit(struct actx *c)
{
    return pgx_exec(c->pg, "COMMIT", c->err, c->errlen);
}

void actx_rollback(struct actx *c)
{
    char e2[256]; /* c->err keeps the reason of the rollback */
    if (pgx_exec(c->pg, "ROLLBACK", e2, sizeof e2))
        log_warn("rollback failed: %s", e2);
}
