/* panel-azure-sync: fetches People from Microsoft Entra ID (full and delta runs) and
 * publishes them as runs of events on panel.source.events (lib/fetch_run.h does the run;
 * graph.c knows Microsoft Graph; delta_store.c keeps the delta links in PostgreSQL). */
#include "config.h"
#include "delta_store.h"
#include "fetch_run.h"
#include "graph.h"
#include "log.h"
#include "svc.h"

#include <stddef.h>
#include <stdlib.h>

struct azure_sync_config {
    struct fetch_env fetch;
    char *pg_url;
    char *graph_url;
    long long page_size;
    long long full_every_hours;
    char *graduation_year_attribute;
};

static const struct cfg_option options[] = {
    FETCH_ENV_OPTIONS(struct azure_sync_config, fetch, "panel-azure-sync"),
    {"PANEL_PG_URL", CFG_SECRET, "postgresql://panel@127.0.0.1:5432/panel", 0, 2048,
     offsetof(struct azure_sync_config, pg_url),
     "PostgreSQL connection URL (delta links, table azure_delta_state)"},
    {"PANEL_GRAPH_URL", CFG_STRING, "https://graph.microsoft.com", 0, 1024,
     offsetof(struct azure_sync_config, graph_url), "Base URL of Microsoft Graph"},
    {"PANEL_AZURE_PAGE_SIZE", CFG_INT, "999", 1, 999, offsetof(struct azure_sync_config, page_size),
     "Page size of /v1.0/users/delta (Prefer: odata.maxpagesize)"},
    {"PANEL_AZURE_FULL_EVERY_HOURS", CFG_INT, "24", 0, 8760,
     offsetof(struct azure_sync_config, full_every_hours),
     "A run becomes a full run when the last full one is older than this (0 = never forced)"},
    {"PANEL_AZURE_GRADUATION_YEAR_ATTRIBUTE", CFG_STRING, "", 0, 120,
     offsetof(struct azure_sync_config, graduation_year_attribute),
     "Directory extension holding a student's graduation year, "
     "extension_<app id without dashes>_<name> (unset: not read)"},
};

static const struct svc_spec spec = {
    .name = "azure-sync",
    .summary = "fetches People from Microsoft Entra ID (full and delta runs)",
    .options = options,
    .noptions = CFG_OPTS_COUNT(options),
    .default_http_port = 8083,
};

int main(int argc, char **argv)
{
    struct azure_sync_config cfg = {0};
    struct svc *svc = NULL;
    struct delta_store *store = NULL;
    struct graph g = {0};
    int status = 0;
    char err[512];
    enum svc_start_result r = svc_start(&svc, &spec, argc, argv, &cfg);
    if (r != SVC_RUN) {
        cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
        return r == SVC_EXIT_OK ? 0 : 2;
    }
    g.graduation_year_attribute = cfg.graduation_year_attribute;
    if (graph_prepare(&g, err, sizeof err)) {
        log_error("cannot start: %s", err);
        status = 2;
        goto out;
    }
    store = delta_store_new(cfg.pg_url, err, sizeof err);
    if (!store) {
        log_error("cannot start: %s", err);
        status = 1;
        goto out;
    }
    g.graph_url = cfg.graph_url;
    g.page_size = (long)cfg.page_size;
    g.full_every_hours = (long)cfg.full_every_hours;
    g.store = store;
    struct fetch_source_ops ops = {
        .classify = http_classify_default,
        .failure = graph_failure,
        .plan = graph_plan,
        .run = graph_run,
        .completed = graph_completed,
        .ctx = &g,
    };
    status = fetch_service_main(svc, &cfg.fetch, "azure", PB_SOURCE_AZURE, &ops);
out:
    free(g.stored_link);
    delta_store_destroy(store);
    svc_destroy(svc);
    cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
    return status;
}
