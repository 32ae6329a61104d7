/* panelctl: the operator's tool — migrations (also the Kubernetes migration Job), topics,
 * tenants, and decoding events for people and tests. */
#include "commands.h"
#include "kafka.h"
#include "log.h"

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

const char *panelctl_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: panelctl COMMAND [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-52s %s\n", commands[i].usage, commands[i].help);
    fprintf(out, "\nEnvironment: PANEL_PG_URL (default postgresql://panel@127.0.0.1:5432/panel),\n"
                 "  PANEL_KAFKA_BROKERS (default 127.0.0.1:9092), PANEL_LOG_LEVEL (default "
                 "info)\n");
}

int main(int argc, char **argv)
{
    enum log_level level = LOG_INFO;
    if (log_level_parse(panelctl_env("PANEL_LOG_LEVEL", "info"), &level) != 0) {
        fprintf(stderr, "panelctl: PANEL_LOG_LEVEL must be debug, info, warn or error\n");
        return 2;
    }
    log_init("panelctl", level);
    /* the services' PANEL_KAFKA_* security settings apply to panelctl's clients too */
    struct kafka_client_config kafka = {0};
    char err[512];
    if (cfg_load(kafka_client_options, kafka_client_noptions, &kafka, err, sizeof err) != 0 ||
        kafka_client_configure(&kafka, err, sizeof err) != 0) {
        fprintf(stderr, "panelctl: %s\n", err);
        cfg_free(kafka_client_options, kafka_client_noptions, &kafka);
        return 2;
    }
    int rc = 2;
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
    kafka_client_reset();
    return rc;
}
