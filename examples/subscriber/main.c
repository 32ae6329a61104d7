/* panel-subscriber: a small example of another service consuming the public topics. It
 * joins a consumer group on panel.people.events and panel.assets.events and prints one line
 * per change as it happens. Events are delivered at least once: dedupe on event_id (this
 * example remembers the last few) and use the entity's version to ignore stale copies.
 *
 *   PANEL_KAFKA_BROKERS=127.0.0.1:9092 PANEL_SUBSCRIBER_GROUP=my-service panel-subscriber
 *
 * A new group starts from the beginning of the topics (a full replay); a known group
 * continues where it committed. */
#include "config.h"
#include "events.h"
#include "kafka.h"
#include "log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sub_config {
    char *brokers;
    char *group;
    char *log_level;
    long long max_events;
};

static const struct cfg_option options[] = {
    {"PANEL_KAFKA_BROKERS", CFG_STRING, "127.0.0.1:9092", 0, 1024,
     offsetof(struct sub_config, brokers), "Kafka bootstrap servers"},
    {"PANEL_SUBSCRIBER_GROUP", CFG_STRING, "panel-subscriber-example", 0, 255,
     offsetof(struct sub_config, group), "consumer group (a new group replays from the start)"},
    {"PANEL_LOG_LEVEL", CFG_STRING, "warn", 0, 16, offsetof(struct sub_config, log_level),
     "debug, info, warn or error"},
    {"PANEL_SUBSCRIBER_MAX_EVENTS", CFG_INT, "0", 0, 1000000000,
     offsetof(struct sub_config, max_events), "stop after this many events (0 = never)"},
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* An enum value's name without its prefix ("CHANGE_KIND_CREATED" -> "CREATED"). */
static const char *enum_short(const ProtobufCEnumDescriptor *d, int v, const char *prefix)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    size_t n = strlen(prefix);
    if (!ev)
        return "UNKNOWN";
    return strncmp(ev->name, prefix, n) == 0 ? ev->name + n : ev->name;
}

/* A text value between double quotes, so that one event is always one line: backslash and
 * quote escaped, control characters as \n, \r, \t or \u00XX (as the other examples print). */
static void print_quoted(const char *s)
{
    putchar('"');
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if (*c == '\n')
            fputs("\\n", stdout);
        else if (*c == '\r')
            fputs("\\r", stdout);
        else if (*c == '\t')
            fputs("\\t", stdout);
        else if (*c < 0x20 || *c == 0x7f)
            printf("\\u%04x", *c);
        else
            putchar(*c);
    }
    putchar('"');
}

static void print_changed(char **names, size_t n)
{
    printf(" changed=");
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? "," : "", names[i]);
    if (n == 0)
        printf("-");
}

/* The start of every line: "<what> <id> <kind> v<version> tenant=<tenant> <key>=<value>". */
static void print_head(const char *what, const char *id, const char *kind, long long version,
                       const char *tenant, const char *key, const char *value)
{
    printf("%s %s %s v%lld tenant=%s %s=%s", what, id ? id : "?", kind, version, tenant, key,
           value ? value : "");
}

static void print_person(const Envelope *env)
{
    const Panel__V1__PersonChanged *pc = env->person_changed;
    const Panel__V1__MergedPerson *p = pc->person;
    const Panel__V1__Person *f = p ? p->fields : NULL;
    print_head("person", p ? p->person_id : NULL,
               enum_short(&panel__v1__change_kind__descriptor, pc->kind, "CHANGE_KIND_"),
               p ? (long long)p->version : 0LL, env->tenant_id, "email",
               f ? f->email_normalized : NULL);
    printf(" name=");
    print_quoted(f ? f->display_name : NULL);
    print_changed(pc->changed_fields, pc->n_changed_fields);
    printf("\n");
}

static void print_asset(const Envelope *env)
{
    const Panel__V1__AssetChanged *ac = env->asset_changed;
    const Panel__V1__Asset *a = ac->asset;
    const Panel__V1__Device *d = a ? a->device : NULL;
    print_head(
        "asset", a ? a->asset_id : NULL,
        enum_short(&panel__v1__asset_change_kind__descriptor, ac->kind, "ASSET_CHANGE_KIND_"),
        a ? (long long)a->version : 0LL, env->tenant_id, "serial", d ? d->serial_number : NULL);
    printf(" model=");
    print_quoted(d ? d->model : NULL);
    printf(" in_google=%s", a && a->in_google ? "true" : "false");
    print_changed(ac->changed_fields, ac->n_changed_fields);
    printf("\n");
}

#define SEEN_IDS 1024

int main(int argc, char **argv)
{
    struct sub_config cfg = {0};
    char err[512];
    enum log_level level = LOG_WARN;
    static char seen[SEEN_IDS][EVENTS_ID_LEN];
    size_t seen_next = 0;
    long long count = 0;
    int rc = 1;
    rd_kafka_t *rk = NULL;
    if (argc > 1) {
        printf("Usage: panel-subscriber\nPrints People and Asset changes from the public "
               "topics.\n\n");
        cfg_print_table(stdout, options, CFG_OPTS_COUNT(options));
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    if (cfg_load(options, CFG_OPTS_COUNT(options), &cfg, err, sizeof err) ||
        log_level_parse(cfg.log_level, &level)) {
        fprintf(stderr, "panel-subscriber: %s\n", *err ? err : "bad PANEL_LOG_LEVEL");
        cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
        return 2;
    }
    log_init("subscriber", level);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    const char *topics[] = {TOPIC_PEOPLE_EVENTS, TOPIC_ASSETS_EVENTS, NULL};
    struct kafka_consumer_opts ko = {
        .brokers = cfg.brokers,
        .group_id = cfg.group,
        .topics = topics,
        .enable_auto_commit = 1, /* an example: at-least-once with periodic commits */
        .auto_offset_reset = "earliest",
    };
    rk = kafka_consumer_new(&ko, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "panel-subscriber: %s\n", err);
        goto out;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (!stop && (cfg.max_events == 0 || count < cfg.max_events)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_warn("consume: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        Envelope *env = events_decode(m->payload, m->len, err, sizeof err);
        if (!env) {
            log_warn("skipping an undecodable event at offset %lld: %s", (long long)m->offset, err);
        } else {
            int dup = 0;
            for (size_t i = 0; i < SEEN_IDS && !dup; i++)
                dup = strcmp(seen[i], env->event_id) == 0;
            if (!dup) {
                snprintf(seen[seen_next], EVENTS_ID_LEN, "%s", env->event_id);
                seen_next = (seen_next + 1) % SEEN_IDS;
                if (env->payload_case == PANEL__V1__ENVELOPE__PAYLOAD_PERSON_CHANGED &&
                    env->person_changed)
                    print_person(env);
                else if (env->payload_case == PANEL__V1__ENVELOPE__PAYLOAD_ASSET_CHANGED &&
                         env->asset_changed)
                    print_asset(env);
                count++;
            }
            events_free(env);
        }
        rd_kafka_offset_store(m->rkt, m->partition, m->offset);
        rd_kafka_message_destroy(m);
    }
    rc = 0;
out:
    if (rk)
        kafka_consumer_destroy(rk);
    cfg_free(options, CFG_OPTS_COUNT(options), &cfg);
    return rc;
}
