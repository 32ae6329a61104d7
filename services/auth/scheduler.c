/* scheduler: due schedules, revoke retries. */
#include "scheduler.h"

#include "connections.h"
#include "crypto.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "publish.h"
#include "signin.h"
#include "states.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEDULER_BATCH "50"

/* Every SQL text of this module (lib/db prepares each by its name). */
static const struct db_stmt st_windows = {
    "scheduler_windows", "SELECT extract(epoch FROM starts_at)::bigint, "
                         "extract(epoch FROM ends_at)::bigint FROM pause_windows "
                         "WHERE tenant_id = $1 AND ends_at > now() ORDER BY starts_at LIMIT "
                         "64"};
static const struct db_stmt st_due_claim = {
    "scheduler_due_claim",
    "SELECT c.tenant_id, c.provider, extract(epoch FROM c.next_sync_at)::bigint, "
    "coalesce(c.sync_interval_seconds, t.sync_interval_seconds), "
    "extract(epoch FROM now())::bigint "
    "FROM connections c JOIN tenants t ON t.tenant_id = c.tenant_id "
    "WHERE c.status = 'connected' AND c.next_sync_at <= now() "
    "ORDER BY c.next_sync_at, c.tenant_id, (c.provider = 'azure') "
    "LIMIT " SCHEDULER_BATCH " FOR UPDATE OF c SKIP LOCKED"};
static const struct db_stmt st_due_next = {
    "scheduler_due_next", "UPDATE connections SET next_sync_at = to_timestamp($3::bigint), "
                          "updated_at = now() WHERE tenant_id = $1 AND provider = $2"};
static const struct db_stmt st_revoke_claim = {
    "scheduler_revoke_claim", "SELECT tenant_id FROM connections WHERE remote_revoke_pending "
                              "AND provider = 'google' AND revoke_sealed IS NOT NULL "
                              "AND updated_at < now() - interval '5 seconds' "
                              "ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED"};
static const struct db_stmt st_revoke_grant = {
    "scheduler_revoke_grant", "SELECT encode(revoke_sealed, 'hex'), revoke_key_id FROM connections "
                              "WHERE tenant_id = $1 AND provider = 'google'"};
static const struct db_stmt st_revoke_later = {"scheduler_revoke_later",
                                               "UPDATE connections SET updated_at = now() "
                                               "WHERE tenant_id = $1 AND provider = 'google'"};

bool sched_paused(int64_t now, const struct pause_window *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (now >= w[i].starts_at && now < w[i].ends_at)
            return true;
    return false;
}

int64_t sched_next(int64_t now, int64_t due, int64_t interval)
{
    if (interval <= 0)
        interval = 1;
    if (due > now)
        return due + interval;
    int64_t k = (now - due) / interval + 1;
    return due + k * interval;
}

enum sched_action sched_decide(int64_t now, const struct pause_window *w, size_t n)
{
    return sched_paused(now, w, n) ? SCHED_PAUSED : SCHED_REQUEST;
}

struct scheduler {
    struct auth_ctx *ctx;
    struct metrics *metrics; /* borrowed; NULL: none */
    long tick_ms;
    pthread_t thread;
    atomic_int stop;
};

/* Load the tenant's pause windows (as epoch seconds). */
static int load_windows(struct db_conn *db, const char *tenant, struct pause_window *w, size_t max,
                        size_t *n, char *err, size_t errlen)
{
    const char *p[] = {tenant};
    PGresult *res = db_query(db, PGRES_TUPLES_OK, &st_windows, 1, p, err, errlen);
    if (!res)
        return -1;
    *n = 0;
    for (int i = 0; i < PQntuples(res) && *n < max; i++) {
        w[*n].starts_at = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        w[*n].ends_at = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        (*n)++;
    }
    PQclear(res);
    return 0;
}

static long fire_due(struct auth_ctx *c, struct db_conn *db, char *err, size_t errlen)
{
    long fired = -1, written = 0, coalesced_n = 0, paused_n = 0;
    PGresult *res = NULL, *upd = NULL;
    if (pgx_exec(db_pg(db), "BEGIN", err, errlen))
        return -1;
    res = db_query(db, PGRES_TUPLES_OK, &st_due_claim, 0, NULL, err, errlen);
    if (!res)
        goto out;
    for (int i = 0; i < PQntuples(res); i++) {
        const char *tenant = PQgetvalue(res, i, 0), *provider = PQgetvalue(res, i, 1);
        int64_t due = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        int64_t interval = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        int64_t now = strtoll(PQgetvalue(res, i, 4), NULL, 10);
        struct pause_window w[64];
        size_t nw = 0;
        if (load_windows(db, tenant, w, 64, &nw, err, errlen))
            goto out;
        if (sched_decide(now, w, nw) == SCHED_PAUSED) {
            log_info_t(tenant, NULL, "scheduled %s sync skipped: inside a pause window", provider);
            paused_n++;
        } else {
            char run_id[37];
            bool coalesced = false;
            if (sync_request_add(c, db, tenant, provider, "scheduled", false, "scheduler", run_id,
                                 &coalesced, err, errlen))
                goto out;
            if (coalesced) {
                log_info_t(tenant, run_id, "scheduled %s sync coalesced with the run in flight",
                           provider);
                coalesced_n++;
            } else {
                written++;
            }
        }
        char next[32];
        snprintf(next, sizeof next, "%" PRId64, sched_next(now, due, interval));
        const char *p[] = {tenant, provider, next};
        upd = db_query(db, PGRES_COMMAND_OK, &st_due_next, 3, p, err, errlen);
        if (!upd)
            goto out;
        PQclear(upd);
        upd = NULL;
    }
    if (pgx_exec(db_pg(db), "COMMIT", err, errlen))
        goto out;
    fired = written;
    /* Counted once committed: a rolled-back round requested nothing. */
    metrics_counter_add(c->metrics, "auth_scheduled_requests_total", "result=\"requested\"",
                        (double)written);
    metrics_counter_add(c->metrics, "auth_scheduled_requests_total", "result=\"coalesced\"",
                        (double)coalesced_n);
    metrics_counter_add(c->metrics, "auth_scheduled_requests_total", "result=\"paused\"",
                        (double)paused_n);
out:
    if (fired < 0) {
        PQclear(PQexec(db_pg(db), "ROLLBACK"));
    }
    PQclear(res);
    PQclear(upd);
    return fired;
}

/* Retry remote revokes that failed (Google was unreachable), one claimed row at a time. */
static void retry_revokes(struct auth_ctx *c, struct db_conn *db)
{
    char err[256];
    for (int round = 0; round < 10; round++) {
        PGresult *res = NULL;
        char *token = NULL, tenant[80] = "";
        int done = 1;
        if (pgx_exec(db_pg(db), "BEGIN", err, sizeof err))
            return;
        res = db_query(db, PGRES_TUPLES_OK, &st_revoke_claim, 0, NULL, err, sizeof err);
        if (!res || PQntuples(res) == 0)
            goto next;
        snprintf(tenant, sizeof tenant, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        const char *p[] = {tenant};
        res = db_query(db, PGRES_TUPLES_OK, &st_revoke_grant, 1, p, err, sizeof err);
        if (!res || PQntuples(res) != 1)
            goto next;
        {
            const char *hex = PQgetvalue(res, 0, 0);
            size_t hl = strlen(hex);
            uint8_t *sealed = malloc(hl / 2 + 1);
            long n = sealed ? crypto_hex_decode(hex, sealed, hl / 2 + 1) : -1;
            char aad[160];
            snprintf(aad, sizeof aad, "grant:%s/google", tenant);
            int o = n < 0 ? -2
                          : grants_open(c->grants, PQgetvalue(res, 0, 1), sealed, (size_t)n, aad,
                                        &token);
            free(sealed);
            if (o) {
                log_error_t(tenant, NULL, "pending revoke: the kept grant cannot be opened");
                goto next;
            }
        }
        {
            struct http_client *h = ctx_http(c, err, sizeof err);
            char msg[256] = "";
            enum google_result gr =
                h ? google_revoke(h, &c->google, token, msg, sizeof msg) : GOOGLE_UNAVAILABLE;
            if (gr == GOOGLE_OK) {
                if (conn_revoke_done(db, tenant, "google", err, sizeof err) == 0)
                    log_info_t(tenant, NULL, "pending remote revoke at Google done");
            } else {
                PGresult *u =
                    db_query(db, PGRES_COMMAND_OK, &st_revoke_later, 1, p, err, sizeof err);
                PQclear(u);
                log_warn_t(tenant, NULL, "remote revoke at Google still failing: %s", msg);
            }
        }
        done = 0;
    next:
        PQclear(res);
        grants_free_secret(token);
        if (pgx_exec(db_pg(db), "COMMIT", err, sizeof err) || done)
            return;
    }
}

long scheduler_tick(struct auth_ctx *c, char *err, size_t errlen)
{
    long fired = -1;
    struct db_conn *db = ctx_db(c, err, errlen);
    if (!db)
        return -1;
    /* Stuck runs first, so that a due schedule is not absorbed by one. */
    if (sync_requests_expire(c, db, err, errlen) < 0)
        goto out;
    fired = fire_due(c, db, err, errlen);
    if (fired < 0)
        goto out;
    if (publish_pending_requests(c, db, err, errlen) < 0) {
        fired = -1;
        goto out;
    }
    retry_revokes(c, db);
out:
    db_put(db);
    return fired;
}

static void *run(void *arg)
{
    struct scheduler *s = arg;
    char err[512];
    while (!atomic_load(&s->stop)) {
        long fired = scheduler_tick(s->ctx, err, sizeof err);
        if (fired < 0)
            log_warn("scheduler pass failed: %s", err);
        /* The requests a pass wrote are auth_scheduled_requests_total{result="requested"},
         * counted by fire_due once committed. */
        if (s->metrics)
            metrics_counter_add(s->metrics, "auth_scheduler_passes_total",
                                fired < 0 ? "result=\"failed\"" : "result=\"ok\"", 1);
        for (long waited = 0; waited < s->tick_ms && !atomic_load(&s->stop); waited += 100) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    ctx_thread_done(s->ctx);
    return NULL;
}

struct scheduler *scheduler_start(struct auth_ctx *c, long tick_ms, struct metrics *m, char *err,
                                  size_t errlen)
{
    struct scheduler *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->ctx = c;
    s->metrics = m;
    s->tick_ms = tick_ms;
    if (m)
        metrics_describe(m, "auth_scheduler_passes_total", "counter",
                         "Scheduler passes of this replica, by result");
    atomic_init(&s->stop, 0);
    if (pthread_create(&s->thread, NULL, run, s)) {
        snprintf(err, errlen, "cannot start the scheduler thread");
        free(s);
        return NULL;
    }
    return s;
}

void scheduler_stop(struct scheduler *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    free(s);
}
