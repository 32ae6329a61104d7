#include "apply.h"
#include "asset_event.h"
#include "buf.h"
#include "crypto.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "merge.h"
#include "outbox.h"
#include "pg.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RUNS 256

/* Per-run counters of a segment, flushed into sync_runs. */
struct run_counts {
    char tenant[129];
    char run_id[EVENTS_ID_LEN];
    long seen, created, updated, unchanged, skipped, match_cases, removed;
    long observed; /* observation events received (sync_runs.observed) */
};

struct actx {
    PGconn *pg;
    char *err;
    size_t errlen;
    struct outbox_batch *outbox; /* public events waiting for the outbox writer */
    json_t *outcomes;            /* run_outcomes rows waiting for one INSERT */
    struct run_counts runs[MAX_RUNS];
    size_t nruns;
    long rows_changed;
    struct buf dump; /* the JSON parameter of each statement: one buffer reused (no regrowth) */
};

/* A context for one transaction; NULL when out of memory. Free with actx_free. */
static struct actx *actx_new(PGconn *pg, char *err, size_t errlen)
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

static void actx_free(struct actx *c)
{
    if (!c)
        return;
    outbox_batch_free(c->outbox);
    json_decref(c->outcomes);
    buf_free(&c->dump);
    free(c);
}

const char *apply_result_str(enum apply_result r)
{
    switch (r) {
    case APPLY_OK:
        return "ok";
    case APPLY_FENCED:
        return "fenced";
    default:
        return "error";
    }
}

/* ---------------------------------------------------------------- SQL helpers */

static PGresult *q(struct actx *c, const char *sql, int n, const char *const *params,
                   ExecStatusType want)
{
    PGresult *r = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
    if (!pgx_ok(r, want, c->err, c->errlen)) {
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Run sql with one JSON parameter; returns the result (tuples or command). */
static PGresult *qj(struct actx *c, const char *sql, const json_t *arr, ExecStatusType want)
{
    buf_reset(&c->dump);
    if (pjson_dump_compact_into(arr, &c->dump) || !c->dump.data) {
        snprintf(c->err, c->errlen, "out of memory serialising a batch");
        return NULL;
    }
    const char *params[1] = {c->dump.data};
    return q(c, sql, 1, params, want);
}

static int cmd(struct actx *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = q(c, sql, n, params, PGRES_COMMAND_OK);
    PQclear(r);
    return r ? 0 : -1;
}

static json_t *col_json(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return json_loads(PQgetvalue(r, row, col), JSON_DECODE_ANY, NULL);
}

static const char *col_str(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static bool col_bool(PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

static int64_t col_i64(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static struct run_counts *run_counts_for(struct actx *c, const char *tenant, const char *run)
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

static int flush_counts(struct actx *c)
{
    int rc = 0;
    if (c->nruns == 0)
        return 0;
    json_t *arr = json_array();
    for (size_t i = 0; i < c->nruns; i++) {
        struct run_counts *r = &c->runs[i];
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "t", r->tenant, "r",
                           r->run_id, "rm", (json_int_t)r->removed, "seen", (json_int_t)r->seen,
                           "cr", (json_int_t)r->created, "up", (json_int_t)r->updated, "un",
                           (json_int_t)r->unchanged, "sk", (json_int_t)r->skipped, "mc",
                           (json_int_t)r->match_cases, "ob", (json_int_t)r->observed));
    }
    PGresult *res = qj(c,
                       "UPDATE sync_runs s SET seen = s.seen + v.seen, created = s.created + v.cr,"
                       " updated = s.updated + v.up, unchanged = s.unchanged + v.un,"
                       " skipped = s.skipped + v.sk, match_cases = s.match_cases + v.mc,"
                       " removed = s.removed + v.rm, observed = s.observed + v.ob"
                       " FROM jsonb_to_recordset($1::jsonb) AS v(t text, r uuid, seen bigint,"
                       " cr bigint, up bigint, un bigint, sk bigint, mc bigint, rm bigint,"
                       " ob bigint)"
                       " WHERE s.tenant_id = v.t AND s.run_id = v.r",
                       arr, PGRES_COMMAND_OK);
    rc = res ? 0 : -1;
    PQclear(res);
    json_decref(arr);
    c->nruns = 0;
    return rc;
}

/* ---------------------------------------------------------------- outbox and outcomes */

static int outbox_add(struct actx *c, Envelope *env, const char *topic, const char *entity_id)
{
    return outbox_batch_add_entity(c->outbox, env, topic, entity_id, c->err, c->errlen);
}

static int flush_outbox(struct actx *c)
{
    int rc = outbox_batch_write(c->outbox, c->pg, NULL, c->err, c->errlen);
    outbox_batch_clear(c->outbox); /* on failure the transaction is rolled back */
    return rc;
}

static void outcome_add(struct actx *c, const char *tenant, const char *run, const char *kind,
                        const char *source, const char *source_id, const char *email,
                        const char *outcome, const char *reason)
{
    json_array_append_new(c->outcomes,
                          json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s?,s:s,s:s}", "t", tenant, "r", run,
                                    "k", kind, "src", source, "id", source_id, "e", email, "o",
                                    outcome, "why", reason));
}

static int flush_outcomes(struct actx *c)
{
    if (json_array_size(c->outcomes) == 0)
        return 0;
    PGresult *r = qj(c,
                     "INSERT INTO run_outcomes (tenant_id, run_id, object_kind, source, source_id,"
                     " email, outcome, reason)"
                     " SELECT v.t, v.r, v.k, v.src, v.id, v.e, v.o, v.why"
                     " FROM jsonb_to_recordset($1::jsonb) AS v(t text, r uuid, k text, src text,"
                     " id text, e text, o text, why text)"
                     " WHERE EXISTS (SELECT 1 FROM sync_runs s WHERE s.tenant_id = v.t"
                     " AND s.run_id = v.r)",
                     c->outcomes, PGRES_COMMAND_OK);
    PQclear(r);
    json_array_clear(c->outcomes);
    return r ? 0 : -1;
}

/* ---------------------------------------------------------------- People */

static int person_event(struct actx *c, const char *tenant, const char *run, const char *person_id,
                        const struct merge_person *mp, int64_t version, Panel__V1__ChangeKind kind,
                        const json_t *changed)
{
    int rc = -1;
    char id[EVENTS_ID_LEN], perr[256];
    Envelope env;
    Panel__V1__PersonChanged pc = PANEL__V1__PERSON_CHANGED__INIT;
    Panel__V1__MergedPerson m = PANEL__V1__MERGED_PERSON__INIT;
    size_t nprov = json_object_size(mp->provenance), nsrc = json_array_size(mp->sources);
    size_t nch = json_array_size(changed);
    Panel__V1__FieldSource *fs = calloc(nprov ? nprov : 1, sizeof *fs);
    Panel__V1__FieldSource **fsp = calloc(nprov ? nprov : 1, sizeof *fsp);
    Panel__V1__Source *srcs = calloc(nsrc ? nsrc : 1, sizeof *srcs);
    char **ch = calloc(nch ? nch : 1, sizeof *ch);
    ProtobufCMessage *fields =
        events_from_json_value(&panel__v1__person__descriptor, mp->fields, perr, sizeof perr);
    if (!fs || !fsp || !srcs || !ch || !fields) {
        snprintf(c->err, c->errlen, "building PersonChanged: %s", fields ? "out of memory" : perr);
        goto out;
    }
    if (events_envelope_init(&env, id, tenant, PB_SOURCE_PANEL, run))
        goto out;
    const char *key;
    json_t *v;
    size_t i = 0;
    json_object_foreach(mp->provenance, key, v)
    {
        panel__v1__field_source__init(&fs[i]);
        fs[i].field = (char *)key;
        fs[i].has_source = 1;
        fs[i].source = events_source_from_str(json_string_value(v));
        fsp[i] = &fs[i];
        i++;
    }
    for (i = 0; i < nsrc; i++)
        srcs[i] = events_source_from_str(json_string_value(json_array_get(mp->sources, i)));
    for (i = 0; i < nch; i++)
        ch[i] = (char *)json_string_value(json_array_get(changed, i));
    m.person_id = (char *)person_id;
    m.fields = (Panel__V1__Person *)fields;
    m.n_provenance = nprov;
    m.provenance = fsp;
    m.n_sources = nsrc;
    m.sources = srcs;
    m.has_removed = 1;
    m.removed = mp->removed;
    m.has_version = 1;
    m.version = version;
    pc.has_kind = 1;
    pc.kind = kind;
    pc.person = &m;
    pc.n_changed_fields = nch;
    pc.changed_fields = ch;
    env.payload_case = PB_PAYLOAD_PERSON_CHANGED;
    env.person_changed = &pc;
    rc = outbox_add(c, &env, TOPIC_PEOPLE_EVENTS, person_id);
out:
    if (fields)
        protobuf_c_message_free_unpacked(fields, NULL);
    free(fs);
    free(fsp);
    free(srcs);
    free(ch);
    return rc;
}

/* Merge one Person from its Google and Azure rows (either NULL); when the result differs from
 * what is stored (old fields, removed flag, sources as PostgreSQL prints text[], version; 0 =
 * a Person not created yet), append its new row to upd and its event to the outbox.
 * unsuspended: one of its rows came back from an Azure soft delete (a restored account). */
static int remerge_one(struct actx *c, const char *tenant, const char *pid, const char *run,
                       const json_t *old, const json_t *g, const json_t *a, bool was_removed,
                       bool unsuspended, int64_t version, const char *old_sources, json_t *upd)
{
    struct merge_person mp;
    json_t *changed = NULL;
    if (merge_person_compute(g, a, &mp)) {
        snprintf(c->err, c->errlen, "out of memory merging a person");
        return -1;
    }
    /* '{google,azure}' as PostgreSQL prints text[] vs JSON ["google","azure"] */
    char pgsrcs[64] = "{";
    for (size_t k = 0; k < json_array_size(mp.sources); k++) {
        size_t l = strlen(pgsrcs);
        snprintf(pgsrcs + l, sizeof pgsrcs - l, "%s%s", k ? "," : "",
                 json_string_value(json_array_get(mp.sources, k)));
    }
    size_t l = strlen(pgsrcs);
    snprintf(pgsrcs + l, sizeof pgsrcs - l, "}");
    bool same = version > 0 && json_equal((json_t *)old, mp.fields) && was_removed == mp.removed &&
                old_sources && strcmp(pgsrcs, old_sources) == 0;
    int rc = 0;
    if (!same && !(version == 0 && mp.removed)) {
        Panel__V1__ChangeKind kind = version == 0                 ? PB_CHANGE_KIND_CREATED
                                     : mp.removed                 ? PB_CHANGE_KIND_REMOVED
                                     : was_removed || unsuspended ? PB_CHANGE_KIND_RESTORED
                                                                  : PB_CHANGE_KIND_UPDATED;
        changed = merge_changed_fields(mp.removed ? mp.fields : old, mp.fields);
        if (mp.removed) { /* the shown values stay on the tombstone */
            json_decref(mp.fields);
            mp.fields = old ? json_deep_copy(old) : json_object();
            json_decref(mp.provenance);
            mp.provenance = json_object();
        }
        const char *email = json_string_value(json_object_get(mp.fields, "email_normalized"));
        const char *dn = json_string_value(json_object_get(mp.fields, "display_name"));
        json_t *row = json_pack("{s:s,s:s,s:s?,s:s,s:s?,s:s?,s:s?,s:b,s:O,s:O,s:O,s:b,s:I}", "t",
                                tenant, "p", pid, "e", email, "dn", dn ? dn : "", "gn",
                                json_string_value(json_object_get(mp.fields, "given_name")), "fn",
                                json_string_value(json_object_get(mp.fields, "family_name")), "ou",
                                json_string_value(json_object_get(mp.fields, "org_unit_path")),
                                "susp", json_is_true(json_object_get(mp.fields, "suspended")), "f",
                                mp.fields, "prov", mp.provenance, "src", mp.sources, "rm",
                                mp.removed, "v", (json_int_t)(version + 1));
        if (!row || !changed || json_array_append_new(upd, row) ||
            person_event(c, tenant, run, pid, &mp, version + 1, kind, changed)) {
            if (!*c->err)
                snprintf(c->err, c->errlen, "out of memory merging a person");
            rc = -1;
        }
    }
    json_decref(changed);
    merge_person_clear(&mp);
    return rc;
}

/* Recompute the People in persons (array of {"t","p","r"}) from their live source rows;
 * write the ones that changed and their outbox rows. */
static int people_remerge(struct actx *c, json_t *persons)
{
    int rc = -1;
    PGresult *r = NULL;
    json_t *upd = json_array();
    if (json_array_size(persons) == 0) {
        rc = 0;
        goto out;
    }
    r = qj(c,
           "SELECT p.tenant_id, p.person_id, p.fields, p.sources::text[] = '{}' AND p.version > 0,"
           " p.removed_at IS NOT NULL, p.version, x.r,"
           " (SELECT ps.fields || CASE WHEN ps.suspended_in_source THEN '{\"suspended\":true}'"
           "  ELSE '{}' END::jsonb FROM person_sources ps WHERE ps.tenant_id = p.tenant_id"
           "  AND ps.person_id = p.person_id AND ps.source = 'google' AND ps.removed_at IS NULL"
           "  ORDER BY ps.source_id LIMIT 1),"
           " (SELECT ps.fields || CASE WHEN ps.suspended_in_source THEN '{\"suspended\":true}'"
           "  ELSE '{}' END::jsonb FROM person_sources ps WHERE ps.tenant_id = p.tenant_id"
           "  AND ps.person_id = p.person_id AND ps.source = 'azure' AND ps.removed_at IS NULL"
           "  ORDER BY ps.source_id LIMIT 1),"
           " p.sources::text, x.u"
           " FROM (SELECT t, p, min(r) AS r, bool_or(coalesce(u, false)) AS u"
           "  FROM jsonb_to_recordset($1::jsonb) AS v(t text, p uuid, r text, u boolean)"
           "  GROUP BY t, p) x"
           " JOIN people p ON p.tenant_id = x.t AND p.person_id = x.p"
           " ORDER BY p.tenant_id, p.person_id FOR UPDATE OF p",
           persons, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *old = col_json(r, i, 2), *g = col_json(r, i, 7), *a = col_json(r, i, 8);
        int e = remerge_one(c, col_str(r, i, 0), col_str(r, i, 1), col_str(r, i, 6), old, g, a,
                            col_bool(r, i, 4), col_bool(r, i, 10), col_i64(r, i, 5),
                            col_str(r, i, 9), upd);
        json_decref(old);
        json_decref(g);
        json_decref(a);
        if (e)
            goto out;
    }
    if (json_array_size(upd) > 0) {
        PGresult *u = qj(
            c,
            "UPDATE people p SET email_norm = CASE WHEN v.e IS NULL OR (NOT v.rm AND EXISTS"
            " (SELECT 1 FROM people o WHERE o.tenant_id = v.t AND o.email_norm = v.e"
            " AND o.removed_at IS NULL AND o.person_id <> v.p)) THEN p.email_norm ELSE v.e END,"
            " display_name = v.dn,"
            " given_name = v.gn, family_name = v.fn, org_unit_path = v.ou, suspended = v.susp,"
            " fields = v.f, provenance = v.prov,"
            " sources = ARRAY(SELECT jsonb_array_elements_text(v.src)),"
            " removed_at = CASE WHEN v.rm THEN coalesce(p.removed_at, now()) END,"
            " version = v.v, updated_at = now()"
            " FROM jsonb_to_recordset($1::jsonb) AS v(t text, p uuid, e text, dn text, gn text,"
            " fn text, ou text, susp boolean, f jsonb, prov jsonb, src jsonb, rm boolean, v bigint)"
            " WHERE p.tenant_id = v.t AND p.person_id = v.p",
            upd, PGRES_COMMAND_OK);
        if (!u)
            goto out;
        c->rows_changed += strtol(PQcmdTuples(u), NULL, 10);
        PQclear(u);
    }
    rc = 0;
out:
    PQclear(r);
    json_decref(upd);
    return rc;
}

/* Link changed, unlinked source rows to People: by e-mail (and Azure's other addresses);
 * none -> a new Person; more than one -> an open match case, never a guess. Writes no link:
 * sets "p" (the Person) on each row of unlinked that gets one, appends existing People to
 * remerge to persons and new People to newpeople as {"t","p","e","r","google","azure"} (the
 * rows' new fields), which people_create inserts already merged. */
static int people_link(struct actx *c, json_t *unlinked, json_t *persons, json_t *newpeople)
{
    int rc = -1;
    PGresult *r = NULL, *r2 = NULL;
    json_t *newp = json_object(), *slim = json_array();
    json_t *cases = json_array(), *claimed = json_object();
    if (json_array_size(unlinked) == 0) {
        rc = 0;
        goto out;
    }
    /* only what the candidate query reads (not the fields) */
    for (size_t k = 0; k < json_array_size(unlinked); k++) {
        json_t *u = json_array_get(unlinked, k);
        if (json_array_append_new(
                slim, json_pack("{s:O,s:O,s:O,s:O,s:O,s:O}", "i", json_object_get(u, "i"), "t",
                                json_object_get(u, "t"), "s", json_object_get(u, "s"), "id",
                                json_object_get(u, "id"), "e", json_object_get(u, "e"), "alt",
                                json_object_get(u, "alt")))) {
            snprintf(c->err, c->errlen, "out of memory linking people");
            goto out;
        }
    }
    r = qj(c,
           "WITH u AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(i int, t text, s text,"
           "  id text, e text, alt text[])),"
           " k AS (SELECT i, t, s, id, e FROM u"
           "  UNION SELECT u.i, u.t, u.s, u.id, a FROM u, unnest(u.alt) AS a),"
           /* live source rows that know any of the batch's addresses: one probe of index
            * person_sources_addresses with all of them, each row's addresses computed once
            * (a per-key probe inside the join evaluated the function per row and key) */
           " c AS MATERIALIZED (SELECT ps.tenant_id, ps.source, ps.person_id, a.a"
           "  FROM person_sources ps, unnest(person_source_addresses(ps.fields)) AS a(a)"
           "  WHERE ps.removed_at IS NULL AND person_source_addresses(ps.fields) &&"
           "  (SELECT coalesce(array_agg(DISTINCT k.e) FILTER (WHERE k.e IS NOT NULL), '{}')"
           "  FROM k)),"
           /* a live Person whose shown address is one of the row's, or one whose other cloud's
            * row knows the address (an alias, a proxy address): either order of arrival
            * finds the same Person */
           " m AS (SELECT k.i, p.person_id FROM k JOIN people p ON p.tenant_id = k.t"
           "  AND p.email_norm = k.e AND p.removed_at IS NULL"
           "  UNION SELECT k.i, p.person_id FROM c JOIN k ON k.t = c.tenant_id"
           "  AND k.e = c.a AND k.s <> c.source"
           "  JOIN people p ON p.tenant_id = c.tenant_id AND p.person_id = c.person_id"
           "  AND p.removed_at IS NULL)"
           " SELECT u.i, coalesce(json_agg(DISTINCT m.person_id)"
           " FILTER (WHERE m.person_id IS NOT NULL), '[]'),"
           /* candidates that already have another live account of the same cloud */
           " coalesce(json_agg(DISTINCT m.person_id) FILTER (WHERE EXISTS (SELECT 1"
           "  FROM person_sources o WHERE o.tenant_id = u.t AND o.person_id = m.person_id"
           "  AND o.source = u.s AND o.source_id <> u.id AND o.removed_at IS NULL)), '[]')"
           " FROM u LEFT JOIN m ON m.i = u.i"
           " GROUP BY u.i, u.t, u.s, u.id ORDER BY u.i",
           slim, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *u = json_array_get(unlinked, (size_t)strtol(col_str(r, i, 0), NULL, 10));
        json_t *cand = col_json(r, i, 1), *taken = col_json(r, i, 2);
        const char *t = json_string_value(json_object_get(u, "t"));
        const char *e = json_string_value(json_object_get(u, "e"));
        const char *s = json_string_value(json_object_get(u, "s"));
        const char *id = json_string_value(json_object_get(u, "id"));
        const char *run = json_string_value(json_object_get(u, "r"));
        const char *pid = NULL, *why = NULL;
        char newid[EVENTS_ID_LEN], ck[700];
        if (!e) { /* no address known at all: it stays unlinked until one arrives */
            json_decref(cand);
            json_decref(taken);
            continue;
        }
        if (json_array_size(cand) == 1) {
            pid = json_string_value(json_array_get(cand, 0));
        } else if (json_array_size(cand) == 0) {
            /* One new Person per tenant and e-mail, so that Google's and Azure's rows arriving
             * in the same batch meet. */
            char gk[700];
            snprintf(gk, sizeof gk, "%s\x1f%s", t, e);
            json_t *have = json_object_get(newp, gk);
            if (have) {
                pid = json_string_value(json_object_get(have, "p"));
            } else {
                if (crypto_uuid(newid)) {
                    json_decref(cand);
                    json_decref(taken);
                    snprintf(c->err, c->errlen, "uuid generation failed");
                    goto out;
                }
                have = json_pack("{s:s,s:s,s:s,s:s?}", "t", t, "p", newid, "e", e, "r", run);
                if (!have || json_object_set_new(newp, gk, have) ||
                    json_array_append(newpeople, have)) {
                    json_decref(cand);
                    json_decref(taken);
                    snprintf(c->err, c->errlen, "out of memory linking people");
                    goto out;
                }
                pid = newid;
            }
        } else {
            why = "email matches more than one Person";
        }
        if (pid) {
            /* Two accounts of one cloud are never silently one Person. */
            snprintf(ck, sizeof ck, "%s\x1f%s\x1f%s", t, pid, s);
            if (json_array_size(taken) > 0 || json_object_get(claimed, ck)) {
                why = strcmp(s, "google") == 0
                          ? "email belongs to a Person that already has another google account"
                          : "email belongs to a Person that already has another azure account";
                json_t *only = json_pack("[s]", pid); /* pid may point into cand */
                json_decref(cand);
                cand = only;
                pid = NULL;
            } else {
                json_object_set_new(claimed, ck, json_true());
            }
        }
        if (why) {
            if (json_array_append_new(cases,
                                      json_pack("{s:s,s:s,s:s,s:O,s:s?,s:s}", "t", t, "s", s, "id",
                                                id, "c", cand, "r", run, "why", why))) {
                json_decref(cand);
                json_decref(taken);
                snprintf(c->err, c->errlen, "out of memory recording a match case");
                goto out;
            }
            outcome_add(c, t, run, "person", s, id, e, "match_case", why);
            struct run_counts *rcnt = run ? run_counts_for(c, t, run) : NULL;
            if (rcnt)
                rcnt->match_cases++;
        }
        json_decref(taken);
        if (pid) {
            char gk[700];
            snprintf(gk, sizeof gk, "%s\x1f%s", t, e);
            json_t *np = json_object_get(newp, gk);
            int fail = json_object_set_new(u, "p", json_string(pid));
            if (np && strcmp(json_string_value(json_object_get(np, "p")), pid) == 0) {
                /* a new Person: merged from the rows of this batch (a full row's fields are
                 * the ones sent; a changed delta's came back merged as "nf") */
                const char *merged = json_string_value(json_object_get(u, "nf"));
                json_t *nf = json_is_true(json_object_get(u, "isnew")) || !merged
                                 ? json_incref(json_object_get(u, "f"))
                                 : json_loads(merged, 0, NULL);
                fail = fail || !nf || json_object_set_new(np, s, nf);
            } else {
                fail = fail || json_array_append_new(persons, json_pack("{s:s,s:s,s:s?}", "t", t,
                                                                        "p", pid, "r", run));
            }
            if (fail) {
                json_decref(cand);
                snprintf(c->err, c->errlen, "out of memory linking people");
                goto out;
            }
        }
        json_decref(cand);
    }
    if (json_array_size(cases) > 0) {
        r2 = qj(c,
                "INSERT INTO match_cases (tenant_id, source, source_id, candidates, reason, run_id)"
                " SELECT v.t, v.s, v.id, ARRAY(SELECT jsonb_array_elements_text(v.c))::uuid[],"
                " v.why, v.r FROM jsonb_to_recordset($1::jsonb)"
                " AS v(t text, s text, id text, c jsonb, r uuid, why text)"
                " ON CONFLICT (tenant_id, source, source_id) WHERE status = 'open' DO NOTHING",
                cases, PGRES_COMMAND_OK);
        if (!r2)
            goto out;
        PQclear(r2);
        r2 = NULL;
    }
    rc = 0;
out:
    PQclear(r);
    json_decref(newp);
    json_decref(slim);
    json_decref(cases);
    json_decref(claimed);
    return rc;
}

/* Insert the new People of people_link, merged from their rows, with their CREATED events. */
static int people_create(struct actx *c, json_t *newpeople)
{
    int rc = -1;
    json_t *ins = json_array();
    for (size_t i = 0; i < json_array_size(newpeople); i++) {
        json_t *np = json_array_get(newpeople, i);
        size_t before = json_array_size(ins);
        if (remerge_one(c, json_string_value(json_object_get(np, "t")),
                        json_string_value(json_object_get(np, "p")),
                        json_string_value(json_object_get(np, "r")), NULL,
                        json_object_get(np, "google"), json_object_get(np, "azure"), false, false,
                        0, "{}", ins))
            goto out;
        /* the e-mail it was linked by (no live Person has it) */
        if (json_array_size(ins) > before)
            json_object_set(json_array_get(ins, before), "e", json_object_get(np, "e"));
    }
    if (json_array_size(ins) > 0) {
        PGresult *r = qj(c,
                         "INSERT INTO people (tenant_id, person_id, email_norm, display_name,"
                         " given_name, family_name, org_unit_path, suspended, fields, provenance,"
                         " sources, version)"
                         " SELECT v.t, v.p, v.e, v.dn, v.gn, v.fn, v.ou, v.susp, v.f, v.prov,"
                         " ARRAY(SELECT jsonb_array_elements_text(v.src)), v.v"
                         " FROM jsonb_to_recordset($1::jsonb) AS v(t text, p uuid, e text, dn text,"
                         " gn text, fn text, ou text, susp boolean, f jsonb, prov jsonb, src jsonb,"
                         " v bigint)",
                         ins, PGRES_COMMAND_OK);
        if (!r)
            goto out;
        c->rows_changed += strtol(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    rc = 0;
out:
    json_decref(ins);
    return rc;
}

/* The e-mail addresses Azure gives besides the primary one that may link a row: mail and
 * SMTP proxy addresses (never otherMails). */
static json_t *person_alt_emails(const Panel__V1__Person *p)
{
    json_t *alt = json_array();
    char norm[320];
    if (p->mail && ids_email_normalize(p->mail, norm, sizeof norm) == 0)
        json_array_append_new(alt, json_string(norm));
    for (size_t i = 0; p->proxy_addresses && i < p->proxy_addresses->n_values; i++) {
        const char *a = p->proxy_addresses->values[i];
        if (strncasecmp(a, "smtp:", 5) == 0 && ids_email_normalize(a + 5, norm, sizeof norm) == 0)
            json_array_append_new(alt, json_string(norm));
    }
    return alt;
}

/* The fields a cloud provided, as a JSON object (no source_id, no cleared_fields).
 * email_norm NULL: a delta observation that did not carry the address (the stored one stays). */
static json_t *person_fields(const Panel__V1__Person *p, const char *email_norm)
{
    json_t *f = events_to_json_value(&p->base);
    if (f) {
        json_object_del(f, "source_id");
        json_object_del(f, "cleared_fields");
        if (email_norm)
            json_object_set_new(f, "email_normalized", json_string(email_norm));
        else {
            json_object_del(f, "email");
            json_object_del(f, "email_normalized");
        }
    }
    return f;
}

/* Give each full row of rows (people or devices) its content hash "h": md5 of its fields "f"
 * as PostgreSQL prints them as jsonb, the very value md5(fields::text) gives in SQL, so hashes
 * stored by either side compare equal, and PostgreSQL need not parse the fields of rows that did
 * not change. A row whose fields cannot be printed that way (a real number) gets none: SQL hashes
 * it. */
static void rows_hash(struct actx *c, json_t *rows)
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

/* The rows the compare statement needs: keys, hash, run, and the fields only where SQL needs
 * them (a delta's, to combine with the stored ones, or a row the C side could not hash). A
 * no-change resync then sends a few dozen bytes per row instead of its fields. New reference,
 * NULL when out of memory. */
static json_t *compare_rows(const json_t *rows)
{
    json_t *out = json_array();
    for (size_t i = 0; out && i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i), *h = json_object_get(row, "h");
        json_t *delta = json_object_get(row, "delta");
        json_t *f = json_is_true(delta) || !h ? json_object_get(row, "f") : NULL;
        if (json_array_append_new(
                out, json_pack("{s:O,s:O,s:O,s:O,s:O*,s:O*,s:O,s:O,s:O}", "i",
                               json_object_get(row, "i"), "t", json_object_get(row, "t"), "s",
                               json_object_get(row, "s"), "id", json_object_get(row, "id"), "h", h,
                               "f", f, "r", json_object_get(row, "r"), "delta", delta, "cl",
                               json_object_get(row, "cl")))) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

/* Apply PersonObserved rows: rows is an array of {"i","t","s","id","e","f","r","delta","cl",
 * "alt"} deduplicated per source row. */
static int people_apply(struct actx *c, json_t *rows)
{
    int rc = -1;
    PGresult *r = NULL;
    json_t *unlinked = json_array(), *persons = json_array(), *newpeople = json_array();
    json_t *ups = json_array(), *cmp = NULL;
    if (json_array_size(rows) == 0) {
        rc = 0;
        goto out;
    }
    rows_hash(c, rows);
    cmp = compare_rows(rows);
    if (!cmp)
        goto oom;
    /* 1: compare with the stored rows (hash), record the sightings; write nothing else */
    /* A full row comes with its hash ("h", see rows_hash) and without its fields
     * (compare_rows); only a delta's fields are sent and parsed, to be combined with the
     * stored ones. */
    r = qj(
        c,
        "WITH s AS (SELECT * FROM json_to_recordset($1::json) AS x(i int, t text, s text,"
        "  id text, f json, h text, r uuid, delta boolean, cl text[])),"
        " c AS (SELECT s.i, s.t, s.s, s.id, s.r, s.delta, s.h,"
        "  CASE WHEN s.delta AND ps.fields IS NOT NULL"
        "  THEN (ps.fields || s.f::jsonb) - coalesce(s.cl, '{}')"
        "  WHEN s.delta OR s.h IS NULL THEN s.f::jsonb END AS nf,"
        "  ps.content_hash AS oh, ps.removed_at IS NOT NULL AS was_removed,"
        "  ps.source_id IS NULL AS isnew, ps.person_id AS opid,"
        "  coalesce(ps.suspended_in_source, false) AS susp"
        "  FROM s LEFT JOIN person_sources ps ON ps.tenant_id = s.t AND ps.source = s.s"
        "  AND ps.source_id = s.id),"
        " h AS (SELECT c.*, coalesce(c.h, md5(c.nf::text)) AS nh FROM c),"
        /* seen again after an Azure soft delete: the account was restored */
        " d AS (SELECT h.*, isnew OR oh <> nh OR was_removed OR susp AS changed FROM h),"
        " seen AS (INSERT INTO run_seen (tenant_id, run_id, object_kind, source_id)"
        "  SELECT t, r, 'person', id FROM d WHERE r IS NOT NULL ON CONFLICT DO NOTHING),"
        /* observed again: a removal reported earlier in the run no longer holds, nor does a
         * removal another run holds for an admin's approval */
        " rr AS (DELETE FROM run_reported_removals x USING d WHERE x.tenant_id = d.t"
        "  AND x.run_id = d.r AND x.object_kind = 'person' AND x.source = d.s"
        "  AND x.source_id = d.id),"
        " hr AS (UPDATE run_outcomes o SET outcome = 'held_removal_cancelled',"
        "  reason = 'observed again by run ' || d.r || ' before the approval' FROM d"
        "  WHERE o.outcome = 'held_removal' AND o.tenant_id = d.t AND o.source = d.s"
        "  AND o.source_id = d.id AND o.object_kind = 'person' AND o.run_id IS DISTINCT FROM d.r"
        "  AND EXISTS (SELECT 1 FROM sync_runs sr WHERE sr.tenant_id = o.tenant_id"
        "  AND sr.run_id = o.run_id AND sr.status = 'held') RETURNING o.tenant_id, o.run_id),"
        " hc AS (UPDATE sync_runs sr SET pending_removals = greatest(sr.pending_removals - x.n, 0)"
        "  FROM (SELECT tenant_id, run_id, count(*) AS n FROM hr GROUP BY 1, 2) x"
        "  WHERE sr.tenant_id = x.tenant_id AND sr.run_id = x.run_id)"
        /* a full row's new fields are the ones sent: only a delta's come back */
        " SELECT i, changed, isnew, opid, CASE WHEN changed AND delta THEN nf::text END,"
        "  CASE WHEN changed THEN nh END, susp FROM d ORDER BY i",
        cmp, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *row = json_array_get(rows, (size_t)strtol(col_str(r, i, 0), NULL, 10));
        bool changed = col_bool(r, i, 1), isnew = col_bool(r, i, 2), unsusp = col_bool(r, i, 6);
        const char *pid = col_str(r, i, 3);
        const char *t = json_string_value(json_object_get(row, "t"));
        const char *run = json_string_value(json_object_get(row, "r"));
        struct run_counts *rcnt = run ? run_counts_for(c, t, run) : NULL;
        if (isnew && !json_is_string(json_object_get(row, "e"))) {
            /* a delta of an object we never had, without an address to link it by */
            outcome_add(c, t, run, "person", json_string_value(json_object_get(row, "s")),
                        json_string_value(json_object_get(row, "id")), NULL, "skipped",
                        "no usable e-mail address");
            if (rcnt) {
                rcnt->seen++;
                rcnt->skipped++;
            }
            continue;
        }
        if (rcnt) {
            rcnt->seen++;
            if (!changed)
                rcnt->unchanged++;
            else if (isnew)
                rcnt->created++;
            else
                rcnt->updated++;
        }
        if (!changed)
            continue;
        c->rows_changed++;
        const char *delta_fields = col_str(r, i, 4); /* NULL for a full row */
        json_t *up = json_pack("{s:s,s:O,s:O,s:s?,s:O?,s:s?,s:s,s:s?}", "t", t, "s",
                               json_object_get(row, "s"), "id", json_object_get(row, "id"), "p",
                               pid, "f", delta_fields ? NULL : json_object_get(row, "f"), "ft",
                               delta_fields, "h", col_str(r, i, 5), "r", run);
        if (!up || json_array_append_new(ups, up))
            goto oom;
        if (pid) {
            if (json_array_append_new(persons, json_pack("{s:s,s:s,s:s?,s:b}", "t", t, "p", pid,
                                                         "r", run, "u", unsusp)))
                goto oom;
        } else {
            json_t *u = json_copy(row); /* shallow: the fields are shared */
            if (!u)
                goto oom;
            json_object_set_new(u, "i", json_integer((json_int_t)json_array_size(unlinked)));
            if (delta_fields)
                json_object_set_new(u, "nf", json_string(delta_fields));
            if (!json_is_string(json_object_get(u, "e")) && delta_fields) {
                /* a delta without the address: link by the one stored */
                json_t *nf = json_loads(delta_fields, 0, NULL);
                json_t *e = json_object_get(nf, "email_normalized");
                json_object_set(u, "e", json_is_string(e) ? e : json_null());
                json_decref(nf);
            }
            json_object_set_new(u, "isnew", json_boolean(isnew));
            json_object_set(u, "up", up); /* people_link's "p" goes into the upsert row */
            json_array_append_new(unlinked, u);
        }
    }
    PQclear(r);
    r = NULL;
    if (people_link(c, unlinked, persons, newpeople))
        goto out;
    for (size_t k = 0; k < json_array_size(unlinked); k++) {
        json_t *u = json_array_get(unlinked, k), *p = json_object_get(u, "p");
        if (p)
            json_object_set(json_object_get(u, "up"), "p", p);
    }
    /* 2: the new People, already merged (the rows below reference them) */
    if (people_create(c, newpeople))
        goto out;
    /* 3: the changed source rows, each written once, with its Person */
    if (json_array_size(ups) > 0) {
        r = qj(c,
               "INSERT INTO person_sources AS ps (tenant_id, source, source_id, person_id,"
               " email_norm, fields, content_hash, last_seen_run)"
               " SELECT v.t, v.s, v.id, v.p, v.nf->>'email_normalized', v.nf, v.h, v.r"
               " FROM (SELECT x.*, coalesce(x.f, x.ft::jsonb) AS nf"
               "  FROM jsonb_to_recordset($1::jsonb) AS x(t text, s text, id text, p uuid, f jsonb,"
               "  ft text, h text, r uuid)) v"
               " ON CONFLICT (tenant_id, source, source_id) DO UPDATE SET"
               " person_id = EXCLUDED.person_id, email_norm = EXCLUDED.email_norm,"
               " fields = EXCLUDED.fields, content_hash = EXCLUDED.content_hash, removed_at = NULL,"
               " suspended_in_source = false, last_seen_run = EXCLUDED.last_seen_run,"
               " updated_at = now()",
               ups, PGRES_COMMAND_OK);
        if (!r)
            goto out;
        PQclear(r);
        r = NULL;
    }
    /* 4: the existing People whose rows changed */
    if (people_remerge(c, persons))
        goto out;
    rc = 0;
    goto out;
oom:
    snprintf(c->err, c->errlen, "out of memory applying people");
out:
    PQclear(r);
    json_decref(unlinked);
    json_decref(persons);
    json_decref(newpeople);
    json_decref(ups);
    json_decref(cmp);
    return rc;
}

/* ---------------------------------------------------------------- Assets and OrgUnits */

/* Queue the AssetChanged of the asset whose asset_event_json() text is asset_json. */
static int asset_event(struct actx *c, const char *tenant, const char *run, const char *asset_json,
                       Panel__V1__AssetChangeKind kind, const json_t *changed)
{
    json_t *asset = asset_json ? json_loads(asset_json, 0, NULL) : NULL;
    int rc = asset
                 ? asset_event_add(c->outbox, tenant, run, asset, kind, changed, c->err, c->errlen)
                 : -1;
    if (rc && !asset)
        snprintf(c->err, c->errlen, "building AssetChanged: the asset's JSON does not read");
    json_decref(asset);
    return rc;
}

static int orgunit_event(struct actx *c, const char *tenant, const char *run, const char *ou_id,
                         Panel__V1__ChangeKind kind, const json_t *fields, const json_t *changed)
{
    int rc = -1;
    char id[EVENTS_ID_LEN], perr[256];
    Envelope env;
    Panel__V1__OrgUnitChanged oc = PANEL__V1__ORG_UNIT_CHANGED__INIT;
    size_t nch = json_array_size(changed);
    char **ch = calloc(nch ? nch : 1, sizeof *ch);
    ProtobufCMessage *ou =
        events_from_json_value(&panel__v1__org_unit__descriptor, fields, perr, sizeof perr);
    if (!ch || !ou) {
        snprintf(c->err, c->errlen, "building OrgUnitChanged: %s", ou ? "out of memory" : perr);
        goto out;
    }
    if (events_envelope_init(&env, id, tenant, PB_SOURCE_PANEL, run))
        goto out;
    for (size_t k = 0; k < nch; k++)
        ch[k] = (char *)json_string_value(json_array_get(changed, k));
    oc.has_kind = 1;
    oc.kind = kind;
    oc.org_unit = (Panel__V1__OrgUnit *)ou;
    oc.n_changed_fields = nch;
    oc.changed_fields = ch;
    env.payload_case = PB_PAYLOAD_ORG_UNIT_CHANGED;
    env.org_unit_changed = &oc;
    rc = outbox_add(c, &env, TOPIC_ORGUNIT_EVENTS, ou_id);
out:
    if (ou)
        protobuf_c_message_free_unpacked(ou, NULL);
    free(ch);
    return rc;
}

/* The AssetChanged events of changed (array of {"t","a" asset id,"k" kind,"ch" changed fields,
 * "r" run}), built from the assets as they are now (with their current checkout). */
static int asset_events(struct actx *c, json_t *changed)
{
    int rc = -1;
    PGresult *r = NULL;
    if (json_array_size(changed) == 0)
        return 0;
    r = qj(c,
           "SELECT v.n, " ASSET_EVENT_JSON_SQL
           " FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (t text, a uuid))"
           " WITH ORDINALITY AS v(t, aid, n) JOIN assets a ON a.tenant_id = v.t"
           " AND a.asset_id = v.aid"
           " ORDER BY v.n",
           changed, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *e = json_array_get(changed, (size_t)strtol(col_str(r, i, 0), NULL, 10) - 1);
        if (asset_event(c, json_string_value(json_object_get(e, "t")),
                        json_string_value(json_object_get(e, "r")), col_str(r, i, 1),
                        (Panel__V1__AssetChangeKind)json_integer_value(json_object_get(e, "k")),
                        json_object_get(e, "ch")))
            goto out;
    }
    rc = 0;
out:
    PQclear(r);
    return rc;
}

static int devices_apply(struct actx *c, json_t *rows)
{
    int rc = -1;
    PGresult *r = NULL;
    json_t *events = json_array(), *lifecycles = json_array();
    if (json_array_size(rows) == 0)
        goto done;
    rows_hash(c, rows);
    /* as in people_apply: the fields are parsed into jsonb only for the rows written */
    r = qj(c,
           "WITH s AS (SELECT x.i, x.t, x.id, x.f, x.r, x.aue, x.ls, x.lc,"
           "  coalesce(x.h, md5(x.f::jsonb::text)) AS nh"
           "  FROM json_to_recordset($1::json) AS x(i int, t text, id text,"
           "  f json, h text, r uuid, aue date, ls timestamptz, lc text)),"
           " h AS (SELECT s.*, a.asset_id AS aid, a.content_hash AS oh,"
           "  a.in_google AS og, a.device AS od"
           "  FROM s LEFT JOIN assets a ON a.tenant_id = s.t AND a.device_id = s.id),"
           " seen AS (INSERT INTO run_seen (tenant_id, run_id, object_kind, source_id)"
           "  SELECT t, r, 'device', id FROM h WHERE r IS NOT NULL ON CONFLICT DO NOTHING),"
           " up AS (INSERT INTO assets AS a (tenant_id, device_id, serial_number, model,"
           "  google_status, org_unit_id, org_unit_path, device, auto_update_expiry, last_sync,"
           "  in_google, content_hash, last_seen_run, lifecycle)"
           /* one jsonb parse per written row (OFFSET 0 keeps the cast from being copied
            * into each ->> below, and the filter on h runs first) */
           "  SELECT t, id, j->>'serial_number', j->>'model', j->>'status', j->>'org_unit_id',"
           "  j->>'org_unit_path', j, aue, ls, true, nh, r, lc"
           "  FROM h, LATERAL (SELECT h.f::jsonb AS j OFFSET 0) fj"
           "  WHERE aid IS NULL OR oh IS DISTINCT FROM nh OR NOT og"
           /* an existing asset's lifecycle is decided below, against the row as it is now */
           "  ON CONFLICT (tenant_id, device_id) WHERE device_id IS NOT NULL DO UPDATE SET"
           "  serial_number = EXCLUDED.serial_number, model = EXCLUDED.model,"
           "  google_status = EXCLUDED.google_status, org_unit_id = EXCLUDED.org_unit_id,"
           "  org_unit_path = EXCLUDED.org_unit_path, device = EXCLUDED.device,"
           "  auto_update_expiry = EXCLUDED.auto_update_expiry, last_sync = EXCLUDED.last_sync,"
           "  in_google = true, left_google_at = NULL, content_hash = EXCLUDED.content_hash,"
           "  last_seen_run = EXCLUDED.last_seen_run, version = a.version + 1, updated_at = now()"
           "  RETURNING a.tenant_id, a.device_id, a.asset_id)"
           " SELECT up.asset_id, h.i, up.asset_id IS NOT NULL, h.aid IS NULL, h.od, h.r"
           " FROM h LEFT JOIN up ON up.tenant_id = h.t AND up.device_id = h.id ORDER BY h.i",
           rows, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *row = json_array_get(rows, (size_t)strtol(col_str(r, i, 1), NULL, 10));
        const char *t = json_string_value(json_object_get(row, "t"));
        const char *run = col_str(r, i, 5);
        bool changed = col_bool(r, i, 2), isnew = col_bool(r, i, 3);
        struct run_counts *rcnt = run ? run_counts_for(c, t, run) : NULL;
        if (rcnt) {
            rcnt->seen++;
            if (!changed)
                rcnt->unchanged++;
            else if (isnew)
                rcnt->created++;
            else
                rcnt->updated++;
        }
        if (!changed)
            continue;
        c->rows_changed++;
        json_t *od = col_json(r, i, 4);
        json_t *f = json_object_get(row, "f");
        json_t *ch = merge_changed_fields(od, f);
        const char *status = json_string_value(json_object_get(f, "status"));
        const char *old_status = json_string_value(json_object_get(od, "status"));
        const char *lc = asset_status_lifecycle(status);
        /* An existing asset follows Google's status while no admin set its lifecycle; a move
         * into DISABLED or DEPROVISIONED overrides an admin's lifecycle (docs/sources.md). */
        bool forced = asset_status_blocks_checkout(status) &&
                      (!old_status || strcmp(old_status, status) != 0);
        int e = !ch ||
                json_array_append_new(
                    events,
                    json_pack("{s:s,s:s,s:i,s:O,s:s?}", "t", t, "a", col_str(r, i, 0), "k",
                              isnew ? PB_ASSET_CHANGE_KIND_CREATED : PB_ASSET_CHANGE_KIND_UPDATED,
                              "ch", ch, "r", run)) ||
                (!isnew && lc &&
                 json_array_append_new(lifecycles,
                                       json_pack("{s:s,s:s,s:s,s:b,s:i}", "t", t, "a",
                                                 col_str(r, i, 0), "lc", lc, "forced", forced, "n",
                                                 (int)json_array_size(events) - 1)));
        json_decref(od);
        json_decref(ch);
        if (e) {
            snprintf(c->err, c->errlen, "out of memory applying devices");
            goto out;
        }
    }
    if (json_array_size(lifecycles) > 0) {
        PQclear(r);
        r = qj(c,
               "UPDATE assets a SET lifecycle = v.lc, lifecycle_changed_at = now(),"
               " lifecycle_changed_by = CASE WHEN v.forced THEN NULL"
               "  ELSE a.lifecycle_changed_by END"
               " FROM jsonb_to_recordset($1::jsonb) AS v(t text, a uuid, lc text, forced boolean,"
               " n int)"
               " WHERE a.tenant_id = v.t AND a.asset_id = v.a AND a.lifecycle <> v.lc"
               " AND (v.forced OR a.lifecycle_changed_by IS NULL) RETURNING v.n",
               lifecycles, PGRES_TUPLES_OK);
        if (!r)
            goto out;
        for (int i = 0; i < PQntuples(r); i++) {
            json_t *e = json_array_get(events, (size_t)strtol(col_str(r, i, 0), NULL, 10));
            json_array_append_new(json_object_get(e, "ch"), json_string("lifecycle"));
        }
    }
done:
    rc = asset_events(c, events);
out:
    PQclear(r);
    json_decref(events);
    json_decref(lifecycles);
    return rc;
}

static int orgunits_apply(struct actx *c, json_t *rows)
{
    int rc = -1;
    PGresult *r = NULL;
    if (json_array_size(rows) == 0)
        return 0;
    r = qj(c,
           "WITH s AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(i int, t text, id text,"
           "  f jsonb, r uuid)),"
           " h AS (SELECT s.*, md5(s.f::text) AS nh, o.org_unit_id AS oid, o.content_hash AS oh,"
           "  o.removed_at IS NOT NULL AS was_removed,"
           "  jsonb_strip_nulls(jsonb_build_object('org_unit_id', o.org_unit_id, 'path', o.path,"
           "  'name', nullif(o.name, ''), 'description', o.description, 'parent_id', o.parent_id,"
           "  'parent_path', o.parent_path)) AS od"
           "  FROM s LEFT JOIN org_units o ON o.tenant_id = s.t AND o.org_unit_id = s.id),"
           " seen AS (INSERT INTO run_seen (tenant_id, run_id, object_kind, source_id)"
           "  SELECT t, r, 'org_unit', id FROM h WHERE r IS NOT NULL ON CONFLICT DO NOTHING),"
           " up AS (INSERT INTO org_units AS o (tenant_id, org_unit_id, path, name, description,"
           "  parent_id, parent_path, content_hash, last_seen_run)"
           "  SELECT t, id, f->>'path', coalesce(f->>'name', ''), f->>'description',"
           "  f->>'parent_id', f->>'parent_path', nh, r FROM h"
           "  WHERE oid IS NULL OR oh <> nh OR was_removed"
           "  ON CONFLICT (tenant_id, org_unit_id) DO UPDATE SET path = EXCLUDED.path,"
           "  name = EXCLUDED.name, description = EXCLUDED.description,"
           "  parent_id = EXCLUDED.parent_id, parent_path = EXCLUDED.parent_path,"
           "  content_hash = EXCLUDED.content_hash, last_seen_run = EXCLUDED.last_seen_run,"
           "  removed_at = NULL, version = o.version + 1, updated_at = now()"
           "  RETURNING o.tenant_id, o.org_unit_id)"
           " SELECT h.i, up.org_unit_id IS NOT NULL, h.oid IS NULL, h.od, h.r, h.was_removed"
           " FROM h LEFT JOIN up ON up.tenant_id = h.t AND up.org_unit_id = h.id ORDER BY h.i",
           rows, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *row = json_array_get(rows, (size_t)strtol(col_str(r, i, 0), NULL, 10));
        const char *t = json_string_value(json_object_get(row, "t"));
        const char *id = json_string_value(json_object_get(row, "id"));
        const char *run = col_str(r, i, 4);
        bool changed = col_bool(r, i, 1), isnew = col_bool(r, i, 2);
        struct run_counts *rcnt = run ? run_counts_for(c, t, run) : NULL;
        if (rcnt) {
            rcnt->seen++;
            if (!changed)
                rcnt->unchanged++;
            else if (isnew)
                rcnt->created++;
            else
                rcnt->updated++;
        }
        if (!changed)
            continue;
        c->rows_changed++;
        json_t *od = isnew ? NULL : col_json(r, i, 3);
        json_t *f = json_object_get(row, "f");
        json_t *ch = merge_changed_fields(od, f);
        Panel__V1__ChangeKind kind = isnew               ? PB_CHANGE_KIND_CREATED
                                     : col_bool(r, i, 5) ? PB_CHANGE_KIND_RESTORED
                                                         : PB_CHANGE_KIND_UPDATED;
        int e = !ch || orgunit_event(c, t, run, id, kind, f, ch);
        json_decref(od);
        json_decref(ch);
        if (e)
            goto out;
    }
    rc = 0;
out:
    PQclear(r);
    return rc;
}

/* ---------------------------------------------------------------- removals */

/* Remove the objects in list (array of {"t","k","s","id"}; k person|device|org_unit) and
 * remerge or announce what changed. suspend: Azure soft delete (person rows only). */
static int remove_objects(struct actx *c, json_t *list, const char *run, bool suspend,
                          long *removed)
{
    int rc = -1;
    PGresult *r = NULL;
    json_t *persons = json_array();
    const char *params[2];
    char *text = pjson_dump_compact(list);
    *removed = 0;
    if (!text)
        goto out;
    params[0] = text;
    params[1] = run;
    r = q(c,
          suspend ? "UPDATE person_sources ps SET suspended_in_source = true, updated_at = now()"
                    " FROM jsonb_to_recordset($1::jsonb) AS v(t text, k text, s text, id text)"
                    " WHERE v.k = 'person' AND ps.tenant_id = v.t AND ps.source = v.s"
                    " AND ps.source_id = v.id AND ps.removed_at IS NULL"
                    " AND NOT ps.suspended_in_source RETURNING ps.tenant_id, ps.person_id"
                  : "UPDATE person_sources ps SET removed_at = now(), updated_at = now()"
                    " FROM jsonb_to_recordset($1::jsonb) AS v(t text, k text, s text, id text)"
                    " WHERE v.k = 'person' AND ps.tenant_id = v.t AND ps.source = v.s"
                    " AND ps.source_id = v.id AND ps.removed_at IS NULL"
                    " RETURNING ps.tenant_id, ps.person_id",
          1, params, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    *removed += PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++)
        if (col_str(r, i, 1))
            json_array_append_new(persons, json_pack("{s:s,s:s,s:s?}", "t", col_str(r, i, 0), "p",
                                                     col_str(r, i, 1), "r", run));
    PQclear(r);
    r = NULL;
    if (people_remerge(c, persons))
        goto out;
    if (suspend) {
        rc = 0;
        goto out;
    }
    r = q(c,
          "UPDATE assets a SET in_google = false, left_google_at = now(),"
          " version = a.version + 1, updated_at = now()"
          " FROM jsonb_to_recordset($1::jsonb) AS v(t text, k text, s text, id text)"
          " WHERE v.k = 'device' AND a.tenant_id = v.t AND a.device_id = v.id AND a.in_google"
          " RETURNING a.tenant_id, " ASSET_EVENT_JSON_SQL,
          1, params, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    *removed += PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *ch = json_pack("[s]", "in_google");
        int e = !ch || asset_event(c, col_str(r, i, 0), run, col_str(r, i, 1),
                                   PB_ASSET_CHANGE_KIND_LEFT_GOOGLE, ch);
        json_decref(ch);
        if (e)
            goto out;
    }
    PQclear(r);
    r = q(c,
          "UPDATE org_units o SET removed_at = now(), version = o.version + 1, updated_at = now()"
          " FROM jsonb_to_recordset($1::jsonb) AS v(t text, k text, s text, id text)"
          " WHERE v.k = 'org_unit' AND o.tenant_id = v.t AND o.org_unit_id = v.id"
          " AND o.removed_at IS NULL"
          " RETURNING o.tenant_id, o.org_unit_id, jsonb_strip_nulls(jsonb_build_object("
          " 'org_unit_id', o.org_unit_id, 'path', o.path, 'name', nullif(o.name, ''),"
          " 'description', o.description, 'parent_id', o.parent_id,"
          " 'parent_path', o.parent_path))",
          1, params, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    *removed += PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *f = col_json(r, i, 2), *ch = json_array();
        int e = orgunit_event(c, col_str(r, i, 0), run, col_str(r, i, 1), PB_CHANGE_KIND_REMOVED, f,
                              ch);
        json_decref(f);
        json_decref(ch);
        if (e)
            goto out;
    }
    rc = 0;
out:
    if (!text)
        snprintf(c->err, c->errlen, "out of memory");
    PQclear(r);
    free(text);
    json_decref(persons);
    return rc;
}

/* ---------------------------------------------------------------- runs */

static const char *kind_str(Panel__V1__RunKind k)
{
    return k == PB_RUN_KIND_DELTA ? "delta" : "full";
}

static int ensure_run(struct actx *c, const Envelope *env, const char *status)
{
    const char *kind = "full", *reason = "", *preview = "false";
    if (env->payload_case == PB_PAYLOAD_RUN_STARTED) {
        kind = kind_str(env->run_started->kind);
        reason = env->run_started->reason ? env->run_started->reason : "";
        preview = env->run_started->preview ? "true" : "false";
    }
    const char *params[7] = {
        env->tenant_id, env->run_id, events_source_str(env->source), kind, preview, reason, status};
    if (cmd(c, "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", 1, params))
        return -1;
    /* RunStarted: a row auth created stays, and becomes running; so does one auth expired
     * (a fetcher started it late after all: what happens now is what the admin sees). */
    if (status)
        return cmd(c,
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
    return cmd(c,
               "INSERT INTO sync_runs (tenant_id, run_id, source, status, started_at)"
               " VALUES ($1, $2, $3, 'running', now()) ON CONFLICT DO NOTHING",
               3, params);
}

struct run_info {
    bool found, preview, delta, open;
};

static int run_info(struct actx *c, const char *tenant, const char *run, struct run_info *ri)
{
    const char *params[2] = {tenant, run};
    PGresult *r = q(c,
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

/* RunCompleted: remove (or hold) what a full run did not see, or what a delta run reported
 * deleted. The kind is the one RunCompleted reports (a delta run that fell back to a full
 * listing completes as full), and it is stored as the run's kind. */
static int run_completed(struct actx *c, const Envelope *env)
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
    if (run_info(c, t, run, &ri))
        goto out;
    if (!ri.found || !ri.open) { /* unknown or already finished: nothing to do */
        rc = 0;
        goto out;
    }
    const Panel__V1__RunCompleted *rcm = env->run_completed;
    if (rcm->counts && events_to_json(&rcm->counts->base, &b))
        goto out;
    bool full = rcm->has_kind && rcm->kind != PB_RUN_KIND_UNSPECIFIED
                    ? rcm->kind == PB_RUN_KIND_FULL
                    : !ri.delta;
    const char *params[3] = {t, src, run};
    if (cmd(c, "UPDATE sync_runs SET kind = $3 WHERE tenant_id = $1 AND run_id = $2", 3,
            (const char *[]){t, run, full ? "full" : "delta"}))
        goto out;
    if (!full) {
        /* what the run reported deleted, still there */
        r = q(c,
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
        r = q(c,
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
            list, json_pack("{s:s,s:s,s:s,s:s}", "t", t, "k", k, "s", src, "id", col_str(r, i, 1)));
    }
    PQclear(r);
    r = NULL;
    if (json_array_size(list) > 0) {
        /* the same threshold for a full run's and a delta run's removals */
        r = q(c,
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
        r = q(c,
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
        rc = cmd(c,
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
            outcome_add(c, t, run, json_string_value(json_object_get(o, "k")), src,
                        json_string_value(json_object_get(o, "id")), NULL, "held_removal",
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
        rc = flush_outcomes(c) ||
             cmd(c,
                 "UPDATE sync_runs SET status = 'held', finished_at = now(),"
                 " fetched_counts = $3::jsonb, pending_removals = $4::bigint, message = $5"
                 " WHERE tenant_id = $1 AND run_id = $2",
                 5, params);
    } else {
        if (nlist > 0 && remove_objects(c, list, run, false, &removed))
            goto out;
        snprintf(rbuf, sizeof rbuf, "%ld", removed);
        const char *params[4] = {t, run, b.data ? b.data : "{}", rbuf};
        rc = cmd(c,
                 "UPDATE sync_runs SET status = 'completed', finished_at = now(),"
                 " fetched_counts = $3::jsonb, removed = removed + $4::bigint"
                 " WHERE tenant_id = $1 AND run_id = $2",
                 4, params);
    }
    if (rc == 0 && full && !ri.preview) {
        /* A newer complete listing supersedes older held deletions of the same source: they
         * are decided again from this run's view. */
        const char *params[3] = {t, src, run};
        rc = cmd(c,
                 "UPDATE sync_runs SET status = 'rejected', pending_removals = 0,"
                 " decided_by = 'merger', decided_at = now(),"
                 " message = 'superseded by the newer complete run ' || $3"
                 " WHERE tenant_id = $1 AND source = $2 AND status = 'held' AND run_id <> $3::uuid",
                 3, params);
    }
    if (rc == 0) {
        const char *params[2] = {t, run};
        rc = cmd(c, "DELETE FROM run_seen WHERE tenant_id = $1 AND run_id = $2", 2, params) ||
             cmd(c, "DELETE FROM run_reported_removals WHERE tenant_id = $1 AND run_id = $2", 2,
                 params);
    }
out:
    PQclear(r);
    json_decref(list);
    json_decref(counts);
    buf_free(&b);
    return rc;
}

#define FORBIDDEN_LISTINGS_MAX   8
#define FORBIDDEN_LISTING_MAXLEN 64

static int run_failed(struct actx *c, const Envelope *env)
{
    const Panel__V1__RunFailed *f = env->run_failed;
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
    const char *params[5] = {env->tenant_id, env->run_id,
                             ev ? ev->name : "RUN_FAILURE_REASON_UNSPECIFIED",
                             f->message ? f->message : "", listings};
    /* A failed run deletes nothing: what it saw is forgotten. The reason is stored as the
     * short code admins see ("revoked", "throttled", ...), with the listings the provider
     * refused (what the connection then says is missing). */
    int rc =
        cmd(c,
            "UPDATE sync_runs SET status = 'failed', finished_at = now(),"
            " failure_reason = lower(regexp_replace($3, '^RUN_FAILURE_REASON_', '')),"
            " message = $4,"
            " forbidden_listings = ARRAY(SELECT jsonb_array_elements_text($5::jsonb))"
            " WHERE tenant_id = $1 AND run_id = $2"
            " AND status IN ('requested', 'running', 'expired')",
            5, params) ||
        cmd(c, "DELETE FROM run_seen WHERE tenant_id = $1 AND run_id = $2", 2, params) ||
        cmd(c, "DELETE FROM run_reported_removals WHERE tenant_id = $1 AND run_id = $2", 2, params);
    free(listings);
    return rc;
}

/* ---------------------------------------------------------------- validation */

static bool text_ok(const char *s, size_t max)
{
    return s && *s && strlen(s) <= max;
}

/* Every string of a decoded message is valid UTF-8 (PostgreSQL refuses anything else). */
static bool strings_ok(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        size_t n = 1;
        void *const *items = (void *const *)(base + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)(base + f->quantifier_offset);
            items = *(void *const *const *)(base + f->offset);
        }
        for (size_t k = 0; k < n; k++) {
            if (!items[k])
                continue;
            if (f->type == PROTOBUF_C_TYPE_STRING ? !ids_utf8_valid(items[k], strlen(items[k]))
                                                  : !strings_ok(items[k]))
                return false;
        }
    }
    return true;
}

int apply_validate(const Envelope *env, char *err, size_t errlen)
{
    const char *problem = NULL;
    if (!strings_ok(&env->base)) {
        snprintf(err, errlen, "a string field is not valid UTF-8");
        return -1;
    }
    switch (env->payload_case) {
    case PB_PAYLOAD_RUN_STARTED:
    case PB_PAYLOAD_RUN_COMPLETED:
    case PB_PAYLOAD_RUN_FAILED:
        break;
    case PB_PAYLOAD_PERSON_OBSERVED:
        if (!env->person_observed->person || !text_ok(env->person_observed->person->source_id, 256))
            problem = "PersonObserved without person.source_id";
        break;
    case PB_PAYLOAD_ORG_UNIT_OBSERVED:
        if (!env->org_unit_observed->org_unit ||
            !text_ok(env->org_unit_observed->org_unit->org_unit_id, 256) ||
            !text_ok(env->org_unit_observed->org_unit->path, 4096))
            problem = "OrgUnitObserved without org_unit_id or path";
        else if (env->source != PB_SOURCE_GOOGLE)
            problem = "OrgUnitObserved from a source other than google";
        break;
    case PB_PAYLOAD_DEVICE_OBSERVED:
        if (!env->device_observed->device || !text_ok(env->device_observed->device->device_id, 256))
            problem = "DeviceObserved without device.device_id";
        else if (env->source != PB_SOURCE_GOOGLE)
            problem = "DeviceObserved from a source other than google";
        break;
    case PB_PAYLOAD_OBJECT_REMOVED:
        if (!text_ok(env->object_removed->source_id, 256) ||
            env->object_removed->kind == PB_OBJECT_KIND_UNSPECIFIED)
            problem = "ObjectRemoved without kind or source_id";
        break;
    default:
        problem = "payload does not belong on panel.source.events";
    }
    if (!problem && !ids_tenant_valid(env->tenant_id))
        problem = "tenant_id is not a valid tenant id";
    else if (!problem && !ids_uuid_valid(env->run_id))
        problem = "run_id missing or not a UUID";
    else if (!problem && env->source != PB_SOURCE_GOOGLE && env->source != PB_SOURCE_AZURE)
        problem = "source must be google or azure";
    if (problem) {
        snprintf(err, errlen, "%s", problem);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- segments */

/* A date "YYYY-MM-DD" or an RFC 3339 time that PostgreSQL will accept; NULL otherwise. */
static const char *date_or_null(const char *s, bool with_time)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s)
        return NULL;
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (!end)
        return NULL;
    if (!with_time)
        return *end == '\0' && tm.tm_year > 0 && tm.tm_year < 8000 ? s : NULL;
    if (*end != 'T' || !strptime(end + 1, "%H:%M:%S", &tm))
        return NULL;
    struct tm chk = tm;
    time_t tt = timegm(&chk);
    struct tm back;
    gmtime_r(&tt, &back);
    if (back.tm_mday != tm.tm_mday || tm.tm_year < 0 || tm.tm_year > 8000)
        return NULL;
    return s;
}

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
        if (env->payload_case == PB_PAYLOAD_PERSON_OBSERVED ||
            env->payload_case == PB_PAYLOAD_DEVICE_OBSERVED ||
            env->payload_case == PB_PAYLOAD_ORG_UNIT_OBSERVED) {
            struct run_counts *rcnt = run_counts_for(c, t, run);
            if (rcnt)
                rcnt->observed++;
        }
        if (env->payload_case == PB_PAYLOAD_PERSON_OBSERVED) {
            const Panel__V1__Person *p = env->person_observed->person;
            char norm[320];
            const char *email = p->email_normalized ? p->email_normalized : p->email;
            bool has_email = ids_email_normalize(email, norm, sizeof norm) == 0;
            obj_key(key, sizeof key, t, src, p->source_id);
            json_t *rm = json_object_get(rmidx, key);
            if (rm) { /* seen after its removal was reported: it is back */
                json_object_set_new(rm, "x", json_true());
                json_object_del(rmidx, key);
            }
            /* A delta carries only what changed: without the address it still updates the
             * account we already have (people_apply skips it when we have none). */
            if (!has_email && !is_delta) {
                outcome_add(c, t, run, "person", src, p->source_id, NULL, "skipped",
                            "no usable e-mail address");
                struct run_counts *rcnt = run_counts_for(c, t, run);
                if (rcnt) {
                    rcnt->seen++;
                    rcnt->skipped++;
                }
                continue;
            }
            json_t *f = person_fields(p, has_email ? norm : NULL);
            if (merge_person_drop_invalid(f) > 0)
                log_warn_t(t, run, "%s person %s: a value out of range was left out", src,
                           p->source_id);
            json_t *cl = json_array();
            for (size_t k = 0; k < p->n_cleared_fields; k++)
                json_array_append_new(cl, json_string(p->cleared_fields[k]));
            json_t *prev = json_object_get(idx, key);
            if (prev && is_delta) { /* Graph listed the object twice: combine the deltas */
                json_t *alt = person_alt_emails(p);
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
                                    run, "delta", is_delta, "cl", cl, "alt", person_alt_emails(p));
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
                                    date_or_null(d->last_sync, true) ? json_string(d->last_sync)
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
            json_t *rm = json_pack("{s:s,s:s,s:s,s:s,s:s}", "t", t, "k", k, "s", src, "id",
                                   o->source_id, "r", run);
            if (!rm || json_array_append_new(changed ? suspends : removals, rm))
                goto oom;
            if (strcmp(k, "person") == 0) {
                obj_key(key, sizeof key, t, src, o->source_id);
                json_t *old = json_object_get(rmidx, key);
                if (old) /* the later report is the one that counts */
                    json_object_set_new(old, "x", json_true());
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
        struct run_counts *rcnt = run_counts_for(c, json_string_value(json_object_get(o, "t")),
                                                 json_string_value(json_object_get(o, "r")));
        if (rcnt)
            rcnt->seen++;
    }
    if (json_array_size(removals) > 0) {
        PGresult *r =
            qj(c,
               "INSERT INTO run_reported_removals (tenant_id, run_id, object_kind, source,"
               " source_id) SELECT v.t, v.r, v.k, v.s, v.id"
               " FROM jsonb_to_recordset($1::jsonb) AS v(t text, r uuid, k text, s text,"
               " id text, x boolean) WHERE v.x IS NOT TRUE ON CONFLICT DO NOTHING",
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
        const char *t = json_string_value(json_object_get(o, "t"));
        const char *run = json_string_value(json_object_get(o, "r"));
        struct run_counts *rcnt = run_counts_for(c, t, run);
        if (rcnt)
            rcnt->seen++;
        if (json_is_true(json_object_get(o, "x")))
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
        e = remove_objects(c, json_object_get(g, "list"),
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
        const char *k = NULL, *id = NULL;
        if (env->payload_case == PB_PAYLOAD_PERSON_OBSERVED)
            k = "person", id = env->person_observed->person->source_id;
        else if (env->payload_case == PB_PAYLOAD_DEVICE_OBSERVED)
            k = "device", id = env->device_observed->device->device_id;
        else if (env->payload_case == PB_PAYLOAD_ORG_UNIT_OBSERVED)
            k = "org_unit", id = env->org_unit_observed->org_unit->org_unit_id;
        if (k)
            json_array_append_new(rows, json_pack("{s:s,s:s,s:s,s:s}", "t", env->tenant_id, "r",
                                                  env->run_id, "k", k, "id", id));
    }
    int rc = 0;
    if (json_array_size(rows) > 0) {
        PGresult *r = qj(c,
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

static int apply_segment(struct actx *c, const struct apply_msg *msgs, size_t from, size_t to)
{
    int rc = -1;
    json_t *previews = json_object();
    bool any_preview = false;
    /* Runs of this segment: make sure their rows exist, learn preview / delta. */
    for (size_t i = from; i < to; i++) {
        const Envelope *env = msgs[i].env, *dead = msgs[i].dead;
        if (!env && dead && ids_tenant_valid(dead->tenant_id) && ids_uuid_valid(dead->run_id) &&
            (dead->source == PB_SOURCE_GOOGLE || dead->source == PB_SOURCE_AZURE)) {
            /* A dead-lettered observation: its run is incomplete and says which object. */
            const char *k = NULL, *id = NULL;
            if (dead->payload_case == PB_PAYLOAD_PERSON_OBSERVED && dead->person_observed)
                k = "person", id = dead->person_observed->person
                                       ? dead->person_observed->person->source_id
                                       : NULL;
            else if (dead->payload_case == PB_PAYLOAD_DEVICE_OBSERVED && dead->device_observed)
                k = "device", id = dead->device_observed->device
                                       ? dead->device_observed->device->device_id
                                       : NULL;
            else if (dead->payload_case == PB_PAYLOAD_ORG_UNIT_OBSERVED && dead->org_unit_observed)
                k = "org_unit", id = dead->org_unit_observed->org_unit
                                         ? dead->org_unit_observed->org_unit->org_unit_id
                                         : NULL;
            if (k) {
                char idbuf[257];
                snprintf(idbuf, sizeof idbuf, "%s", id ? id : "");
                if (ensure_run(c, dead, NULL))
                    goto out;
                outcome_add(c, dead->tenant_id, dead->run_id, k, events_source_str(dead->source),
                            id && ids_utf8_valid(idbuf, strlen(idbuf)) ? idbuf : NULL, NULL,
                            "invalid", msgs[i].dead_reason ? msgs[i].dead_reason : "invalid");
                struct run_counts *rcnt = run_counts_for(c, dead->tenant_id, dead->run_id);
                if (rcnt) {
                    rcnt->seen++;
                    rcnt->skipped++;
                    rcnt->observed++; /* received, though not applied */
                }
            }
            continue;
        }
        if (!env || json_object_get(previews, env->run_id))
            continue;
        struct run_info ri;
        if (ensure_run(c, env, NULL) || run_info(c, env->tenant_id, env->run_id, &ri))
            goto out;
        json_object_set_new(previews, env->run_id,
                            json_pack("{s:b,s:b}", "preview", ri.preview, "delta", ri.delta));
        any_preview |= ri.preview;
    }
    if (apply_observations(c, msgs, from, to, false, previews) || flush_outbox(c))
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
    if (flush_outcomes(c) || flush_counts(c))
        goto out;
    rc = 0;
out:
    json_decref(previews);
    return rc;
}

static bool is_control(const Envelope *env)
{
    return env && (env->payload_case == PB_PAYLOAD_RUN_STARTED ||
                   env->payload_case == PB_PAYLOAD_RUN_COMPLETED ||
                   env->payload_case == PB_PAYLOAD_RUN_FAILED);
}

static int apply_control(struct actx *c, const Envelope *env)
{
    int rc;
    switch (env->payload_case) {
    case PB_PAYLOAD_RUN_STARTED:
        return ensure_run(c, env, "running");
    case PB_PAYLOAD_RUN_COMPLETED:
        rc = ensure_run(c, env, NULL) || run_completed(c, env);
        break;
    default:
        rc = ensure_run(c, env, NULL) || run_failed(c, env);
        break;
    }
    if (rc == 0)
        rc = flush_outbox(c) || flush_outcomes(c);
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
    r = q(c,
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
    rc = cmd(c,
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
    struct actx *c = actx_new(pg, err, errlen);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return APPLY_ERROR;
    }
    err[0] = '\0';
    if (pgx_exec(pg, "BEGIN", err, errlen))
        goto out;
    /* Offsets first: a fenced batch stops before doing any work. */
    if (store_offsets(c, group, topic, msgs, n, &fenced))
        goto rollback;
    size_t seg = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && !is_control(msgs[i].env))
            continue;
        if (i > seg && apply_segment(c, msgs, seg, i))
            goto rollback;
        if (i < n && apply_control(c, msgs[i].env))
            goto rollback;
        seg = i + 1;
    }
    if (pgx_exec(pg, "COMMIT", err, errlen))
        goto out;
    if (stats) {
        stats->events = (long)n;
        stats->rows_changed = c->rows_changed;
    }
    res = APPLY_OK;
    goto out;
rollback : {
    char e2[256];
    if (pgx_exec(pg, "ROLLBACK", e2, sizeof e2))
        log_warn("rollback failed: %s", e2);
}
    if (fenced)
        res = APPLY_FENCED;
out:
    actx_free(c);
    return res;
}

/* ---------------------------------------------------------------- approve / reject */

enum apply_decide_result apply_decide(PGconn *pg, const char *tenant, const char *run_id,
                                      const char *admin, enum apply_decision d, long *removed,
                                      char *err, size_t errlen)
{
    enum apply_decide_result res = DECIDE_ERROR;
    struct actx *c = actx_new(pg, err, errlen);
    PGresult *r = NULL;
    json_t *list = json_array();
    *removed = 0;
    if (!c || !list) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (!ids_tenant_valid(tenant) || !ids_uuid_valid(run_id)) {
        res = DECIDE_NOT_FOUND;
        goto out;
    }
    if (pgx_exec(pg, "BEGIN", err, errlen))
        goto out;
    const char *params[4] = {tenant, run_id, admin, NULL};
    r = q(c, "SELECT status FROM sync_runs WHERE tenant_id = $1 AND run_id = $2 FOR UPDATE", 2,
          params, PGRES_TUPLES_OK);
    if (!r)
        goto rollback;
    if (PQntuples(r) == 0) {
        res = DECIDE_NOT_FOUND;
        goto rollback;
    }
    if (strcmp(col_str(r, 0, 0), "held") != 0) {
        res = DECIDE_NOT_HELD;
        goto rollback;
    }
    PQclear(r);
    r = NULL;
    if (d == APPLY_APPROVE) {
        r = q(c,
              "SELECT object_kind, source, source_id FROM run_outcomes WHERE tenant_id = $1"
              " AND run_id = $2 AND outcome = 'held_removal' ORDER BY outcome_id",
              2, params, PGRES_TUPLES_OK);
        if (!r)
            goto rollback;
        for (int i = 0; i < PQntuples(r); i++)
            json_array_append_new(list, json_pack("{s:s,s:s,s:s?,s:s}", "t", tenant, "k",
                                                  col_str(r, i, 0), "s", col_str(r, i, 1), "id",
                                                  col_str(r, i, 2)));
        PQclear(r);
        r = NULL;
        if (json_array_size(list) > 0 && remove_objects(c, list, run_id, false, removed))
            goto rollback;
        if (flush_outbox(c))
            goto rollback;
    }
    char nbuf[32];
    snprintf(nbuf, sizeof nbuf, "%ld", *removed);
    params[3] = nbuf;
    if (cmd(c,
            d == APPLY_APPROVE
                ? "UPDATE sync_runs SET status = 'approved', removed = removed + $4::bigint,"
                  " pending_removals = 0, decided_by = $3, decided_at = now()"
                  " WHERE tenant_id = $1 AND run_id = $2"
                : "UPDATE sync_runs SET status = 'rejected', pending_removals = 0,"
                  " decided_by = $3, decided_at = now(), removed = removed + 0 * $4::bigint"
                  " WHERE tenant_id = $1 AND run_id = $2",
            4, params))
        goto rollback;
    if (pgx_exec(pg, "COMMIT", err, errlen))
        goto out;
    res = DECIDE_OK;
    goto out;
rollback : {
    char e2[256];
    if (pgx_exec(pg, "ROLLBACK", e2, sizeof e2))
        log_warn("rollback failed: %s", e2);
}
out:
    PQclear(r);
    json_decref(list);
    actx_free(c);
    return res;
}

/* ---------------------------------------------------------------- match cases */

enum apply_decide_result apply_resolve_case(PGconn *pg, const char *tenant, const char *case_id,
                                            const char *person_id, const char *admin,
                                            char *resolved_person, size_t rplen, char *err,
                                            size_t errlen)
{
    enum apply_decide_result res = DECIDE_ERROR;
    struct actx *c = actx_new(pg, err, errlen);
    PGresult *r = NULL;
    json_t *persons = json_array();
    char newid[EVENTS_ID_LEN], run[EVENTS_ID_LEN] = "";
    if (!c || !persons) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (!ids_tenant_valid(tenant) || !ids_uuid_valid(case_id) ||
        (person_id && !ids_uuid_valid(person_id))) {
        res = DECIDE_NOT_FOUND;
        goto out;
    }
    if (pgx_exec(pg, "BEGIN", err, errlen))
        goto out;
    const char *params[4] = {tenant, case_id, NULL, admin};
    r = q(c,
          "SELECT m.source, m.source_id, m.status, ps.email_norm, m.run_id"
          " FROM match_cases m LEFT JOIN person_sources ps ON ps.tenant_id = m.tenant_id"
          " AND ps.source = m.source AND ps.source_id = m.source_id"
          " WHERE m.tenant_id = $1 AND m.case_id = $2 FOR UPDATE OF m",
          2, params, PGRES_TUPLES_OK);
    if (!r)
        goto rollback;
    if (PQntuples(r) == 0) {
        res = DECIDE_NOT_FOUND;
        goto rollback;
    }
    if (strcmp(col_str(r, 0, 2), "open") != 0 || !col_str(r, 0, 3)) {
        res = DECIDE_NOT_HELD;
        goto rollback;
    }
    char source[16], source_id[300], email[400];
    snprintf(source, sizeof source, "%s", col_str(r, 0, 0));
    snprintf(source_id, sizeof source_id, "%s", col_str(r, 0, 1));
    snprintf(email, sizeof email, "%s", col_str(r, 0, 3));
    if (col_str(r, 0, 4))
        snprintf(run, sizeof run, "%s", col_str(r, 0, 4));
    PQclear(r);
    r = NULL;
    if (person_id) {
        const char *p2[2] = {tenant, person_id};
        r = q(c,
              "SELECT 1 FROM people WHERE tenant_id = $1 AND person_id = $2::uuid"
              " AND removed_at IS NULL AND version > 0",
              2, p2, PGRES_TUPLES_OK);
        if (!r)
            goto rollback;
        if (PQntuples(r) == 0) {
            res = DECIDE_NOT_FOUND;
            goto rollback;
        }
        PQclear(r);
        r = NULL;
        snprintf(newid, sizeof newid, "%s", person_id);
    } else {
        const char *p2[3] = {tenant, NULL, email};
        if (crypto_uuid(newid)) {
            snprintf(err, errlen, "uuid generation failed");
            goto rollback;
        }
        p2[1] = newid;
        r = q(c,
              "INSERT INTO people (tenant_id, person_id, email_norm, version)"
              " SELECT $1, $2::uuid, $3, 0 WHERE NOT EXISTS (SELECT 1 FROM people"
              " WHERE tenant_id = $1 AND email_norm = $3 AND removed_at IS NULL)",
              3, p2, PGRES_COMMAND_OK);
        if (!r)
            goto rollback;
        if (strcmp(PQcmdTuples(r), "1") != 0) { /* the e-mail is another Person's */
            res = DECIDE_NOT_HELD;
            goto rollback;
        }
        PQclear(r);
        r = NULL;
    }
    params[2] = newid;
    const char *p3[4] = {tenant, source, source_id, newid};
    if (cmd(c,
            "UPDATE person_sources SET person_id = $4::uuid, updated_at = now()"
            " WHERE tenant_id = $1 AND source = $2 AND source_id = $3",
            4, p3))
        goto rollback;
    json_array_append_new(
        persons, json_pack("{s:s,s:s,s:s?}", "t", tenant, "p", newid, "r", *run ? run : NULL));
    if (people_remerge(c, persons) || flush_outbox(c))
        goto rollback;
    if (cmd(c,
            "UPDATE match_cases SET status = 'resolved', resolved_person_id = $3::uuid,"
            " resolved_by = $4, resolved_at = now() WHERE tenant_id = $1 AND case_id = $2",
            4, params))
        goto rollback;
    if (pgx_exec(pg, "COMMIT", err, errlen))
        goto out;
    snprintf(resolved_person, rplen, "%s", newid);
    res = DECIDE_OK;
    goto out;
rollback : {
    char e2[256];
    if (pgx_exec(pg, "ROLLBACK", e2, sizeof e2))
        log_warn("rollback failed: %s", e2);
}
out:
    PQclear(r);
    json_decref(persons);
    actx_free(c);
    return res;
}
