/* apply_ctx: what the apply modules share inside one transaction — the connection and the
 * caller's message buffer, the statement helpers (a statement with text parameters, or with
 * one JSON array staged through json(b)_to_recordset), and what is buffered until the end of
 * a segment: the per-run counters (sync_runs), the run_outcomes rows and the outbox rows.
 * Internal to the merger's apply_*.c; consumers use apply.h. */
#ifndef MERGER_APPLY_CTX_H
#define MERGER_APPLY_CTX_H

#include "buf.h"
#include "events.h"
#include "outbox.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define MAX_RUNS 256

/* Per-run counters of a segment, flushed into sync_runs. */
struct run_counts {
    char tenant[129];
    char run_id[EVENTS_ID_LEN];
    long seen, created, updated, unchanged, skipped, match_cases, removed;
    long observed; /* observation events received (sync_runs.observed) */
};

/* The context of one transaction. err (errlen bytes) is the caller's: every helper that
 * fails writes its reason there. */
struct actx {
    PGconn *pg;
    char *err;
    size_t errlen;
    struct outbox_batch *outbox; /* public events waiting for the outbox writer */
    json_t *outcomes;            /* run_outcomes rows waiting for one INSERT */
    struct run_counts runs[MAX_RUNS];
    size_t nruns;
    long rows_changed;
    bool conflict;   /* a statement failed on a deadlock or a serialization failure (another
                        member's concurrent transaction, not the events): the batch is retried */
    struct buf dump; /* the JSON parameter of each statement: one buffer reused (no regrowth) */
};

/* A context for one transaction on pg (borrowed); NULL when out of memory. */
struct actx *actx_new(PGconn *pg, char *err, size_t errlen);
void actx_free(struct actx *c);

/* Run sql with n text parameters; the result (caller PQclear-s it) when its status is want,
 * else NULL with the server's message in c->err. */
PGresult *actx_query(struct actx *c, const char *sql, int n, const char *const *params,
                     ExecStatusType want);
/* The same with one parameter, the JSON text of arr (borrowed). */
PGresult *actx_query_json(struct actx *c, const char *sql, const json_t *arr, ExecStatusType want);
/* A statement that returns no rows: 0 or -1. */
int actx_cmd(struct actx *c, const char *sql, int n, const char *const *params);

/* The counters of run in tenant (created zeroed on first use); NULL past MAX_RUNS runs. */
struct run_counts *actx_run_counts(struct actx *c, const char *tenant, const char *run);
/* Count one object of run (nothing when run is NULL or past MAX_RUNS runs): seen; seen and
 * skipped; seen and one of unchanged / created / updated. */
void actx_count_seen(struct actx *c, const char *tenant, const char *run);
/* One observation event received (sync_runs.observed), applied or not. */
void actx_count_observed(struct actx *c, const char *tenant, const char *run);
void actx_count_skipped(struct actx *c, const char *tenant, const char *run);
void actx_count_applied(struct actx *c, const char *tenant, const char *run, bool changed,
                        bool isnew);
/* The sync_runs parameter row of r, its columns by name: new reference, NULL when out of
 * memory. */
json_t *run_counts_row(const struct run_counts *r);
/* Add the counters to sync_runs and forget them. 0 or -1. */
int actx_flush_counts(struct actx *c);

/* Queue env (borrowed) for topic, keyed "<tenant>/<entity_id>". 0 or -1. */
int actx_outbox_add(struct actx *c, Envelope *env, const char *topic, const char *entity_id);
/* Write the queued outbox rows. 0 or -1. */
int actx_flush_outbox(struct actx *c);

/* What became of one object of a run (a run_outcomes row); members borrowed. */
struct run_outcome {
    const char *tenant_id, *run_id;
    const char *object_kind;                /* person | device | org_unit */
    const char *source, *source_id, *email; /* may be NULL */
    const char *outcome, *reason;
};
/* The run_outcomes parameter row of o, its columns by name: new reference, NULL when out of
 * memory or when a member that may not be NULL is (such a row is not recorded). */
json_t *run_outcome_row(const struct run_outcome *o);
/* Queue a run_outcomes row (source, source_id, email may be NULL). */
void actx_outcome_add(struct actx *c, const char *tenant, const char *run, const char *kind,
                      const char *source, const char *source_id, const char *email,
                      const char *outcome, const char *reason);
/* Insert the queued run_outcomes rows (of runs that exist). 0 or -1. */
int actx_flush_outcomes(struct actx *c);

/* Give each full row of rows (objects with the fields as "f"; a row with "delta": true is
 * left alone) its content hash "h", the md5 PostgreSQL gives md5(fields::text). */
void actx_rows_hash(struct actx *c, json_t *rows);

/* One row of the result of a segment's upsert of devices or org units, whose first columns
 * are: the staged row's index (in rows), changed, new, the stored fields before (JSON), the
 * run. */
struct upsert_row {
    json_t *staged;     /* the staged row, borrowed from rows: "t" tenant, "f" its fields */
    const char *tenant; /* borrowed from staged */
    const char *run;    /* borrowed from the result; NULL without a run */
    bool isnew;
    json_t *old_fields; /* new reference; NULL for a new object */
    json_t *changed;    /* the names of the changed fields: a new array */
};
/* Read row i of r into u and count it for its run: 1 when the object changed (rows_changed
 * counted; release u with actx_upsert_row_clear), 0 when it did not (nothing to release), -1
 * when out of memory. */
int actx_upsert_row(struct actx *c, PGresult *r, int i, json_t *rows, struct upsert_row *u);
void actx_upsert_row_clear(struct upsert_row *u);
/* Called for each changed row i of an upsert's result r, read into u (borrowed: released
 * after the call); 0, or -1 to stop (the reason in c->err). */
typedef int (*actx_upsert_fn)(struct actx *c, PGresult *r, int i, const struct upsert_row *u,
                              void *arg);
/* Read each row of r with actx_upsert_row and call on_changed for those whose object changed,
 * in order. 0, or -1 at the first failure (out of memory, or on_changed's). */
int actx_upsert_each(struct actx *c, PGresult *r, json_t *rows, actx_upsert_fn on_changed,
                     void *arg);

/* The transaction of an admin's decision or a batch: BEGIN; COMMIT; ROLLBACK (a failure to
 * roll back is logged: the connection is then reset by its owner). 0 or -1. */
int actx_begin(struct actx *c);
int actx_commit(struct actx *c);
void actx_rollback(struct actx *c);

/* The sightings of a run (run_seen) recorded by a statement that changes the objects: a CTE
 * reading t, r, id from the CTE named from. */
#define ACTX_RUN_SEEN_CTE(kind, from)                                                              \
    " seen AS (INSERT INTO run_seen (tenant_id, run_id, object_kind, source_id)"                   \
    "  SELECT t, r, '" kind "', id FROM " from " WHERE r IS NOT NULL ON CONFLICT DO NOTHING),"

/* Column readers: NULL / false / 0 for SQL NULL; col_json is a new reference. */
static inline const char *col_str(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static inline bool col_bool(PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

static inline int64_t col_i64(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* A row number a statement returns (of the JSON array it was given). */
static inline size_t col_index(PGresult *r, int row, int col)
{
    return (size_t)strtol(PQgetvalue(r, row, col), NULL, 10);
}

static inline json_t *col_json(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return json_loads(PQgetvalue(r, row, col), JSON_DECODE_ANY, NULL);
}

#endif
