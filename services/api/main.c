/* panel-api: REST API and admin page for district admins. main() wires the modules: the
 * database pool, the /v1 routes (one table on lib/router; rest.c's request core runs each
 * route's handler in people, orgunits, assets, checkouts, sync, connections, accounts,
 * exports, alerts) and the static admin page; its loop keeps /readyz honest and expires old
 * Idempotency-Keys. */
#include "accounts.h"
#include "alerts.h"
#include "assets.h"
#include "checkouts.h"
#include "config.h"
#include "connections.h"
#include "crypto.h"
#include "db.h"
#include "exports.h"
#include "log.h"
#include "orgunits.h"
#include "params.h"
#include "people.h"
#include "pg.h"
#include "rest.h"
#include "retention.h"
#include "router.h"
#include "svc.h"
#include "sync.h"
#include "www.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct api_config {
    char *pg_url;
    char *auth_url;
    char *auth_public_url;
    char *merger_url;
    char *service_secret;
    char *www_dir;
    char *cursor_key;
    long long pool_size;
    long long upstream_timeout_ms;
    long long idempotency_ttl_hours;
    long long session_idle_minutes;
    long long rate_per_minute;
    long long rate_burst;
    long long alerts_seconds;
    long long retention_interval_s;
    long long retention_batch;
    bool cookie_secure;
    bool require_if_match;
    bool require_cursor_key;
};

static const struct cfg_option options[] = {
    DB_CFG_PG_URL(struct api_config, pg_url),
    {"PANEL_AUTH_URL", CFG_STRING, "http://127.0.0.1:8081", 0, 1024,
     offsetof(struct api_config, auth_url), "Base URL of the auth service's internal routes"},
    {"PANEL_AUTH_PUBLIC_URL", CFG_STRING, "http://127.0.0.1:8081", 0, 1024,
     offsetof(struct api_config, auth_public_url),
     "Auth's public base URL: the admin page's sign-in links go to its /signin routes"},
    {"PANEL_MERGER_URL", CFG_STRING, "http://127.0.0.1:8084", 0, 1024,
     offsetof(struct api_config, merger_url), "Base URL of the merger's internal routes"},
    {"PANEL_SERVICE_SECRET", CFG_SECRET, NULL, 16, 512, offsetof(struct api_config, service_secret),
     "The api's own secret for auth's and merger's internal routes (at least 16 characters; "
     "listed as api: in their caller secrets)"},
    {"PANEL_API_WWW_DIR", CFG_STRING, "services/api/www", 0, 1024,
     offsetof(struct api_config, www_dir), "Directory of the admin page's static files"},
    {"PANEL_API_CURSOR_KEY", CFG_SECRET, "", 0, 128, offsetof(struct api_config, cursor_key),
     "Key signing pagination cursors (64 hex or base64 of 32 bytes); empty = random per "
     "process (set it when running several replicas)"},
    {"PANEL_API_REQUIRE_CURSOR_KEY", CFG_BOOL, "false", 0, 0,
     offsetof(struct api_config, require_cursor_key),
     "Refuse to start (exit 2) without PANEL_API_CURSOR_KEY: set it wherever more than one "
     "replica serves the same clients, so a next page may reach any of them"},
    {"PANEL_API_DB_POOL_SIZE", CFG_INT, "8", 1, 64, offsetof(struct api_config, pool_size),
     "PostgreSQL connections in the pool"},
    {"PANEL_API_UPSTREAM_TIMEOUT_MS", CFG_INT, "10000", 100, 120000,
     offsetof(struct api_config, upstream_timeout_ms), "Timeout of one call to auth or the merger"},
    {"PANEL_API_IDEMPOTENCY_TTL_HOURS", CFG_INT, "24", 1, 720,
     offsetof(struct api_config, idempotency_ttl_hours),
     "How long a stored Idempotency-Key reply is replayed (older ones are deleted)"},
    RETENTION_CFG_OPTIONS(struct api_config, retention_interval_s, retention_batch),
    {"PANEL_SESSION_IDLE_MINUTES", CFG_INT, "60", 1, 1440,
     offsetof(struct api_config, session_idle_minutes),
     "A signed-in session unused this long ends (the absolute limit is auth's "
     "PANEL_SESSION_MAX_HOURS)"},
    {"PANEL_API_RATE_LIMIT_PER_MINUTE", CFG_INT, "0", 0, 1000000,
     offsetof(struct api_config, rate_per_minute),
     "Requests a minute one caller (an API key, a signed-in person) may make to this api "
     "process on average, beyond which it is answered 429 with Retry-After; 0 = no limit"},
    {"PANEL_API_RATE_LIMIT_BURST", CFG_INT, "60", 1, 100000,
     offsetof(struct api_config, rate_burst),
     "Requests one caller may make at once before PANEL_API_RATE_LIMIT_PER_MINUTE applies"},
    {"PANEL_API_ALERTS_SECONDS", CFG_INT, "60", 5, 3600,
     offsetof(struct api_config, alerts_seconds),
     "How often new alerts (held or failed run, revoked connection, overdue checkout) are "
     "looked for and published on panel.sync.events"},
    {"PANEL_COOKIE_SECURE", CFG_BOOL, "true", 0, 0, offsetof(struct api_config, cookie_secure),
     "Mark the cookies the api sets Secure (false only for plain-http development)"},
    {"PANEL_API_REQUIRE_IF_MATCH", CFG_BOOL, "false", 0, 0,
     offsetof(struct api_config, require_if_match),
     "Refuse a PATCH or DELETE of a versioned resource without If-Match (428): no silent "
     "last-write-wins"},
};

static const struct svc_spec spec = {
    .name = "api",
    .summary = "REST API and admin page for district admins",
    .options = options,
    .noptions = CFG_OPTS_COUNT(options),
    .default_http_port = 8080,
};

/* Advisory lock key of the api's retention rounds (one replica prunes at a time). */
#define RETENTION_LOCK_KEY 7304221LL

/* Stored Idempotency-Key replies past their time-to-live. $1 age (s), $2 limit. */
static const char *const sql_idempotency =
    "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys"
    " WHERE created_at < now() - make_interval(secs => $1::bigint) LIMIT $2::bigint)";

/* Every /v1 route: method, pattern, handler (public: no callers; rest_serve reads the body).
 * A path no pattern matches is 404, a known path with another method 405 with Allow; both
 * only after authentication (rest.c). by-serial and by-tag come before {id}: the first
 * pattern that matches serves. docs/openapi.yaml documents the same routes. */
static const struct router_route v1_routes[] = {
    {"GET", "/v1/people", people_list, 0, 0},
    {"GET", "/v1/people/{id}", people_get, 0, 0},
    {"GET", "/v1/people/{id}/checkouts", people_checkouts, 0, 0},
    {"GET", "/v1/org-units", orgunits_list, 0, 0},
    {"GET", "/v1/org-units/{id}", orgunits_get, 0, 0},
    {"GET", "/v1/assets", assets_list, 0, 0},
    {"POST", "/v1/assets", assets_create, 0, 0},
    {"GET", "/v1/assets/by-serial/{serial}", assets_by_serial, 0, 0},
    {"GET", "/v1/assets/by-tag/{tag}", assets_by_tag, 0, 0},
    {"GET", "/v1/assets/{id}", assets_get, 0, 0},
    {"PATCH", "/v1/assets/{id}", assets_update, 0, 0},
    {"GET", "/v1/assets/{id}/checkouts", assets_checkouts, 0, 0},
    {"POST", "/v1/assets/{id}/checkout", checkouts_checkout, 0, 0},
    {"POST", "/v1/assets/{id}/checkin", checkouts_checkin, 0, 0},
    {"POST", "/v1/assets/{id}/retire", assets_retire, 0, 0},
    {"POST", "/v1/assets/{id}/audit", assets_audit, 0, 0},
    {"GET", "/v1/assets/{id}/audits", assets_audits, 0, 0},
    {"GET", "/v1/checkouts", checkouts_list, 0, 0},
    {"POST", "/v1/checkouts/bulk", checkouts_bulk, 0, 0},
    {"POST", "/v1/checkins/bulk", checkins_bulk, 0, 0},
    {"POST", "/v1/sync", sync_request, 0, 0},
    {"GET", "/v1/sync/settings", sync_settings, 0, 0},
    {"PUT", "/v1/sync/settings", sync_put_settings, 0, 0},
    {"GET", "/v1/sync/runs", sync_runs, 0, 0},
    {"GET", "/v1/sync/runs/{run}", sync_run, 0, 0},
    {"GET", "/v1/sync/runs/{run}/outcomes", sync_run_outcomes, 0, 0},
    {"POST", "/v1/sync/runs/{run}/approve", sync_run_approve, 0, 0},
    {"POST", "/v1/sync/runs/{run}/reject", sync_run_reject, 0, 0},
    {"GET", "/v1/sync/match-cases", sync_cases, 0, 0},
    {"GET", "/v1/sync/match-cases/{case}", sync_case, 0, 0},
    {"POST", "/v1/sync/match-cases/{case}/resolve", sync_case_resolve, 0, 0},
    {"GET", "/v1/connections", connections_status, 0, 0},
    {"POST", "/v1/connections/{provider}/authorize", connections_authorize, 0, 0},
    {"POST", "/v1/connections/{provider}/deauthorize", connections_deauthorize, 0, 0},
    {"GET", "/v1/session", accounts_session, 0, 0},
    {"POST", "/v1/session/signout", accounts_sign_out, 0, 0},
    {"GET", "/v1/admins", accounts_list, 0, 0},
    {"POST", "/v1/admins", accounts_add, 0, 0},
    {"PATCH", "/v1/admins/{id}", accounts_change, 0, 0},
    {"DELETE", "/v1/admins/{id}", accounts_change, 0, 0},
    {"GET", "/v1/exports/{file}", exports_get, 0, 0},
    {"GET", "/v1/alerts", alerts_list, 0, 0},
};

/* The schema is right and the database answers. */
static bool check_ready(struct db_pool *pool)
{
    char err[512];
    struct db_conn *db = NULL;
    enum db_result got = db_get(pool, 1000, &db, err, sizeof err);
    if (got == DB_BUSY)
        return true; /* every connection busy serving: the database is there */
    if (got != DB_OK) {
        log_warn("not ready: %s", err);
        return false;
    }
    bool ok = pgx_check_schema(db_pg(db), err, sizeof err) == 0;
    if (!ok)
        log_warn("not ready: %s", err);
    db_put(db);
    return ok;
}

int main(int argc, char **argv)
{
    struct api_config cfg = {0};
    struct svc *svc = NULL;
    struct db_pool *db = NULL;
    struct ratelimit *rate = NULL;
    struct retention *retention = NULL;
    struct router *v1 = NULL;
    char err[512];
    int rc = 1;
    unsigned char key[CRYPTO_KEY_LEN];
    enum svc_start_result r = svc_start(&svc, &spec, argc, argv, &cfg);
    if (r != SVC_RUN) {
        cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
        return r == SVC_EXIT_OK ? 0 : 2;
    }
    if (cfg.cursor_key && *cfg.cursor_key) {
        if (crypto_key_parse(cfg.cursor_key, key, err, sizeof err) != 0) {
            fprintf(stderr, "panel-api: configuration error: PANEL_API_CURSOR_KEY: %s\n", err);
            rc = 2;
            goto out;
        }
    } else if (cfg.require_cursor_key) {
        /* Several replicas with their own random keys would reject each other's cursors. */
        fprintf(stderr, "panel-api: configuration error: PANEL_API_REQUIRE_CURSOR_KEY is set but "
                        "PANEL_API_CURSOR_KEY (or PANEL_API_CURSOR_KEY_FILE) is empty: replicas "
                        "need one shared cursor key\n");
        rc = 2;
        goto out;
    } else if (crypto_random(key, sizeof key) != 0) {
        log_error("no randomness for the cursor key");
        goto out;
    }
    params_cursor_key(key);

    db = db_pool_new(cfg.pg_url, (int)cfg.pool_size, 60, err, sizeof err);
    if (!db) {
        log_error("cannot connect to PostgreSQL: %s", err);
        goto out;
    }
    if (!check_ready(db)) {
        log_error("refusing to start: the database schema does not match this build");
        goto out;
    }
    if (cfg.rate_per_minute > 0 &&
        !(rate = ratelimit_new((long)cfg.rate_per_minute, (long)cfg.rate_burst))) {
        log_error("out of memory for the rate limit");
        goto out;
    }
    v1 = router_new(v1_routes, CFG_OPTS_COUNT(v1_routes), NULL, NULL, err, sizeof err);
    if (!v1) {
        log_error("/v1 routes: %s", err);
        goto out;
    }
    struct api api = {.db = db,
                      .router = v1,
                      .ratelimit = rate,
                      .auth_url = cfg.auth_url,
                      .auth_public_url = cfg.auth_public_url,
                      .merger_url = cfg.merger_url,
                      .service_secret = cfg.service_secret,
                      .upstream_timeout_ms = (long)cfg.upstream_timeout_ms,
                      .session_idle_minutes = (long)cfg.session_idle_minutes,
                      .cookie_secure = cfg.cookie_secure,
                      .require_if_match = cfg.require_if_match};
    /* Every /v1 path goes to the request core; the metrics name a request that matches no
     * route by this label. */
    struct httpd *h = svc_httpd(svc);
    if (httpd_route(h, "/v1", "/v1/*", rest_serve, &api)) {
        log_error("cannot register /v1");
        goto out;
    }
    if (httpd_route(h, "/", "/ (admin page)", www_serve, cfg.www_dir)) {
        log_error("cannot register the admin page");
        goto out;
    }
    const struct retention_rule rules[] = {
        {"idempotency_keys", sql_idempotency, cfg.idempotency_ttl_hours * 3600},
    };
    retention =
        retention_start("api", RETENTION_LOCK_KEY, cfg.pg_url, rules, 1, (int)cfg.retention_batch,
                        (int)cfg.retention_interval_s, svc_metrics(svc), err, sizeof err);
    if (!retention) {
        log_error("%s", err);
        goto out;
    }
    svc_set_ready(svc, true);
    log_info("serving /v1 and the admin page from %s", cfg.www_dir);
    for (long tick = 0; svc_running(svc); tick++) {
        svc_sleep_ms(svc, 5000);
        if (!svc_running(svc))
            break;
        svc_set_ready(svc, check_ready(db));
        /* Ticks are 5 s: every alerts_seconds, rounded to a tick. */
        if ((tick * 5) % cfg.alerts_seconds < 5)
            while (alerts_publish(db) >= 200) /* a full batch: there may be more */
                ;
    }
    log_info("stopping");
    rc = 0;
out:
    retention_stop(retention);
    svc_destroy(svc); /* stops the listener before the pool and the routes go */
    router_destroy(v1);
    db_pool_destroy(db);
    ratelimit_free(rate);
    cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
    return rc;
}
