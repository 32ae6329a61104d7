/* panel-emulator: Google Workspace and Microsoft Entra ID emulator for demo, tests and benchmarks
 * This is the service's skeleton: configuration, logging, health and metrics. Its
 * behaviour is filled in by its own issue. */
#include "config.h"
#include "log.h"
#include "svc.h"

#include <stddef.h>

struct emulator_config {
    char *kafka_brokers;
    char *pg_url;
};

static const struct cfg_option options[] = {
    {"PANEL_KAFKA_BROKERS", CFG_STRING, "127.0.0.1:9092", 0, 1024,
     offsetof(struct emulator_config, kafka_brokers), "Kafka bootstrap servers (host:port,...)"},
    {"PANEL_PG_URL", CFG_SECRET, "postgresql://panel@127.0.0.1:5432/panel", 0, 2048,
     offsetof(struct emulator_config, pg_url), "PostgreSQL connection URL"},
};

static const struct svc_spec spec = {
    .name = "emulator",
    .summary = "Google Workspace and Microsoft Entra ID emulator for demo, tests and benchmarks",
    .options = options,
    .noptions = CFG_OPTS_COUNT(options),
    .default_http_port = 8090,
};

int main(int argc, char **argv)
{
    struct emulator_config cfg = {0};
    struct svc *svc = NULL;
    enum svc_start_result r = svc_start(&svc, &spec, argc, argv, &cfg);
    if (r != SVC_RUN) {
        cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
        return r == SVC_EXIT_OK ? 0 : 2;
    }
    svc_set_ready(svc, true);
    while (svc_running(svc))
        svc_sleep_ms(svc, 1000);
    log_info("stopping");
    svc_destroy(svc);
    cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
    return 0;
}
