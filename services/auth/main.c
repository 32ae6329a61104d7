/* panel-auth: cloud connections — OAuth grants, tokens for fetchers, revocation, sync
 * scheduling. main wires the modules: grants (keyring), states, connections, publish,
 * scheduler, routes; `panel-auth rekey` re-seals stored secrets under the active key. */
#include "config.h"
#include "ctx.h"
#include "grants.h"
#include "kafka.h"
#include "log.h"
#include "oidc.h"
#include "pg.h"
#include "rekey.h"
#include "retention.h"
#include "routes.h"
#include "scheduler.h"
#include "signin.h"
#include "svc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct auth_config {
    char *kafka_brokers;
    char *pg_url;
    char *caller_secrets;
    char *keys;
    char *active_key_id;
    char *public_url;
    char *admin_url;
    char *google_auth_url;
    char *google_token_url;
    char *google_revoke_url;
    char *google_client_id;
    char *google_client_secret;
    char *ms_login_url;
    char *ms_client_id;
    char *ms_client_secret;
    char *google_issuer;
    char *google_api_url;
    long long db_pool_size;
    long long session_max_hours;
    bool cookie_secure;
    long long state_ttl_s;
    long long retention_states_hours;
    long long retention_sessions_days;
    long long retention_interval_s;
    long long retention_batch;
    long long tick_ms;
    long long run_stale_s;
    long long run_start_wait_s;
    bool scheduler;
};

#define OPT(env, type, def, min, max, field, help)                                                 \
    {                                                                                              \
        env, type, def, min, max, offsetof(struct auth_config, field), help                        \
    }

static const struct cfg_option options[] = {
    KAFKA_CFG_BROKERS(struct auth_config, kafka_brokers),
    DB_CFG_PG_URL(struct auth_config, pg_url),
    OPT("PANEL_AUTH_CALLER_SECRETS", CFG_SECRET, "", 0, 4096, caller_secrets,
        "secrets of the services that call /internal: 'api:SECRET,google-sync:SECRET,"
        "azure-sync:SECRET' (a caller twice while rotating; docs/security.md); required"),
    OPT("PANEL_AUTH_KEYS", CFG_SECRET, "", 0, 8192, keys,
        "grant encryption keys 'keyid:key[,keyid:key...]' (key: 64 hex chars or base64 of 32 "
        "bytes); required"),
    OPT("PANEL_AUTH_ACTIVE_KEY_ID", CFG_STRING, "", 0, 31, active_key_id,
        "id of the key new secrets are sealed with (required when several keys)"),
    OPT("PANEL_AUTH_PUBLIC_URL", CFG_STRING, "http://127.0.0.1:8081", 0, 1024, public_url,
        "auth's public base URL; the OAuth redirect URIs are <this>/oauth/{google,microsoft}/"
        "callback (consents) and <this>/signin/{google,microsoft}/callback (admin sign-in)"),
    OPT("PANEL_ADMIN_URL", CFG_STRING, "http://127.0.0.1:8080/", 0, 1024, admin_url,
        "admin page the browser returns to after a consent (#cloud-sync?... is appended) or a "
        "sign-in (#signin?error=... on a refusal)"),
    OPT("PANEL_GOOGLE_AUTH_URL", CFG_STRING, "https://accounts.google.com/o/oauth2/v2/auth", 0,
        1024, google_auth_url, "Google authorization endpoint"),
    OPT("PANEL_GOOGLE_TOKEN_URL", CFG_STRING, "https://oauth2.googleapis.com/token", 0, 1024,
        google_token_url, "Google token endpoint"),
    OPT("PANEL_GOOGLE_REVOKE_URL", CFG_STRING, "https://oauth2.googleapis.com/revoke", 0, 1024,
        google_revoke_url, "Google revoke endpoint"),
    OPT("PANEL_GOOGLE_CLIENT_ID", CFG_STRING, "", 0, 512, google_client_id,
        "Google OAuth client id (empty: Google authorization is disabled)"),
    OPT("PANEL_GOOGLE_CLIENT_SECRET", CFG_SECRET, "", 0, 512, google_client_secret,
        "Google OAuth client secret"),
    OPT("PANEL_MS_LOGIN_URL", CFG_STRING, "https://login.microsoftonline.com", 0, 1024,
        ms_login_url, "Microsoft identity platform base URL"),
    OPT("PANEL_MS_CLIENT_ID", CFG_STRING, "", 0, 512, ms_client_id,
        "Microsoft app (client) id (empty: Microsoft consent is disabled)"),
    OPT("PANEL_MS_CLIENT_SECRET", CFG_SECRET, "", 0, 512, ms_client_secret,
        "Microsoft client secret"),
    OPT("PANEL_GOOGLE_ISSUER", CFG_STRING, "https://accounts.google.com", 0, 1024, google_issuer,
        "Google's OpenID Connect issuer for the admin sign-in (discovery at "
        "<issuer>/.well-known/openid-configuration)"),
    OPT("PANEL_GOOGLE_API_URL", CFG_STRING, "https://admin.googleapis.com", 0, 1024, google_api_url,
        "Google Admin SDK base URL: a consent reads the consenting admin's own Directory record "
        "(customerId)"),
    OPT("PANEL_AUTH_DB_POOL_SIZE", CFG_INT, "16", 1, 128, db_pool_size,
        "PostgreSQL connections in the pool; a request holds one while it reads or writes (a "
        "token request not during its call to the provider) and waits up to 5 s for a free one "
        "(then 503)"),
    OPT("PANEL_SESSION_MAX_HOURS", CFG_INT, "12", 1, 720, session_max_hours,
        "absolute lifetime of an admin page session, in hours"),
    OPT("PANEL_COOKIE_SECURE", CFG_BOOL, "true", 0, 0, cookie_secure,
        "mark the sign-in and session cookies Secure (false only for plain-http development)"),
    OPT("PANEL_AUTH_STATE_TTL_S", CFG_INT, "600", 10, 3600, state_ttl_s,
        "seconds an OAuth state (a started consent or sign-in) stays valid"),
    OPT("PANEL_RETENTION_STATES_HOURS", CFG_INT, "24", 1, 8760, retention_states_hours,
        "sign-in and OAuth states are deleted this many hours after they expired"),
    OPT("PANEL_RETENTION_SESSIONS_DAYS", CFG_INT, "30", 0, 36500, retention_sessions_days,
        "admin page sessions are deleted this many days after they ended or expired; 0 keeps "
        "them"),
    RETENTION_CFG_OPTIONS(struct auth_config, retention_interval_s, retention_batch),
    OPT("PANEL_AUTH_SCHEDULER_TICK_MS", CFG_INT, "10000", 100, 600000, tick_ms,
        "how often the scheduler looks for due syncs and pending revokes"),
    OPT("PANEL_AUTH_RUN_STALE_S", CFG_INT, "7200", 60, 604800, run_stale_s,
        "a running run whose end has not arrived this long after its start expires "
        "(not_finished); keep it above the fetchers' PANEL_FETCH_RUN_BUDGET_S"),
    OPT("PANEL_AUTH_RUN_START_TIMEOUT_S", CFG_INT, "3600", 1, 604800, run_start_wait_s,
        "a requested run that no fetcher started this long after the request expires "
        "(not_started)"),
    OPT("PANEL_AUTH_SCHEDULER", CFG_BOOL, "true", 0, 0, scheduler,
        "run the scheduler in this replica (periodic syncs, publish retries, revoke retries)"),
};

static const struct svc_spec spec = {
    .name = "auth",
    .summary = "cloud connections: OAuth grants, tokens for fetchers, revocation, sync scheduling",
    .options = options,
    .noptions = CFG_OPTS_COUNT(options),
    .default_http_port = 8081,
};

static char google_redirect[1100], ms_redirect[1100];

/* auth's own metrics (docs/auth.md, Metrics): described once, so that every family has its
 * HELP and TYPE lines even before its first series. */
static void describe_metrics(struct metrics *m)
{
    metrics_describe(m, "auth_token_requests_total", "counter",
                     "Access-token requests of the fetchers, by provider and result (ok, invalid, "
                     "refused, not_connected, not_usable, provider_error, error)");
    metrics_describe(m, "auth_revocations_total", "counter",
                     "Grants found revoked at the provider (the connection became revoked), by "
                     "provider");
    metrics_describe(m, "auth_scheduled_requests_total", "counter",
                     "Scheduled sync requests of this replica's scheduler, by result (requested, "
                     "coalesced with the run in flight, paused by a pause window); each due "
                     "schedule fires on one replica");
}

static void ctx_from_config(struct auth_ctx *c, const struct auth_config *cfg)
{
    snprintf(google_redirect, sizeof google_redirect, "%s/oauth/google/callback", cfg->public_url);
    snprintf(ms_redirect, sizeof ms_redirect, "%s/oauth/microsoft/callback", cfg->public_url);
    c->admin_url = cfg->admin_url;
    c->state_ttl_s = (long)cfg->state_ttl_s;
    c->run_stale_s = (long)cfg->run_stale_s;
    c->run_start_wait_s = (long)cfg->run_start_wait_s;
    c->google = (struct google_cfg){cfg->google_auth_url,      cfg->google_token_url,
                                    cfg->google_revoke_url,    cfg->google_client_id,
                                    cfg->google_client_secret, google_redirect};
    c->ms =
        (struct ms_cfg){cfg->ms_login_url, cfg->ms_client_id, cfg->ms_client_secret, ms_redirect};
}

/* `panel-auth rekey [--tenant T]`: re-seal stored secrets under the active key. */
static int run_rekey(int argc, char **argv)
{
    const char *tenant = NULL;
    struct auth_config cfg = {0};
    struct grants *g = NULL;
    struct db_pool *pool = NULL;
    struct db_conn *db = NULL;
    struct rekey_stats st;
    char err[512];
    int rc = 2;
    log_init("auth", LOG_INFO);
    if (argc == 4 && strcmp(argv[2], "--tenant") == 0) {
        tenant = argv[3];
    } else if (argc != 2) {
        fprintf(stderr, "usage: panel-auth rekey [--tenant TENANT]\n");
        goto out;
    }
    if (cfg_load(options, CFG_OPTS_COUNT(options), &cfg, err, sizeof err)) {
        fprintf(stderr, "panel-auth rekey: %s\n", err);
        goto out;
    }
    if (!(g = grants_new(cfg.keys, cfg.active_key_id, err, sizeof err))) {
        fprintf(stderr, "panel-auth rekey: %s\n", err);
        goto out;
    }
    if (!(pool = db_pool_new(cfg.pg_url, 1, 30, err, sizeof err)) ||
        db_get(pool, 0, &db, err, sizeof err) != DB_OK ||
        pgx_check_schema(db_pg(db), err, sizeof err)) {
        fprintf(stderr, "panel-auth rekey: %s\n", err);
        goto out;
    }
    if (rekey_run(db, g, tenant, &st, err, sizeof err)) {
        fprintf(stderr, "panel-auth rekey: %s\n", err);
        rc = 1;
        goto out;
    }
    printf("re-sealed %ld value(s) under key '%s'; %ld could not be opened\n", st.resealed,
           grants_active_id(g), st.failed);
    rc = st.failed ? 1 : 0;
out:
    db_put(db);
    db_pool_destroy(pool);
    grants_destroy(g);
    cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
    return rc;
}

/* Advisory lock key of auth's retention rounds (one replica prunes at a time). */
#define RETENTION_LOCK_KEY 7304220LL

/* $1 age (s), $2 limit. A state is single-use and short-lived: past its expiry it only
 * waits to be deleted (used ones too). */
static const char *const sql_signin_states =
    "DELETE FROM signin_states WHERE ctid IN (SELECT ctid FROM signin_states"
    " WHERE expires_at < now() - make_interval(secs => $1::bigint) LIMIT $2::bigint)";
static const char *const sql_oauth_states =
    "DELETE FROM oauth_states WHERE ctid IN (SELECT ctid FROM oauth_states"
    " WHERE expires_at < now() - make_interval(secs => $1::bigint) LIMIT $2::bigint)";
static const char *const sql_admin_sessions =
    "DELETE FROM admin_sessions WHERE ctid IN (SELECT ctid FROM admin_sessions"
    " WHERE expires_at < now() - make_interval(secs => $1::bigint) UNION ALL"
    " SELECT ctid FROM admin_sessions"
    " WHERE ended_at < now() - make_interval(secs => $1::bigint) LIMIT $2::bigint)";

static struct retention *start_retention(const struct auth_config *cfg, struct metrics *m,
                                         char *err, size_t errlen)
{
    const struct retention_rule rules[] = {
        {"signin_states", sql_signin_states, cfg->retention_states_hours * 3600},
        {"oauth_states", sql_oauth_states, cfg->retention_states_hours * 3600},
        {"admin_sessions", sql_admin_sessions, cfg->retention_sessions_days * 86400},
    };
    return retention_start("auth", RETENTION_LOCK_KEY, cfg->pg_url, rules,
                           sizeof rules / sizeof rules[0], (int)cfg->retention_batch,
                           (int)cfg->retention_interval_s, m, err, errlen);
}

int main(int argc, char **argv)
{
    struct auth_config cfg = {0};
    struct svc *svc = NULL;
    struct grants *grants = NULL;
    struct callers *callers = NULL;
    struct kafka_producer *producer = NULL;
    struct scheduler *sched = NULL;
    struct retention *retention = NULL;
    struct signin *signin = NULL;
    struct router *internal_routes = NULL, *callback_routes = NULL;
    struct oidc_provider *google_oidc = NULL;
    struct auth_ctx ctx = {0};
    bool ctx_ok = false;
    struct db_pool *pool = NULL;
    struct db_conn *db = NULL;
    char err[512];
    int rc = 1;
    if (argc >= 2 && strcmp(argv[1], "rekey") == 0)
        return run_rekey(argc, argv);
    enum svc_start_result r = svc_start(&svc, &spec, argc, argv, &cfg);
    if (r != SVC_RUN) {
        cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
        return r == SVC_EXIT_OK ? 0 : 2;
    }
    /* Checked after the common options, so that their errors are reported first. */
    if (!(callers =
              callers_new("PANEL_AUTH_CALLER_SECRETS", cfg.caller_secrets,
                          CALLER_API | CALLER_GOOGLE_SYNC | CALLER_AZURE_SYNC, err, sizeof err))) {
        fprintf(stderr, "panel-auth: configuration error: %s\n", err);
        rc = 2;
        goto out;
    }
    if (callers_count(callers) == 0) {
        fprintf(stderr, "panel-auth: configuration error: PANEL_AUTH_CALLER_SECRETS is required\n");
        rc = 2;
        goto out;
    }
    if (!(grants = grants_new(cfg.keys, cfg.active_key_id, err, sizeof err))) {
        fprintf(stderr, "panel-auth: configuration error: PANEL_AUTH_KEYS: %s\n", err);
        rc = 2;
        goto out;
    }
    if (!(pool = db_pool_new(cfg.pg_url, (int)cfg.db_pool_size, 60, err, sizeof err)) ||
        db_get(pool, AUTH_DB_WAIT_MS, &db, err, sizeof err) != DB_OK ||
        pgx_check_schema(db_pg(db), err, sizeof err)) {
        log_error("%s", err);
        goto out;
    }
    db_put(db);
    db = NULL;
    if (!(producer = kafka_producer_new(cfg.kafka_brokers, "panel-auth", NULL, err, sizeof err))) {
        log_error("kafka: %s", err);
        goto out;
    }
    if (ctx_init(&ctx)) {
        log_error("cannot create thread keys");
        goto out;
    }
    ctx_ok = true;
    ctx_from_config(&ctx, &cfg);
    ctx.db = pool;
    ctx.callers = callers;
    ctx.grants = grants;
    ctx.producer = producer;
    ctx.metrics = svc_metrics(svc);
    describe_metrics(ctx.metrics);
    struct signin_cfg scfg = {
        .public_url = cfg.public_url,
        .admin_url = cfg.admin_url,
        .google_issuer = cfg.google_issuer,
        .ms_login_url = cfg.ms_login_url,
        .google_client_id = cfg.google_client_id,
        .google_client_secret = cfg.google_client_secret,
        .ms_client_id = cfg.ms_client_id,
        .ms_client_secret = cfg.ms_client_secret,
        .state_ttl_s = (long)cfg.state_ttl_s,
        .session_max_h = (long)cfg.session_max_hours,
        .cookie_secure = cfg.cookie_secure,
    };
    char discovery[1200];
    snprintf(discovery, sizeof discovery, "%s/.well-known/openid-configuration", cfg.google_issuer);
    struct oidc_provider_opts gopts = {.discovery_url = discovery};
    if (!(google_oidc = oidc_provider_new(&gopts, err, sizeof err))) {
        log_error("google openid: %s", err);
        goto out;
    }
    ctx.google_identity = (struct consent_id_cfg){google_oidc, cfg.google_issuer,
                                                  cfg.google_client_id, cfg.google_api_url};
    if (!(signin = signin_new(&scfg, &ctx, err, sizeof err))) {
        log_error("sign-in: %s", err);
        goto out;
    }
    if (routes_register(svc_httpd(svc), &ctx, &internal_routes, &callback_routes) ||
        signin_routes(svc_httpd(svc), signin)) {
        log_error("cannot register routes");
        goto out;
    }
    if (cfg.scheduler &&
        !(sched = scheduler_start(&ctx, (long)cfg.tick_ms, svc_metrics(svc), err, sizeof err))) {
        log_error("%s", err);
        goto out;
    }
    if (!(retention = start_retention(&cfg, svc_metrics(svc), err, sizeof err))) {
        log_error("%s", err);
        goto out;
    }
    log_info("ready (active key '%s', scheduler %s)", grants_active_id(grants),
             cfg.scheduler ? "on" : "off");
    svc_set_ready(svc, true);
    while (svc_running(svc))
        svc_sleep_ms(svc, 500);
    log_info("stopping");
    rc = 0;
out:
    svc_set_ready(svc, false);
    scheduler_stop(sched);
    retention_stop(retention);
    /* Stop the listener (and its worker threads) before freeing what handlers use. */
    svc_destroy(svc);
    router_destroy(internal_routes);
    router_destroy(callback_routes);
    signin_destroy(signin);
    oidc_provider_destroy(google_oidc);
    if (ctx_ok)
        ctx_fini(&ctx);
    db_put(db);
    db_pool_destroy(pool); /* after the listener and the scheduler: nothing borrows any more */
    kafka_producer_destroy(producer);
    grants_destroy(grants);
    callers_destroy(callers);
    cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
    return rc;
}
