/* panelctl commands that talk to Kafka. */
#include "commands.h"
#include "config.h"
#include "crypto.h"
#include "events.h"
#include "kafka.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DECODE_MAX (KAFKA_MAX_MESSAGE + 1)

int cmd_topics(int argc, char **argv)
{
    (void)argv;
    char err[512];
    long long partitions;
    if (argc != 0) {
        fprintf(stderr, "usage: panelctl topics\n");
        return 2;
    }
    partitions = panelctl_config()->kafka_partitions;
    const struct kafka_topic_spec specs[] = {
        {TOPIC_SYNC_REQUESTS, (int)partitions, NULL}, {TOPIC_AUTH_EVENTS, (int)partitions, NULL},
        {TOPIC_SOURCE_EVENTS, (int)partitions, NULL}, {TOPIC_PEOPLE_EVENTS, (int)partitions, NULL},
        {TOPIC_ASSETS_EVENTS, (int)partitions, NULL}, {TOPIC_ORGUNIT_EVENTS, (int)partitions, NULL},
        {TOPIC_DEAD_LETTER, (int)partitions, NULL},   {TOPIC_SYNC_EVENTS, (int)partitions, NULL},
    };
    const char *brokers = panelctl_config()->kafka_brokers;
    if (kafka_create_topics(brokers, specs, sizeof specs / sizeof specs[0], 15000, err,
                            sizeof err) != 0) {
        fprintf(stderr, "panelctl: %s\n", err);
        return 1;
    }
    printf("topics ready on %s (%lld partitions for new topics)\n", brokers, partitions);
    return 0;
}

static int print_envelope(const void *data, size_t len, const char *prefix)
{
    char err[256];
    struct buf out;
    Envelope *env = events_decode(data, len, err, sizeof err);
    if (!env) {
        printf("{%s\"error\":", prefix);
        int rc = 0;
        buf_init(&out, 0);
        if (buf_append_json_string(&out, err) == 0)
            printf("%s}\n", out.data);
        else
            rc = 1;
        buf_free(&out);
        return rc ? 1 : 0;
    }
    buf_init(&out, 0);
    int rc = events_to_json(&env->base, &out);
    if (rc == 0) {
        if (*prefix)
            printf("{%s\"event\":%s}\n", prefix, out.data);
        else
            printf("%s\n", out.data);
    }
    buf_free(&out);
    events_free(env);
    return rc ? 1 : 0;
}

int cmd_decode(int argc, char **argv)
{
    (void)argv;
    if (argc != 0) {
        fprintf(stderr, "usage: panelctl decode < message.bin\n");
        return 2;
    }
    struct buf in;
    char chunk[65536];
    buf_init(&in, DECODE_MAX);
    for (;;) {
        ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n < 0) {
            perror("panelctl: read");
            buf_free(&in);
            return 1;
        }
        if (n == 0)
            break;
        if (buf_append(&in, chunk, (size_t)n)) {
            fprintf(stderr, "panelctl: input larger than %d bytes\n", KAFKA_MAX_MESSAGE);
            buf_free(&in);
            return 1;
        }
    }
    int rc = print_envelope(in.data, in.len, "");
    buf_free(&in);
    return rc;
}

/* "headers":{name:value,...}, of a message that has any (the dead-letter topic's say why). */
static int append_headers(struct buf *out, rd_kafka_message_t *m)
{
    rd_kafka_headers_t *hdrs = NULL;
    const char *name;
    const void *value;
    size_t size;
    int rc = 0;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    rc |= buf_appends(out, "\"headers\":{");
    for (size_t i = 0;
         rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        char *v = strndup(value ? (const char *)value : "", value ? size : 0);
        rc |= (i ? buf_appends(out, ",") : 0) || buf_append_json_string(out, name) ||
              buf_appends(out, ":") || !v || buf_append_json_string(out, v);
        free(v);
    }
    rc |= buf_appends(out, "},");
    return rc;
}

static volatile sig_atomic_t consume_stop;
static void on_int(int sig)
{
    (void)sig;
    consume_stop = 1;
}

int cmd_consume(int argc, char **argv)
{
    char err[512], group[128];
    long long count = -1, timeout_ms = 5000;
    const char *topic = NULL;
    snprintf(group, sizeof group, "panelctl-%d", (int)getpid());
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            if (cfg_parse_int(argv[++i], 1, 100000000, &count))
                goto usage;
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            if (cfg_parse_int(argv[++i], 1, 3600000, &timeout_ms))
                goto usage;
        } else if (strcmp(argv[i], "--group") == 0 && i + 1 < argc) {
            snprintf(group, sizeof group, "%s", argv[++i]);
        } else if (!topic && argv[i][0] != '-') {
            topic = argv[i];
        } else {
            goto usage;
        }
    }
    if (!topic)
        goto usage;
    signal(SIGINT, on_int);
    const char *topics[] = {topic, NULL};
    struct kafka_consumer_opts o = {
        .brokers = panelctl_config()->kafka_brokers,
        .group_id = group,
        .topics = topics,
        .enable_auto_commit = 0,
        .auto_offset_reset = "earliest",
    };
    rd_kafka_t *rk = kafka_consumer_new(&o, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "panelctl: %s\n", err);
        return 1;
    }
    long long seen = 0;
    int rc = 0;
    /* Stop after `count` messages, or after timeout_ms without a message. */
    while (!consume_stop && (count < 0 || seen < count)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, (int)timeout_ms);
        if (!m)
            break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "panelctl: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        struct buf prefix;
        buf_init(&prefix, 4096);
        int prc =
            buf_appendf(&prefix, "\"partition\":%d,\"offset\":%lld,\"key\":", (int)m->partition,
                        (long long)m->offset);
        char *key = strndup(m->key ? (const char *)m->key : "", m->key_len);
        prc |= !key || buf_append_json_string(&prefix, key);
        prc |= buf_appends(&prefix, ",");
        free(key);
        prc |= append_headers(&prefix, m);
        if (prc == 0)
            rc |= print_envelope(m->payload, m->len, prefix.data);
        buf_free(&prefix);
        fflush(stdout);
        seen++;
        rd_kafka_message_destroy(m);
    }
    kafka_consumer_destroy(rk);
    if (count > 0 && seen < count) {
        fprintf(stderr, "panelctl: only %lld of %lld messages arrived\n", seen, count);
        return 1;
    }
    return rc;
usage:
    fprintf(stderr, "usage: panelctl consume TOPIC [--count N] [--timeout-ms MS] [--group G]\n");
    return 2;
}

/* The end of every publishing command: wait for the deliveries, release the producer and
 * report. The command's exit status: rc, or 1 when a delivery failed. */
static int publish_finish(struct kafka_producer *p, int rc, long long published)
{
    long failed = kafka_producer_flush(p, 30000);
    if (failed != 0) {
        fprintf(stderr, "panelctl: %ld deliveries failed or timed out\n", failed);
        rc = 1;
    }
    kafka_producer_destroy(p);
    if (rc == 0)
        printf("published %lld event(s)\n", published);
    return rc;
}

int cmd_produce_test(int argc, char **argv)
{
    char err[512], id[EVENTS_ID_LEN], run[EVENTS_ID_LEN];
    long long count = 1;
    if (argc < 1 || argc > 2 || (argc == 2 && cfg_parse_int(argv[1], 1, 1000000, &count))) {
        fprintf(stderr, "usage: panelctl produce-test TENANT [COUNT]\n");
        return 2;
    }
    struct kafka_producer *p =
        kafka_producer_new(panelctl_config()->kafka_brokers, "panelctl", NULL, err, sizeof err);
    if (!p) {
        fprintf(stderr, "panelctl: %s\n", err);
        return 1;
    }
    int rc = 0;
    for (long long i = 0; i < count && rc == 0; i++) {
        Envelope env;
        Panel__V1__RunStarted rs = PANEL__V1__RUN_STARTED__INIT;
        if (crypto_uuid(run) || events_envelope_init(&env, id, argv[0], PB_SOURCE_GOOGLE, run)) {
            rc = 1;
            break;
        }
        rs.has_kind = 1;
        rs.kind = PB_RUN_KIND_FULL;
        rs.reason = "test";
        env.payload_case = PB_PAYLOAD_RUN_STARTED;
        env.run_started = &rs;
        if (events_publish(p, TOPIC_SOURCE_EVENTS, argv[0], &env, err, sizeof err)) {
            fprintf(stderr, "panelctl: %s\n", err);
            rc = 1;
        }
    }
    return publish_finish(p, rc, count);
}

/* Fill the header fields a test or an operator may leave out. */
static int publish_fill_header(Envelope *env, char id[EVENTS_ID_LEN])
{
    if (!env->event_id) {
        if (crypto_uuid(id))
            return -1;
        env->event_id = strdup(id);
        if (!env->event_id)
            return -1;
    }
    if (!env->has_occurred_at_ms) {
        env->has_occurred_at_ms = 1;
        env->occurred_at_ms = events_now_ms();
    }
    if (!env->has_schema_version) {
        env->has_schema_version = 1;
        env->schema_version = EVENTS_SCHEMA_VERSION;
    }
    return 0;
}

#define PUBLISH_MAX_LINE (KAFKA_MAX_MESSAGE * 2)

int cmd_publish(int argc, char **argv)
{
    char err[512], id[EVENTS_ID_LEN];
    int raw = 0, rc = 0;
    long long n = 0, lineno = 0;
    char *line = NULL;
    size_t linecap = 0;
    struct kafka_producer *p = NULL;
    if (argc == 3 && strcmp(argv[2], "--raw") == 0)
        raw = 1;
    else if (argc != 2) {
        fprintf(stderr, "usage: panelctl publish TOPIC KEY [--raw] < envelopes.jsonl\n");
        return 2;
    }
    p = kafka_producer_new(panelctl_config()->kafka_brokers, "panelctl", NULL, err, sizeof err);
    if (!p) {
        fprintf(stderr, "panelctl: %s\n", err);
        return 1;
    }
    ssize_t len;
    while (rc == 0 && (len = getline(&line, &linecap, stdin)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (len > PUBLISH_MAX_LINE) {
            fprintf(stderr, "panelctl: line %lld longer than %d bytes\n", lineno, PUBLISH_MAX_LINE);
            rc = 1;
            break;
        }
        if (raw) { /* the line's bytes as they are: for poison-message tests */
            if (kafka_produce(p, argv[0], argv[1], strlen(argv[1]), line, (size_t)len, err,
                              sizeof err)) {
                fprintf(stderr, "panelctl: %s\n", err);
                rc = 1;
            }
            n++;
            continue;
        }
        Envelope *env = (Envelope *)events_from_json(&panel__v1__envelope__descriptor, line,
                                                     (size_t)len, err, sizeof err);
        if (!env) {
            fprintf(stderr, "panelctl: line %lld: %s\n", lineno, err);
            rc = 1;
            break;
        }
        if (publish_fill_header(env, id) ||
            events_publish(p, argv[0], argv[1], env, err, sizeof err)) {
            fprintf(stderr, "panelctl: line %lld: %s\n", lineno, err);
            rc = 1;
        }
        events_free(env);
        n++;
    }
    free(line);
    return publish_finish(p, rc, n);
}
