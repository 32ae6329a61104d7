/* svc: what every service's main() needs — --help and --version, configuration from its
 * table, JSON logging, SIGTERM/SIGINT handling, and an HTTP listener that already serves
 * /healthz, /readyz and /metrics. A service adds its own routes with svc_httpd(). */
#ifndef PANEL_SVC_H
#define PANEL_SVC_H

#include "config.h"
#include "httpd.h"
#include "metrics.h"

#include <stdbool.h>

struct svc;

struct svc_spec {
    const char *name;                 /* "merger" */
    const char *summary;              /* one line for --help */
    const struct cfg_option *options; /* the service's own table */
    size_t noptions;
    long default_http_port; /* the service's default for PANEL_HTTP_PORT */
    /* the service's default for PANEL_PG_STATEMENT_TIMEOUT_MS; 0 = the common 30 s */
    long default_pg_statement_timeout_ms;
};

#define SVC_DEFAULT_PG_STATEMENT_TIMEOUT_MS 30000L

enum svc_start_result { SVC_RUN = 0, SVC_EXIT_OK = 1, SVC_EXIT_USAGE = 2 };

/* Parse argv (--help, --version, --config-markdown), load the service's table into cfg
 * (which must be zeroed) and the common options, start logging and the HTTP listener.
 * SVC_RUN: *out is set. SVC_EXIT_OK: help was printed, exit 0. SVC_EXIT_USAGE: an error
 * was printed, exit 2. */
enum svc_start_result svc_start(struct svc **out, const struct svc_spec *spec, int argc,
                                char **argv, void *cfg) __attribute__((warn_unused_result));
/* False once SIGTERM or SIGINT arrived. */
bool svc_running(const struct svc *s);
/* Ask the main loop to stop (as a signal would). */
void svc_request_stop(struct svc *s);
/* Sleep up to ms, returning early when a stop is requested. */
void svc_sleep_ms(const struct svc *s, long ms);
/* /readyz answers 200 only while ready is true (default false). */
void svc_set_ready(struct svc *s, bool ready);
struct httpd *svc_httpd(struct svc *s);     /* borrowed */
struct metrics *svc_metrics(struct svc *s); /* borrowed */
long svc_http_port(const struct svc *s);
/* Stop the listener, free everything. The service frees its own config with cfg_free. */
void svc_destroy(struct svc *s);

/* Options every service has; listed by --help after the service's own. */
extern const struct cfg_option svc_common_options[];
extern const size_t svc_common_noptions;

#endif
