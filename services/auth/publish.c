/* publish: Kafka side of auth. */
#include "publish.h"

#include "crypto.h"
#include "db.h"
#include "log.h"
#include "outbox.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUBLISH_BATCH "100"

/* Every SQL text of this module (lib/db prepares each by its name). */
static const struct db_stmt st_tenant_lock = {"publish_tenant_lock",
                                              "SELECT pg_advisory_xact_lock(hashtext($1))"};
static const struct db_stmt st_run_in_flight = {
    "publish_run_in_flight", "SELECT run_id FROM sync_runs WHERE tenant_id = $1 AND source = $2 "
                             "AND preview = $4::boolean "
                             "AND ((status = 'requested' "
                             "      AND requested_at > now() - make_interval(secs => $5::int)) "
                             "  OR (status = 'running' AND coalesce(started_at, requested_at) "
                             "      > now() - make_interval(secs => $3::int))) "
                             "ORDER BY requested_at DESC LIMIT 1"};
static const struct db_stmt st_run_request = {
    "publish_run_request",
    "INSERT INTO sync_runs (tenant_id, run_id, source, kind, preview, reason, "
    "status, publish_pending, requested_by) "
    "VALUES ($1, $2::uuid, $3, 'full', $4::boolean, $5, 'requested', true, $6)"};
static const struct db_stmt st_conn_requested = {
    "publish_conn_requested",
    "UPDATE connections SET last_requested_at = now(), updated_at = now() "
    "WHERE tenant_id = $1 AND provider = $2"};
static const struct db_stmt st_runs_expire = {
    "publish_runs_expire",
    "UPDATE sync_runs SET status = 'expired', finished_at = now(), publish_pending = false, "
    "failure_reason = CASE WHEN status = 'requested' THEN 'not_started' "
    "  ELSE 'not_finished' END, "
    "message = CASE WHEN status = 'requested' "
    "  THEN 'no fetcher started this run within ' || $1 || ' s of the request' "
    "  ELSE 'the end of this run did not arrive within ' || $2 || ' s of its start' END "
    "  || '; a new request starts a new run' "
    "WHERE (status = 'requested' AND requested_at < now() - make_interval(secs => $1::int)) "
    "   OR (status = 'running' "
    "       AND coalesce(started_at, requested_at) < now() - make_interval(secs => $2::int)) "
    "RETURNING tenant_id, run_id, source, failure_reason"};
static const struct db_stmt st_pending_claim = {
    "publish_pending_claim",
    "SELECT tenant_id, run_id, source, reason, preview, coalesce(requested_by, '') "
    "FROM sync_runs WHERE publish_pending "
    "ORDER BY requested_at, (source = 'azure'), run_id "
    "LIMIT " PUBLISH_BATCH " FOR UPDATE SKIP LOCKED"};
static const struct db_stmt st_pending_done = {"publish_pending_done",
                                               "UPDATE sync_runs SET publish_pending = false "
                                               "WHERE tenant_id = $1 AND run_id = $2::uuid"};

#define PUBLISH_FLUSH_MS 10000

Panel__V1__Source publish_source(const char *provider)
{
    Panel__V1__Source s = events_source_from_str(provider);
    /* a provider is a cloud: "panel" is the Panel's own events, never a connection's */
    return s == PB_SOURCE_PANEL ? PB_SOURCE_UNSPECIFIED : s;
}

/* The envelope of every event auth writes: a new id, the tenant, provider as its source, the
 * run (NULL for none). 0, or -1 with a message. */
static int envelope_new(Envelope *env, char id[EVENTS_ID_LEN], const char *tenant,
                        const char *provider, const char *run_id, char *err, size_t errlen)
{
    if (events_envelope_init(env, id, tenant, publish_source(provider), run_id) == 0)
        return 0;
    snprintf(err, errlen, "no randomness for the event id");
    return -1;
}

int outbox_auth_event(struct db_conn *db, const char *tenant, const char *provider,
                      Panel__V1__AuthEventKind kind, const char *const *scopes, size_t nscopes,
                      const char *message, const char *actor, char *err, size_t errlen)
{
    Envelope env;
    Panel__V1__AuthEvent ev = PANEL__V1__AUTH_EVENT__INIT;
    char id[EVENTS_ID_LEN];
    if (envelope_new(&env, id, tenant, provider, NULL, err, errlen))
        return -1;
    ev.has_kind = 1;
    ev.kind = kind;
    ev.n_granted_scopes = nscopes;
    ev.granted_scopes = (char **)scopes;
    ev.message = (char *)message;
    ev.actor = (char *)actor;
    env.payload_case = PB_PAYLOAD_AUTH_EVENT;
    env.auth_event = &ev;
    /* keyed by the district: a district's AuthEvents keep their order */
    return outbox_write(db_pg(db), &env, TOPIC_AUTH_EVENTS, tenant, NULL, err, errlen);
}

int sync_request_add(struct auth_ctx *c, struct db_conn *db, const char *tenant,
                     const char *provider, const char *reason, bool preview,
                     const char *requested_by, char run_id[37], bool *coalesced, char *err,
                     size_t errlen)
{
    int rc = -1;
    PGresult *res = NULL;
    char stale[32], start_timeout[32], lock[200];
    snprintf(stale, sizeof stale, "%ld", c->run_stale_s);
    snprintf(start_timeout, sizeof start_timeout, "%ld", c->run_start_wait_s);
    snprintf(lock, sizeof lock, "sync:%s/%s", tenant, provider);
    const char *lp[] = {lock};
    res = db_query(db, PGRES_TUPLES_OK, &st_tenant_lock, 1, lp, err, errlen);
    if (!res)
        goto out;
    PQclear(res);
    /* A preview never coalesces with a real run (nor a real run with a preview). */
    /* Only a run that can still be waited for absorbs the request (the same limits as
     * sync_requests_expire, so this holds even in a replica without the scheduler). */
    const char *fp[] = {tenant, provider, stale, preview ? "t" : "f", start_timeout};
    res = db_query(db, PGRES_TUPLES_OK, &st_run_in_flight, 5, fp, err, errlen);
    if (!res)
        goto out;
    if (PQntuples(res) == 1) {
        snprintf(run_id, 37, "%s", PQgetvalue(res, 0, 0));
        *coalesced = true;
        rc = 0;
        goto out;
    }
    PQclear(res);
    res = NULL;
    if (crypto_uuid(run_id)) {
        snprintf(err, errlen, "no randomness for the run id");
        goto out;
    }
    const char *ip[] = {tenant, run_id, provider, preview ? "t" : "f", reason, requested_by};
    res = db_query(db, PGRES_COMMAND_OK, &st_run_request, 6, ip, err, errlen);
    if (!res)
        goto out;
    const char *up[] = {tenant, provider};
    PQclear(res);
    res = db_query(db, PGRES_COMMAND_OK, &st_conn_requested, 2, up, err, errlen);
    if (!res)
        goto out;
    *coalesced = false;
    rc = 0;
out:
    PQclear(res);
    return rc;
}

long sync_requests_expire(struct auth_ctx *c, struct db_conn *db, char *err, size_t errlen)
{
    char stale[32], start_timeout[32];
    snprintf(stale, sizeof stale, "%ld", c->run_stale_s);
    snprintf(start_timeout, sizeof start_timeout, "%ld", c->run_start_wait_s);
    const char *p[] = {start_timeout, stale};
    PGresult *res = db_query(db, PGRES_TUPLES_OK, &st_runs_expire, 2, p, err, errlen);
    if (!res)
        return -1;
    long n = PQntuples(res);
    for (long i = 0; i < n; i++)
        log_warn_t(PQgetvalue(res, (int)i, 0), PQgetvalue(res, (int)i, 1),
                   "%s sync run expired (%s)", PQgetvalue(res, (int)i, 2),
                   PQgetvalue(res, (int)i, 3));
    PQclear(res);
    return n;
}

static int publish_one(struct auth_ctx *c, struct kafka_delivery *d, const char *tenant,
                       const char *run_id, const char *source, const char *reason, bool preview,
                       const char *by, char *err, size_t errlen)
{
    Envelope env;
    Panel__V1__SyncRequest req = PANEL__V1__SYNC_REQUEST__INIT;
    char id[EVENTS_ID_LEN];
    if (envelope_new(&env, id, tenant, source, run_id, err, errlen))
        return -1;
    req.reason = (char *)reason;
    req.has_preview = 1;
    req.preview = preview;
    req.requested_by = (char *)(by && *by ? by : NULL);
    env.payload_case = PB_PAYLOAD_SYNC_REQUEST;
    env.sync_request = &req;
    return events_publish_tracked(c->producer, TOPIC_SYNC_REQUESTS, tenant, &env, d, err, errlen);
}

long publish_pending_requests(struct auth_ctx *c, struct db_conn *db, char *err, size_t errlen)
{
    long n = -1;
    PGresult *res = NULL, *upd = NULL;
    /* This call's own delivery results: another thread's failure on the shared producer
     * must not keep (or clear) these rows' flags. */
    struct kafka_delivery *d = kafka_delivery_new();
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pgx_exec(db_pg(db), "BEGIN", err, errlen)) {
        kafka_delivery_release(d);
        return -1;
    }
    res = db_query(db, PGRES_TUPLES_OK, &st_pending_claim, 0, NULL, err, errlen);
    if (!res)
        goto out;
    int rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        if (publish_one(c, d, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                        PQgetvalue(res, i, 3), strcmp(PQgetvalue(res, i, 4), "t") == 0,
                        PQgetvalue(res, i, 5), err, errlen))
            goto out;
    }
    if (rows > 0) {
        long failed = kafka_delivery_wait(c->producer, d, PUBLISH_FLUSH_MS);
        if (failed != 0) {
            snprintf(err, errlen, "sync requests not delivered (%s)",
                     failed < 0 ? "timeout" : "error");
            goto out;
        }
    }
    for (int i = 0; i < rows; i++) {
        const char *p[] = {PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)};
        upd = db_query(db, PGRES_COMMAND_OK, &st_pending_done, 2, p, err, errlen);
        if (!upd)
            goto out;
        PQclear(upd);
        upd = NULL;
        log_info_t(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                   "sync request published (source=%s reason=%s)", PQgetvalue(res, i, 2),
                   PQgetvalue(res, i, 3));
    }
    if (pgx_exec(db_pg(db), "COMMIT", err, errlen))
        goto out;
    n = rows;
out:
    if (n < 0) {
        PQclear(PQexec(db_pg(db), "ROLLBACK"));
    }
    PQclear(res);
    PQclear(upd);
    kafka_delivery_release(d);
    return n;
}
