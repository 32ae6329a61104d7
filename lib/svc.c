#include "svc.h"
#include "kafka.h"
#include "log.h"
#include "pg.h"

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef PANEL_VERSION
#define PANEL_VERSION "0.1.0"
#endif

struct svc_common {
    char *log_level;
    char *http_addr;
    long long http_port;
    long long http_threads;
    long long http_request_timeout_ms;
    long long http_keepalive_timeout_ms;
    long long pg_statement_timeout_ms;
};

const struct cfg_option svc_common_options[] = {
    {"PANEL_LOG_LEVEL", CFG_STRING, "info", 0, 8, offsetof(struct svc_common, log_level),
     "Minimum log level: debug, info, warn or error"},
    {"PANEL_HTTP_ADDR", CFG_STRING, "127.0.0.1", 0, 64, offsetof(struct svc_common, http_addr),
     "Address of the HTTP listener (/healthz, /readyz, /metrics and the service's routes)"},
    {"PANEL_HTTP_PORT", CFG_INT, "(per service)", 0, 65535, offsetof(struct svc_common, http_port),
     "Port of the HTTP listener (0 = any free port); each service has its own default"},
    {"PANEL_PG_STATEMENT_TIMEOUT_MS", CFG_INT, "(per service)", 0, 86400000,
     offsetof(struct svc_common, pg_statement_timeout_ms),
     "PostgreSQL statement_timeout (ms) of every connection (0 = none); each service has its own "
     "default"},
    {"PANEL_HTTP_THREADS", CFG_INT, "128", 4, 1024, offsetof(struct svc_common, http_threads),
     "HTTP worker threads: each open connection holds one, idle or not"},
    {"PANEL_HTTP_REQUEST_TIMEOUT_MS", CFG_INT, "10000", 100, 600000,
     offsetof(struct svc_common, http_request_timeout_ms),
     "longest wait (ms) for a request's headers and body before the connection is closed"},
    {"PANEL_HTTP_KEEPALIVE_TIMEOUT_MS", CFG_INT, "5000", 0, 600000,
     offsetof(struct svc_common, http_keepalive_timeout_ms),
     "how long (ms) an idle keep-alive connection is kept open (0 = no keep-alive)"},
};
const size_t svc_common_noptions = CFG_OPTS_COUNT(svc_common_options);

static atomic_int stop_requested;

struct svc {
    const struct svc_spec *spec;
    struct svc_common common;
    struct kafka_client_config kafka;
    struct httpd *httpd;
    struct metrics *metrics;
    atomic_bool ready;
    struct timespec started;
};

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_requested, 1);
}

static int handle_healthz(struct mg_connection *conn, void *ctx)
{
    (void)ctx;
    return httpd_reply(conn, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL);
}

static int handle_readyz(struct mg_connection *conn, void *ctx)
{
    struct svc *s = ctx;
    if (atomic_load(&s->ready) && !atomic_load(&stop_requested))
        return httpd_reply(conn, 200, "application/json", "{\"status\":\"ready\"}", 18, NULL);
    return httpd_reply(conn, 503, "application/json", "{\"status\":\"not ready\"}", 22, NULL);
}

static int handle_metrics(struct mg_connection *conn, void *ctx)
{
    struct svc *s = ctx;
    struct buf b;
    struct timespec now;
    buf_init(&b, 16u * 1024u * 1024u);
    clock_gettime(CLOCK_MONOTONIC, &now);
    metrics_gauge_set(s->metrics, "process_uptime_seconds", NULL,
                      (double)(now.tv_sec - s->started.tv_sec));
    int status;
    if (metrics_render(s->metrics, &b) != 0)
        status = httpd_reply_error(conn, 500, "internal", "metrics too large");
    else
        status =
            httpd_reply(conn, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len, NULL);
    buf_free(&b);
    return status;
}

static void print_help(const struct svc_spec *spec)
{
    printf("panel-%s %s — %s\n\nUsage: panel-%s [--help | --version]\n\n", spec->name,
           PANEL_VERSION, spec->summary, spec->name);
    cfg_print_table(stdout, spec->options, spec->noptions);
    printf("\nCommon to every service (PANEL_HTTP_PORT defaults to %ld here, "
           "PANEL_PG_STATEMENT_TIMEOUT_MS to %ld):\n",
           spec->default_http_port,
           spec->default_pg_statement_timeout_ms > 0 ? spec->default_pg_statement_timeout_ms
                                                     : SVC_DEFAULT_PG_STATEMENT_TIMEOUT_MS);
    cfg_print_table(stdout, svc_common_options, svc_common_noptions);
    printf("\nKafka security, common to every service that uses Kafka (and panelctl):\n");
    cfg_print_table(stdout, kafka_client_options, kafka_client_noptions);
}

enum svc_start_result svc_start(struct svc **out, const struct svc_spec *spec, int argc,
                                char **argv, void *cfg)
{
    char err[512];
    struct svc *s = NULL;
    enum log_level level;
    *out = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(spec);
            return SVC_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("panel-%s %s\n", spec->name, PANEL_VERSION);
            return SVC_EXIT_OK;
        }
        if (strcmp(argv[i], "--config-markdown") == 0) {
            cfg_print_markdown(stdout, spec->options, spec->noptions);
            return SVC_EXIT_OK;
        }
        if (strcmp(argv[i], "--config-markdown-common") == 0) {
            cfg_print_markdown(stdout, svc_common_options, svc_common_noptions);
            cfg_print_markdown(stdout, kafka_client_options, kafka_client_noptions);
            return SVC_EXIT_OK;
        }
        fprintf(stderr, "panel-%s: unknown argument '%s' (try --help)\n", spec->name, argv[i]);
        return SVC_EXIT_USAGE;
    }

    s = calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "panel-%s: out of memory\n", spec->name);
        return SVC_EXIT_USAGE;
    }
    s->spec = spec;
    clock_gettime(CLOCK_MONOTONIC, &s->started);
    if (cfg_load(spec->options, spec->noptions, cfg, err, sizeof err) != 0)
        goto usage;
    {
        /* PANEL_HTTP_PORT's default is the service's own. */
        struct cfg_option common[CFG_OPTS_COUNT(svc_common_options)];
        char portdef[24], stmtdef[24];
        memcpy(common, svc_common_options, sizeof common);
        snprintf(portdef, sizeof portdef, "%ld", spec->default_http_port);
        common[2].def = portdef;
        /* PANEL_PG_STATEMENT_TIMEOUT_MS too: an api request and a merger batch differ. */
        snprintf(stmtdef, sizeof stmtdef, "%ld",
                 spec->default_pg_statement_timeout_ms > 0 ? spec->default_pg_statement_timeout_ms
                                                           : SVC_DEFAULT_PG_STATEMENT_TIMEOUT_MS);
        common[3].def = stmtdef;
        if (cfg_load(common, svc_common_noptions, &s->common, err, sizeof err) != 0)
            goto usage;
    }
    if (log_level_parse(s->common.log_level, &level) != 0) {
        snprintf(err, sizeof err, "PANEL_LOG_LEVEL=%s is not one of debug, info, warn, error",
                 s->common.log_level);
        goto usage;
    }
    log_init(spec->name, level);
    pgx_set_statement_timeout_ms((long)s->common.pg_statement_timeout_ms);
    if (cfg_load(kafka_client_options, kafka_client_noptions, &s->kafka, err, sizeof err) != 0 ||
        kafka_client_configure(&s->kafka, err, sizeof err) != 0)
        goto usage;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    s->metrics = metrics_new();
    if (!s->metrics) {
        snprintf(err, sizeof err, "out of memory");
        goto usage;
    }
    metrics_describe(s->metrics, "process_uptime_seconds", "gauge",
                     "Seconds since the service started");
    metrics_describe(s->metrics, "http_requests_total", "counter",
                     "HTTP requests answered, by route, method and status code");
    metrics_describe_histogram(s->metrics, "http_request_duration_seconds",
                               "Time to answer an HTTP request, by route", METRICS_BUCKETS_REQUEST);
    struct httpd_opts hopts = {.addr = s->common.http_addr,
                               .port = (long)s->common.http_port,
                               .threads = (int)s->common.http_threads,
                               .request_timeout_ms = (long)s->common.http_request_timeout_ms,
                               .keepalive_timeout_ms =
                                   s->common.http_keepalive_timeout_ms > 0
                                       ? (long)s->common.http_keepalive_timeout_ms
                                       : -1,
                               .metrics = s->metrics};
    s->httpd = httpd_new(&hopts, err, sizeof err);
    if (!s->httpd) {
        char msg[sizeof err];
        memcpy(msg, err, sizeof msg);
        snprintf(err, sizeof err, "PANEL_HTTP_PORT: %.480s", msg);
        goto usage;
    }
    if (httpd_route_quiet(s->httpd, "/healthz", "/healthz", handle_healthz, s) ||
        httpd_route_quiet(s->httpd, "/readyz", "/readyz", handle_readyz, s) ||
        httpd_route_quiet(s->httpd, "/metrics", "/metrics", handle_metrics, s)) {
        snprintf(err, sizeof err, "cannot register routes");
        goto usage;
    }
    log_info("starting panel-%s %s; http on %s:%ld", spec->name, PANEL_VERSION, s->common.http_addr,
             httpd_port(s->httpd));
    *out = s;
    return SVC_RUN;

usage:
    fprintf(stderr, "panel-%s: configuration error: %s\n", spec->name, err);
    svc_destroy(s);
    return SVC_EXIT_USAGE;
}

bool svc_running(const struct svc *s)
{
    (void)s;
    return !atomic_load(&stop_requested);
}

void svc_request_stop(struct svc *s)
{
    (void)s;
    atomic_store(&stop_requested, 1);
}

void svc_sleep_ms(const struct svc *s, long ms)
{
    while (ms > 0 && svc_running(s)) {
        long step = ms > 50 ? 50 : ms;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

void svc_set_ready(struct svc *s, bool ready)
{
    atomic_store(&s->ready, ready);
}

struct httpd *svc_httpd(struct svc *s)
{
    return s->httpd;
}

struct metrics *svc_metrics(struct svc *s)
{
    return s->metrics;
}

long svc_http_port(const struct svc *s)
{
    return httpd_port(s->httpd);
}

void svc_destroy(struct svc *s)
{
    if (!s)
        return;
    httpd_destroy(s->httpd);
    metrics_destroy(s->metrics);
    cfg_free(svc_common_options, svc_common_noptions, &s->common);
    cfg_free(kafka_client_options, kafka_client_noptions, &s->kafka);
    kafka_client_reset();
    free(s);
}
