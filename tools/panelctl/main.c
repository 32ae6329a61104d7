/* panelctl: the operator's tool — migrations (also the Kubernetes migration Job), topics,
 * tenants, and decoding events for people and tests. */
#include "commands.h"
#include "db.h"
#include "kafka.h"
#include "log.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct panelctl_command commands[] = {
    {"migrate", "migrate", "apply db/migrations (PANEL_PG_URL, PANEL_MIGRATIONS_DIR)", cmd_migrate},
    {"schema-version", "schema-version", "print the database's and this build's schema version",
     cmd_schema_version},
    {"topics", "topics",
     "create the Kafka topics if missing (PANEL_KAFKA_BROKERS, "
     "PANEL_KAFKA_PARTITIONS)",
     cmd_topics},
    {"decode", "decode < message", "print one binary panel.v1.Envelope from stdin as JSON",
     cmd_decode},
    {"consume", "consume TOPIC [--count N] [--timeout-ms MS] [--group G]",
     "print a topic's events as JSON lines from the beginning", cmd_consume},
    {"produce-test", "produce-test TENANT [COUNT]",
     "publish COUNT test RunStarted events on panel.source.events", cmd_produce_test},
    {"publish", "publish TOPIC KEY [--raw] < envelopes.jsonl",
     "publish Envelopes written as JSON lines (--raw: each line's bytes as they are)", cmd_publish},
    {"tenant-add", "tenant-add TENANT [DISPLAY NAME]", "create a tenant (idempotent)",
     cmd_tenant_add},
    {"apikey-create", "apikey-create TENANT admin|viewer [LABEL]",
     "create an api key (printed once; only its hash is stored)", cmd_apikey_create},
    {"apikey-revoke", "apikey-revoke KEY_ID", "revoke an api key", cmd_apikey_revoke},
    {"admin-add", "admin-add TENANT EMAIL admin|viewer [--google-only|--microsoft-only]",
     "let a person sign in to the tenant's admin page (the first admin)", cmd_admin_add},
    {"offsets", "offsets TOPIC...",
     "print the topics' end offsets summed over partitions as one JSON object", cmd_offsets},
};

static const struct cfg_option options[] = {
    DB_CFG_PG_URL(struct panelctl_config, pg_url),
    {"PANEL_MIGRATIONS_DIR", CFG_STRING, "db/migrations", 0, 4096,
     offsetof(struct panelctl_config, migrations_dir),
     "Directory of the SQL migrations that migrate applies"},
    {"PANEL_KAFKA_BROKERS", CFG_STRING, "127.0.0.1:9092", 0, 4096,
     offsetof(struct panelctl_config, kafka_brokers), "Kafka bootstrap servers, comma separated"},
    {"PANEL_KAFKA_PARTITIONS", CFG_INT, "4", 1, 1024,
     offsetof(struct panelctl_config, kafka_partitions),
     "Partitions of each topic that topics creates"},
    {"PANEL_LOG_LEVEL", CFG_STRING, "info", 0, 8, offsetof(struct panelctl_config, log_level),
     "Minimum log level: debug, info, warn or error"},
};

static struct panelctl_config config;

const struct panelctl_config *panelctl_config(void)
{
    return &config;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: panelctl COMMAND [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-52s %s\n", commands[i].usage, commands[i].help);
    fprintf(out, "\nSettings (strings may also come from the file named by <NAME>_FILE):\n");
    cfg_print_table(out, options, CFG_OPTS_COUNT(options));
    fprintf(out, "\nKafka security (as for the services):\n");
    cfg_print_table(out, kafka_client_options, kafka_client_noptions);
}

int main(int argc, char **argv)
{
    char err[512];
    struct kafka_client_config kafka = {0};
    int rc = 2;
    if (argc == 2 && strcmp(argv[1], "--config-markdown") == 0) {
        cfg_print_markdown(stdout, options, CFG_OPTS_COUNT(options));
        return 0;
    }
    if (cfg_load(options, CFG_OPTS_COUNT(options), &config, err, sizeof err) != 0) {
        fprintf(stderr, "panelctl: configuration error: %s\n", err);
        goto out;
    }
    enum log_level level = LOG_INFO;
    if (log_level_parse(config.log_level, &level) != 0) {
        fprintf(stderr, "panelctl: PANEL_LOG_LEVEL must be debug, info, warn or error\n");
        goto out;
    }
    log_init("panelctl", level);
    /* the services' PANEL_KAFKA_* security settings apply to panelctl's clients too */
    if (cfg_load(kafka_client_options, kafka_client_noptions, &kafka, err, sizeof err) != 0 ||
        kafka_client_configure(&kafka, err, sizeof err) != 0) {
        fprintf(stderr, "panelctl: %s\n", err);
        goto out;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        rc = argc < 2 ? 2 : 0;
        goto out;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            rc = commands[i].run(argc - 2, argv + 2);
            goto out;
        }
    fprintf(stderr, "panelctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
out:
    cfg_free(kafka_client_options, kafka_client_noptions, &kafka);
    cfg_free(options, CFG_OPTS_COUNT(options), &config);
    kafka_client_reset();
    return rc;
}
