/* alerts: see alerts.h. */
#include "alerts.h"

#include "kafka.h"
#include "log.h"
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The district's current alerts: held runs, each cloud's last run when it failed, revoked
 * or incomplete connections, and the number of overdue checkouts. */
static const struct db_stmt st_current = {
    "alerts_current",
    "SELECT coalesce(json_agg(x.a ORDER BY x.o, x.t DESC), '[]')::text FROM ("
    " SELECT 1 o, s.requested_at t, json_build_object('kind', 'run_held', 'cloud', s.source,"
    "   'run_id', s.run_id, 'count', s.pending_removals, 'since', s.finished_at) a"
    "   FROM sync_runs s WHERE s.tenant_id = $1 AND s.status = 'held'"
    " UNION ALL"
    " SELECT 2, l.requested_at, json_build_object('kind', 'run_failed', 'cloud', l.source,"
    "   'run_id', l.run_id, 'failure_reason', l.failure_reason, 'message', l.message,"
    "   'since', l.finished_at)"
    "   FROM (SELECT DISTINCT ON (s.source) s.* FROM sync_runs s WHERE s.tenant_id = $1"
    "     AND NOT s.preview ORDER BY s.source, s.requested_at DESC) l WHERE l.status = 'failed'"
    " UNION ALL"
    " SELECT 3, c.updated_at, json_build_object('kind', 'connection_' || c.status,"
    "   'cloud', c.provider, 'message', c.status_message, 'since', coalesce(c.revoked_at,"
    "   c.updated_at)) FROM connections c WHERE c.tenant_id = $1"
    "   AND c.status IN ('revoked', 'scope_missing')"
    " UNION ALL"
    " SELECT 4, min(c.due_at), json_build_object('kind', 'checkouts_overdue', 'count', count(*),"
    "   'since', min(c.due_at)) FROM checkouts c WHERE c.tenant_id = $1"
    "   AND c.checked_in_at IS NULL AND c.due_at < now() HAVING count(*) > 0) x"};

/* Happenings not yet published, every district: (kind, tenant, subject, cloud, run id,
 * pending removals, failure reason, message, checkout id, asset id, person id, due ms). */
static const struct db_stmt st_new = {
    "alerts_new",
    "SELECT * FROM ("
    " SELECT 'run_held' k, s.tenant_id, s.run_id::text subj, s.source, s.run_id::text run,"
    "   s.pending_removals::text n, NULL fr, s.message, NULL co, NULL asset, NULL person,"
    "   NULL due FROM sync_runs s WHERE s.status = 'held'"
    " UNION ALL"
    " SELECT 'run_failed', s.tenant_id, s.run_id::text, s.source, s.run_id::text, NULL,"
    "   s.failure_reason, s.message, NULL, NULL, NULL, NULL FROM sync_runs s"
    "   WHERE s.status = 'failed' AND s.finished_at > now() - interval '1 day'"
    " UNION ALL"
    " SELECT 'connection_revoked', c.tenant_id, c.provider || ' ' || coalesce(c.revoked_at,"
    "   c.updated_at)::text, c.provider, NULL, NULL, NULL, c.status_message, NULL, NULL, NULL,"
    "   NULL FROM connections c WHERE c.status = 'revoked'"
    " UNION ALL"
    " SELECT 'checkout_overdue', c.tenant_id, c.checkout_id::text, NULL, NULL, NULL, NULL,"
    "   NULL, c.checkout_id::text, c.asset_id::text, c.person_id::text,"
    "   (extract(epoch FROM c.due_at) * 1000)::bigint::text FROM checkouts c"
    "   WHERE c.checked_in_at IS NULL AND c.due_at < now()) h"
    " WHERE NOT EXISTS (SELECT 1 FROM sync_alerts a WHERE a.tenant_id = h.tenant_id"
    "   AND a.kind = h.k AND a.subject = h.subj) LIMIT 200"};

static const struct db_stmt st_claim = {
    "alerts_claim", "INSERT INTO sync_alerts (tenant_id, kind, subject, event_id)"
                    " VALUES ($1, $2, $3, $4::uuid) ON CONFLICT DO NOTHING"};

int alerts_list(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    if (rest_check_query(r, NULL))
        return r->status;
    const char *p[1] = {r->principal.tenant};
    PGresult *res = rest_exec(r, &st_current, 1, p);
    if (res)
        rest_reply_items(r, PQgetvalue(res, 0, 0));
    PQclear(res);
    return r->status;
}

static Panel__V1__SyncAlertKind kind_of(const char *k)
{
    if (strcmp(k, "run_held") == 0)
        return PB_SYNC_ALERT_KIND_RUN_HELD;
    if (strcmp(k, "run_failed") == 0)
        return PB_SYNC_ALERT_KIND_RUN_FAILED;
    if (strcmp(k, "connection_revoked") == 0)
        return PB_SYNC_ALERT_KIND_CONNECTION_REVOKED;
    return PB_SYNC_ALERT_KIND_CHECKOUT_OVERDUE;
}

static const char *cloud_name(const char *source)
{
    return source && strcmp(source, "azure") == 0 ? "Microsoft Entra ID" : "Google Workspace";
}

static const char *col(PGresult *res, int i, int c)
{
    return PQgetisnull(res, i, c) ? NULL : PQgetvalue(res, i, c);
}

static long long num(PGresult *res, int i, int c)
{
    return PQgetisnull(res, i, c) ? 0 : strtoll(PQgetvalue(res, i, c), NULL, 10);
}

/* One happening (row i of res) claimed and queued in its own transaction. 1 published, 0
 * another replica had it, -1 database error. */
static int publish_one(struct db_conn *db, PGresult *res, int i)
{
    const char *k = col(res, i, 0), *tenant = col(res, i, 1), *subject = col(res, i, 2),
               *cloud = col(res, i, 3), *run = col(res, i, 4);
    Envelope env;
    Panel__V1__SyncAlert al = PANEL__V1__SYNC_ALERT__INIT;
    char id[EVENTS_ID_LEN], msg[400];
    PGresult *r = NULL;
    int rc = -1;
    char err[256] = "";
    if (events_envelope_init(&env, id, tenant, PB_SOURCE_PANEL, run))
        return -1;
    al.has_kind = 1;
    al.kind = kind_of(k);
    al.cloud = (char *)cloud;
    switch (al.kind) {
    case PB_SYNC_ALERT_KIND_RUN_HELD:
        al.has_pending_removals = 1;
        al.pending_removals = num(res, i, 5);
        snprintf(msg, sizeof msg, "A %s sync is held: %lld removals wait for an admin's approval.",
                 cloud_name(cloud), (long long)al.pending_removals);
        break;
    case PB_SYNC_ALERT_KIND_RUN_FAILED:
        al.failure_reason = (char *)col(res, i, 6);
        snprintf(msg, sizeof msg, "A %s sync failed (%s): nothing was removed. %s",
                 cloud_name(cloud), al.failure_reason ? al.failure_reason : "error",
                 col(res, i, 7) ? col(res, i, 7) : "");
        break;
    case PB_SYNC_ALERT_KIND_CONNECTION_REVOKED:
        snprintf(msg, sizeof msg,
                 "Panel's access to %s was revoked: no sync runs until an admin authorizes "
                 "again; nothing imported was deleted.",
                 cloud_name(cloud));
        break;
    default:
        al.checkout_id = (char *)col(res, i, 8);
        al.asset_id = (char *)col(res, i, 9);
        al.person_id = (char *)col(res, i, 10);
        al.has_due_at_ms = 1;
        al.due_at_ms = num(res, i, 11);
        snprintf(msg, sizeof msg, "A checkout is overdue.");
        break;
    }
    al.message = msg;
    env.payload_case = PB_PAYLOAD_SYNC_ALERT;
    env.sync_alert = &al;
    r = PQexec(db_pg(db), "BEGIN");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        goto out;
    PQclear(r);
    const char *p[4] = {tenant, k, subject, id};
    r = db_exec(db, &st_claim, 4, p);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        goto out;
    if (strcmp(PQcmdTuples(r), "1") != 0) {
        rc = 0; /* published by another replica meanwhile */
        goto out;
    }
    PQclear(r);
    /* Key: the district, so a district's alerts keep their order. */
    if (outbox_write(db_pg(db), &env, TOPIC_SYNC_EVENTS, tenant, &r, err, sizeof err))
        goto out;
    r = PQexec(db_pg(db), "COMMIT");
    if (PQresultStatus(r) == PGRES_COMMAND_OK)
        rc = 1;
out:
    if (rc < 0)
        log_warn_t(tenant, run, "cannot publish the %s alert: %s", k,
                   r      ? PQresultErrorMessage(r)
                   : *err ? err
                          : "no event");
    PQclear(r);
    if (PQtransactionStatus(db_pg(db)) != PQTRANS_IDLE)
        PQclear(PQexec(db_pg(db), "ROLLBACK"));
    return rc;
}

int alerts_publish(struct db_pool *pool)
{
    int published = 0;
    char err[256];
    struct db_conn *db = NULL;
    if (db_get(pool, 1000, &db, err, sizeof err) != DB_OK)
        return 0; /* every connection busy serving, or the database away: next time */
    PGresult *res = db_exec(db, &st_new, 0, NULL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("cannot look for new alerts: %s", PQresultErrorMessage(res));
        published = -1;
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        int rc = publish_one(db, res, i);
        if (rc < 0) {
            published = -1;
            break;
        }
        published += rc;
    }
out:
    PQclear(res);
    db_put(db);
    return published;
}
