/* panel-emulator: Google Workspace and Microsoft Entra ID emulator for demo, tests and
 * benchmarks. The cloud listener (PANEL_HTTP_PORT) serves the providers' real paths; the
 * control listener (PANEL_EMULATOR_ADMIN_PORT) serves the /control routes. */
#include "config.h"
#include "control.h"
#include "emu.h"
#include "google_directory.h"
#include "signin.h"
#include "google_oauth.h"
#include "graph.h"
#include "httpd.h"
#include "log.h"
#include "ms_oauth.h"
#include "svc.h"

#include <stddef.h>
#include <string.h>

static const struct cfg_option options[] = {
    {"PANEL_EMULATOR_ADMIN_PORT", CFG_INT, "8091", 0, 65535,
     offsetof(struct emu_config, admin_port), "Port of the control listener (/control/*; 0 = any)"},
    {"PANEL_EMULATOR_ADMIN_ADDR", CFG_STRING, "127.0.0.1", 0, 255,
     offsetof(struct emu_config, admin_addr), "Listen address of the control listener"},
    {"PANEL_EMULATOR_DISTRICTS", CFG_STRING, "", 0, 65536, offsetof(struct emu_config, districts),
     "Districts generated at start: "
     "'id:people=N,azure_people=N,shared=N,devices=N,ous=N,seed=N;...'"},
    {"PANEL_EMULATOR_CONSENT", CFG_STRING, "page", 0, 16, offsetof(struct emu_config, consent),
     "Consent step: page (HTML with Allow/Deny), auto (allow at once) or deny"},
    {"PANEL_EMULATOR_GOOGLE_CLIENT_ID", CFG_STRING, "panel-google-client", 0, 255,
     offsetof(struct emu_config, google_client_id), "Google OAuth client id the emulator accepts"},
    {"PANEL_EMULATOR_GOOGLE_CLIENT_SECRET", CFG_SECRET, "panel-google-secret", 0, 255,
     offsetof(struct emu_config, google_client_secret), "Google OAuth client secret it accepts"},
    {"PANEL_EMULATOR_MS_CLIENT_ID", CFG_STRING, "panel-ms-client", 0, 255,
     offsetof(struct emu_config, ms_client_id), "Microsoft app (client) id the emulator accepts"},
    {"PANEL_EMULATOR_MS_CLIENT_SECRET", CFG_SECRET, "panel-ms-secret", 0, 255,
     offsetof(struct emu_config, ms_client_secret), "Microsoft client secret it accepts"},
    {"PANEL_EMULATOR_TOKEN_TTL_SECONDS", CFG_INT, "3599", 1, 864000,
     offsetof(struct emu_config, token_ttl), "Lifetime of issued access tokens (expires_in)"},
    {"PANEL_EMULATOR_CODE_TTL_SECONDS", CFG_INT, "600", 1, 86400,
     offsetof(struct emu_config, code_ttl), "Lifetime of Google authorization codes"},
    {"PANEL_EMULATOR_PAGE_TOKEN_TTL_SECONDS", CFG_INT, "259200", 1, 31536000,
     offsetof(struct emu_config, page_ttl),
     "Lifetime of Google page tokens and Graph skip tokens (Google: about 3 days)"},
    {"PANEL_EMULATOR_DELTA_TOKEN_TTL_SECONDS", CFG_INT, "604800", 1, 31536000,
     offsetof(struct emu_config, delta_ttl), "Lifetime of Graph delta tokens (about 7 days)"},
    {"PANEL_EMULATOR_DELTA_EXPIRED", CFG_STRING, "syncstate", 0, 16,
     offsetof(struct emu_config, delta_expired),
     "How an expired delta token is answered: syncstate (400 syncStateNotFound) or gone (410 "
     "resyncRequired with Location)"},
};

static const struct svc_spec spec = {
    .name = "emulator",
    .summary = "Google Workspace and Microsoft Entra ID emulator for demo, tests and benchmarks",
    .options = options,
    .noptions = CFG_OPTS_COUNT(options),
    .default_http_port = 8090,
};

static int check_config(const struct emu_config *cfg)
{
    if (strcmp(cfg->consent, "page") && strcmp(cfg->consent, "auto") &&
        strcmp(cfg->consent, "deny")) {
        log_error("PANEL_EMULATOR_CONSENT must be page, auto or deny");
        return -1;
    }
    if (strcmp(cfg->delta_expired, "syncstate") && strcmp(cfg->delta_expired, "gone")) {
        log_error("PANEL_EMULATOR_DELTA_EXPIRED must be syncstate or gone");
        return -1;
    }
    return 0;
}

static int cloud_routes(struct httpd *h, struct emu *e)
{
    if (httpd_route(h, "/o/oauth2/v2/auth", "google.authorize", google_oauth_authorize, e) ||
        httpd_route(h, "/o/oauth2/v2/auth/consent", "google.consent", google_oauth_consent, e) ||
        httpd_route(h, "/token", "google.token", google_oauth_token, e) ||
        httpd_route(h, "/revoke", "google.revoke", google_oauth_revoke, e) ||
        httpd_route(h, "/tokeninfo", "google.tokeninfo", google_oauth_tokeninfo, e) ||
        httpd_route(h, "/.well-known/openid-configuration", "google.discovery",
                    emu_signin_google_discovery, e) ||
        httpd_route(h, "/oauth2/v3/certs", "google.certs", emu_signin_google_jwks, e) ||
        httpd_route(h, "/admin/directory/v1", "google.directory", google_directory_handler, e) ||
        httpd_route(h, "/v1.0", "graph", graph_handler, e) ||
        /* everything else: /{tenant}/... of the Microsoft identity platform */
        httpd_route(h, "/", "ms.login", ms_oauth_handler, e))
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct emu_config cfg;
    struct svc *svc = NULL;
    struct emu *e = NULL;
    struct httpd *admin = NULL;
    struct router *control = NULL;
    char err[512];
    int rc = 1;
    memset(&cfg, 0, sizeof cfg);
    enum svc_start_result r = svc_start(&svc, &spec, argc, argv, &cfg);
    if (r != SVC_RUN) {
        cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
        return r == SVC_EXIT_OK ? 0 : 2;
    }
    if (check_config(&cfg)) {
        rc = 2;
        goto out;
    }
    e = emu_new(&cfg, err, sizeof err);
    if (!e) {
        log_error("%s", err);
        rc = 2;
        goto out;
    }
    if (cloud_routes(svc_httpd(svc), e)) {
        log_error("cannot register the cloud routes");
        goto out;
    }
    struct httpd_opts ao = {
        .addr = cfg.admin_addr, .port = cfg.admin_port, .threads = 4, .metrics = svc_metrics(svc)};
    admin = httpd_new(&ao, err, sizeof err);
    if (!admin) {
        log_error("control listener: %s", err);
        goto out;
    }
    if (control_routes(admin, e, &control)) {
        log_error("cannot register the control routes");
        goto out;
    }
    log_info("cloud listener on port %ld, control listener on port %ld, %zu district(s)",
             svc_http_port(svc), httpd_port(admin), emu_district_count(e));
    svc_set_ready(svc, true);
    while (svc_running(svc))
        svc_sleep_ms(svc, 1000);
    log_info("stopping");
    rc = 0;
out:
    svc_set_ready(svc, false);
    httpd_destroy(admin);
    router_destroy(control);
    svc_destroy(svc);
    emu_destroy(e);
    cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
    return rc;
}
