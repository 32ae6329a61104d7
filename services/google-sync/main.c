/* panel-google-sync: fetches People, org units and Chromebooks from Google Workspace and
 * publishes them as runs of events on panel.source.events (lib/fetch_run.h does the run;
 * google.c knows Google). */
#include "config.h"
#include "fetch_run.h"
#include "google.h"
#include "log.h"
#include "svc.h"

#include <stddef.h>

struct google_sync_config {
    struct fetch_env fetch;
    char *api_url;
    long long users_page;
    long long devices_page;
    long long same_page_retries;
    long long listing_restarts;
    char *graduation_year_field;
};

static const struct cfg_option options[] = {
    FETCH_ENV_OPTIONS(struct google_sync_config, fetch, "panel-google-sync"),
    {"PANEL_GOOGLE_API_URL", CFG_STRING, "https://admin.googleapis.com", 0, 1024,
     offsetof(struct google_sync_config, api_url), "Base URL of the Admin SDK Directory API"},
    {"PANEL_GOOGLE_USERS_PAGE_SIZE", CFG_INT, "500", 1, 500,
     offsetof(struct google_sync_config, users_page), "maxResults of users.list"},
    {"PANEL_GOOGLE_DEVICES_PAGE_SIZE", CFG_INT, "200", 1, 300,
     offsetof(struct google_sync_config, devices_page), "maxResults of chromeosdevices.list"},
    {"PANEL_GOOGLE_SAME_PAGE_RETRIES", CFG_INT, "5", 0, 100,
     offsetof(struct google_sync_config, same_page_retries),
     "Retries of a devices page that answered the transient 400 'Invalid Input'"},
    {"PANEL_GOOGLE_LISTING_RESTARTS", CFG_INT, "3", 0, 100,
     offsetof(struct google_sync_config, listing_restarts),
     "Restarts of a listing whose page token expired before the run fails"},
    {"PANEL_GOOGLE_GRADUATION_YEAR_FIELD", CFG_STRING, "", 0, 129,
     offsetof(struct google_sync_config, graduation_year_field),
     "Custom schema field holding a student's graduation year, as Schema.Field (unset: not "
     "read)"},
};

static const struct svc_spec spec = {
    .name = "google-sync",
    .summary = "fetches People, org units and Chromebooks from Google Workspace",
    .options = options,
    .noptions = CFG_OPTS_COUNT(options),
    .default_http_port = 8082,
};

int main(int argc, char **argv)
{
    struct google_sync_config cfg = {0};
    struct svc *svc = NULL;
    int status = 0;
    enum svc_start_result r = svc_start(&svc, &spec, argc, argv, &cfg);
    if (r != SVC_RUN) {
        cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
        return r == SVC_EXIT_OK ? 0 : 2;
    }
    struct google_opts g = {
        .api_url = cfg.api_url,
        .users_page = (long)cfg.users_page,
        .devices_page = (long)cfg.devices_page,
        .same_page_retries = (int)cfg.same_page_retries,
        .listing_restarts = (int)cfg.listing_restarts,
        .graduation_year_field = cfg.graduation_year_field,
    };
    char err[512];
    if (google_opts_prepare(&g, err, sizeof err)) {
        log_error("cannot start: %s", err);
        status = 2;
        goto out;
    }
    struct fetch_source_ops ops = {
        .classify = google_classify,
        .failure = google_failure,
        .run = google_run,
        .ctx = &g,
    };
    status = fetch_service_main(svc, &cfg.fetch, "google", PB_SOURCE_GOOGLE, &ops);
out:
    svc_destroy(svc);
    cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
    return status;
}
