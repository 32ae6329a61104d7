/* panel-merger: applies source events to PostgreSQL exactly once and publishes public
 * change events. Wires config, the consumer (consumer.c -> apply.c), the outbox relay
 * (relay.c) and the internal routes (routes.c). */
#include "callers.h"
#include "config.h"
#include "consumer.h"
#include "db.h"
#include "kafka.h"
#include "log.h"
#include "relay.h"
#include "pg.h"
#include "retention.h"
#include "routes.h"
#include "svc.h"

#include <stddef.h>
#include <stdio.h>

struct merger_config {
    char *kafka_brokers;
    char *pg_url;
    char *caller_secrets;
    char *group;
    long long batch_max;
    long long batch_ms;
    long long outbox_batch;
    long long outbox_idle_ms;
    long long retention_outbox_sent_hours;
    long long retention_runs_days;
    long long retention_run_leftovers_hours;
    long long retention_interval_s;
    long long retention_batch;
    long long db_pool_size;
    long long workers;
};

static const struct cfg_option options[] = {
    KAFKA_CFG_BROKERS(struct merger_config, kafka_brokers),
    DB_CFG_PG_URL(struct merger_config, pg_url),
    {"PANEL_MERGER_CALLER_SECRETS", CFG_SECRET, "", 0, 4096,
     offsetof(struct merger_config, caller_secrets),
     "secrets of the services that call /internal: 'api:SECRET' (twice while rotating; "
     "docs/security.md); empty: every internal call is refused"},
    {"PANEL_MERGER_DB_POOL_SIZE", CFG_INT, "2", 1, 16, offsetof(struct merger_config, db_pool_size),
     "PostgreSQL connections of the internal routes (approve, reject, resolve); a request waits "
     "up to 5 s for a free one (then 503). The consumer and the outbox relay have their own"},
    {"PANEL_MERGER_GROUP", CFG_STRING, "panel-merger", 0, 255,
     offsetof(struct merger_config, group), "consumer group on panel.source.events"},
    {"PANEL_MERGER_WORKERS", CFG_INT, "2", 1, CONSUMER_WORKERS_MAX,
     offsetof(struct merger_config, workers),
     "consumer threads, each a member of the group on panel.source.events with its own "
     "PostgreSQL connection: the partitions of one district are applied at once (about one "
     "per core; more than the topic's partitions over all replicas wait idle)"},
    {"PANEL_MERGER_BATCH_MAX", CFG_INT, "2000", 1, 100000,
     offsetof(struct merger_config, batch_max), "most events applied in one transaction"},
    {"PANEL_MERGER_BATCH_MS", CFG_INT, "200", 1, 60000, offsetof(struct merger_config, batch_ms),
     "longest wait (ms) for a batch to fill once its first event arrived"},
    {"PANEL_MERGER_OUTBOX_BATCH", CFG_INT, "1000", 1, 100000,
     offsetof(struct merger_config, outbox_batch), "outbox rows published per relay round"},
    {"PANEL_MERGER_OUTBOX_IDLE_MS", CFG_INT, "200", 10, 60000,
     offsetof(struct merger_config, outbox_idle_ms), "relay pause (ms) when the outbox is empty"},
    {"PANEL_RETENTION_OUTBOX_SENT_HOURS", CFG_INT, "168", 0, 876000,
     offsetof(struct merger_config, retention_outbox_sent_hours),
     "published outbox rows are deleted this many hours after publication; 0 keeps them"},
    {"PANEL_RETENTION_RUNS_DAYS", CFG_INT, "90", 0, 36500,
     offsetof(struct merger_config, retention_runs_days),
     "ended sync runs and their outcomes are deleted this many days after they ended (never a "
     "held run, nor the newest run of a district and source); 0 keeps them"},
    {"PANEL_RETENTION_RUN_LEFTOVERS_HOURS", CFG_INT, "24", 0, 876000,
     offsetof(struct merger_config, retention_run_leftovers_hours),
     "run_seen and run_reported_removals rows of runs ended this many hours ago are deleted; "
     "0 keeps them"},
    RETENTION_CFG_OPTIONS(struct merger_config, retention_interval_s, retention_batch),
};

/* Advisory lock key of the merger's retention rounds (one replica prunes at a time). */
#define RETENTION_LOCK_KEY 7304219LL

/* Leftovers and outcomes before their runs: a run goes only once nothing refers to it, so
 * that each statement deletes a bounded number of rows (no cascade). $1 age (s), $2 limit. */
static const char *const sql_outbox =
    "DELETE FROM outbox WHERE ctid IN (SELECT ctid FROM outbox WHERE sent_at IS NOT NULL"
    " AND sent_at < now() - make_interval(secs => $1::bigint) ORDER BY sent_at LIMIT $2::bigint)";
#define ENDED_RUN_SQL(alias)                                                                       \
    "(SELECT 1 FROM sync_runs s WHERE s.tenant_id = " alias ".tenant_id AND s.run_id = " alias     \
    ".run_id AND s.status NOT IN ('requested', 'running', 'held')"                                 \
    " AND coalesce(s.finished_at, s.requested_at) < now() - make_interval(secs => $1::bigint))"
static const char *const sql_run_seen =
    "DELETE FROM run_seen WHERE ctid IN (SELECT x.ctid FROM run_seen x WHERE EXISTS " ENDED_RUN_SQL(
        "x") " LIMIT $2::bigint)";
static const char *const sql_run_reported_removals =
    "DELETE FROM run_reported_removals WHERE ctid IN (SELECT x.ctid FROM run_reported_removals x"
    " WHERE EXISTS " ENDED_RUN_SQL("x") " LIMIT $2::bigint)";
static const char *const sql_run_outcomes =
    "DELETE FROM run_outcomes WHERE ctid IN (SELECT o.ctid FROM run_outcomes o"
    " JOIN retention_prunable_runs($1::bigint) p USING (tenant_id, run_id) LIMIT $2::bigint)";
static const char *const sql_sync_runs =
    "DELETE FROM sync_runs WHERE ctid IN (SELECT s.ctid FROM sync_runs s"
    " JOIN retention_prunable_runs($1::bigint) p USING (tenant_id, run_id)"
    " WHERE NOT EXISTS (SELECT 1 FROM run_outcomes o"
    "                   WHERE o.tenant_id = s.tenant_id AND o.run_id = s.run_id)"
    " AND NOT EXISTS (SELECT 1 FROM run_seen x"
    "                 WHERE x.tenant_id = s.tenant_id AND x.run_id = s.run_id)"
    " AND NOT EXISTS (SELECT 1 FROM run_reported_removals x"
    "                 WHERE x.tenant_id = s.tenant_id AND x.run_id = s.run_id)"
    " LIMIT $2::bigint)";

static struct retention *start_retention(const struct merger_config *cfg, struct metrics *m,
                                         char *err, size_t errlen)
{
    long long runs_s = cfg->retention_runs_days * 86400;
    long long leftovers_s = cfg->retention_run_leftovers_hours * 3600;
    /* a run with leftovers is never deleted: its leftovers go no later than the run would */
    if (runs_s > 0 && (leftovers_s <= 0 || leftovers_s > runs_s))
        leftovers_s = runs_s;
    const struct retention_rule rules[] = {
        {"outbox", sql_outbox, cfg->retention_outbox_sent_hours * 3600},
        {"run_seen", sql_run_seen, leftovers_s},
        {"run_reported_removals", sql_run_reported_removals, leftovers_s},
        {"run_outcomes", sql_run_outcomes, runs_s},
        {"sync_runs", sql_sync_runs, runs_s},
    };
    return retention_start("merger", RETENTION_LOCK_KEY, cfg->pg_url, rules,
                           sizeof rules / sizeof rules[0], (int)cfg->retention_batch,
                           (int)cfg->retention_interval_s, m, err, errlen);
}

static const struct svc_spec spec = {
    .name = "merger",
    .summary =
        "applies source events to PostgreSQL exactly once and publishes public change events",
    .options = options,
    .noptions = CFG_OPTS_COUNT(options),
    .default_http_port = 8084,
    /* a batch of PANEL_MERGER_BATCH_MAX events is applied in one transaction */
    .default_pg_statement_timeout_ms = 300000,
};

static bool still_running(void *arg)
{
    return svc_running(arg);
}

static void describe_metrics(struct metrics *m)
{
    metrics_describe(m, "merger_events_applied_total", "counter",
                     "Source events applied to PostgreSQL");
    metrics_describe(m, "merger_batches_total", "counter",
                     "Batches by result (ok, fenced, conflict, error)");
    metrics_describe_histogram(m, "merger_batch_seconds", "Time to apply one batch",
                               METRICS_BUCKETS_REQUEST);
    metrics_describe(m, "merger_dead_letters_total", "counter",
                     "Events sent to the dead-letter topic");
    metrics_describe(m, "merger_outbox_unsent", "gauge", "Outbox rows not yet published");
    metrics_describe(m, "merger_outbox_oldest_unsent_seconds", "gauge",
                     "Age of the oldest unpublished outbox row");
    metrics_describe(m, "merger_outbox_published_total", "counter",
                     "Outbox rows published to the public topics");
    metrics_describe(m, "merger_outbox_reconciled_total", "counter",
                     "Outbox rows found already published and marked sent");
    metrics_describe(m, "merger_outbox_errors_total", "counter", "Outbox relay rounds that failed");
}

int main(int argc, char **argv)
{
    struct merger_config cfg = {0};
    struct svc *svc = NULL;
    struct outbox_relay *relay = NULL;
    struct retention *retention = NULL;
    struct callers *callers = NULL;
    struct db_pool *pool = NULL;
    struct db_conn *db = NULL;
    struct routes_ctx rctx = {0};
    char err[1024];
    int status = 1;
    enum svc_start_result r = svc_start(&svc, &spec, argc, argv, &cfg);
    if (r != SVC_RUN) {
        cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
        return r == SVC_EXIT_OK ? 0 : 2;
    }
    callers =
        callers_new("PANEL_MERGER_CALLER_SECRETS", cfg.caller_secrets, CALLER_API, err, sizeof err);
    if (!callers) {
        fprintf(stderr, "panel-merger: configuration error: %s\n", err);
        status = 2;
        goto out;
    }
    describe_metrics(svc_metrics(svc));
    if (!(pool = db_pool_new(cfg.pg_url, (int)cfg.db_pool_size, 30, err, sizeof err)) ||
        db_get(pool, ROUTES_DB_WAIT_MS, &db, err, sizeof err) != DB_OK ||
        pgx_check_schema(db_pg(db), err, sizeof err)) {
        log_error("%s", err);
        goto out;
    }
    db_put(db);
    db = NULL;
    rctx.db = pool;
    rctx.callers = callers;
    if (routes_register(svc_httpd(svc), &rctx)) {
        log_error("cannot register routes");
        goto out;
    }
    relay = outbox_relay_start(cfg.pg_url, cfg.kafka_brokers, (int)cfg.outbox_batch,
                               (int)cfg.outbox_idle_ms, svc_metrics(svc), err, sizeof err);
    if (!relay) {
        log_error("%s", err);
        goto out;
    }
    retention = start_retention(&cfg, svc_metrics(svc), err, sizeof err);
    if (!retention) {
        log_error("%s", err);
        goto out;
    }
    struct consumer_opts co = {
        .brokers = cfg.kafka_brokers,
        .pg_url = cfg.pg_url,
        .group = cfg.group,
        .batch_max = (int)cfg.batch_max,
        .batch_ms = (int)cfg.batch_ms,
        .metrics = svc_metrics(svc),
        .running = still_running,
        .arg = svc,
    };
    svc_set_ready(svc, true);
    if (consumer_run_workers(&co, (int)cfg.workers, err, sizeof err)) {
        log_error("%s", err);
        goto out;
    }
    status = 0;
out:
    log_info("stopping");
    svc_set_ready(svc, false);
    retention_stop(retention);
    outbox_relay_stop(relay);
    svc_destroy(svc); /* stops the listener before its routes and the pool go */
    routes_free(&rctx);
    db_put(db);
    db_pool_destroy(pool);
    callers_destroy(callers);
    cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
    return status;
}
