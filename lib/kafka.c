#include "kafka.h"
#include "log.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define KAFKA_MAX_PROPERTIES 64
#define KAFKA_PROPERTIES_MAX 8192

const struct cfg_option kafka_client_options[] = {
    {"PANEL_KAFKA_SECURITY_PROTOCOL", CFG_STRING, "PLAINTEXT", 0, 16,
     offsetof(struct kafka_client_config, security_protocol),
     "Kafka security: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"},
    {"PANEL_KAFKA_SASL_MECHANISM", CFG_STRING, "", 0, 16,
     offsetof(struct kafka_client_config, sasl_mechanism),
     "SASL mechanism with SASL_*: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN"},
    {"PANEL_KAFKA_SASL_USERNAME", CFG_STRING, "", 0, 255,
     offsetof(struct kafka_client_config, sasl_username), "SASL user (this service's principal)"},
    {"PANEL_KAFKA_SASL_PASSWORD", CFG_SECRET, "", 0, 1024,
     offsetof(struct kafka_client_config, sasl_password), "SASL password"},
    {"PANEL_KAFKA_SSL_CA_FILE", CFG_STRING, "", 0, 4096,
     offsetof(struct kafka_client_config, ssl_ca_file),
     "PEM file of the CA that signed the brokers' certificates (empty: the system's CAs)"},
    {"PANEL_KAFKA_SSL_CERT_FILE", CFG_STRING, "", 0, 4096,
     offsetof(struct kafka_client_config, ssl_cert_file),
     "PEM client certificate for mutual TLS (with PANEL_KAFKA_SSL_KEY_FILE)"},
    {"PANEL_KAFKA_SSL_KEY_FILE", CFG_STRING, "", 0, 4096,
     offsetof(struct kafka_client_config, ssl_key_file),
     "PEM private key of the client certificate"},
    {"PANEL_KAFKA_SSL_KEY_PASSWORD", CFG_SECRET, "", 0, 1024,
     offsetof(struct kafka_client_config, ssl_key_password),
     "password of an encrypted PANEL_KAFKA_SSL_KEY_FILE"},
    {"PANEL_KAFKA_PROPERTIES", CFG_STRING, "", 0, KAFKA_PROPERTIES_MAX,
     offsetof(struct kafka_client_config, properties),
     "other librdkafka properties, key=value separated by commas or lines (see "
     "docs/operations.md)"},
};
const size_t kafka_client_noptions = CFG_OPTS_COUNT(kafka_client_options);

/* Properties the code sets itself and relies on (idempotent producer, manual offsets, the
 * merger's exactly-once apply, message size caps), or that have their own variable. */
static const char *const reserved_properties[] = {
    "bootstrap.servers",
    "metadata.broker.list",
    "client.id",
    "group.id",
    "group.instance.id",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "max.in.flight",
    "max.in.flight.requests.per.connection",
    "enable.gapless.guarantee",
    "transactional.id",
    "message.send.max.retries",
    "retries",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "isolation.level",
    "partition.assignment.strategy",
    "enable.partition.eof",
    "max.poll.interval.ms",
    "message.max.bytes",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    /* these run code or commands chosen by a string */
    "plugin.library.paths",
    "sasl.kerberos.kinit.cmd",
};

/* The process's client settings: NULL-terminated key/value pairs, set once at start. */
static char *client_pairs[2 * (KAFKA_MAX_PROPERTIES + 8) + 1];
static size_t client_npairs;

struct kafka_producer {
    rd_kafka_t *rk;
    atomic_long failed;
};

struct kafka_delivery {
    atomic_long refs, pending, failed;
};

struct kafka_delivery *kafka_delivery_new(void)
{
    struct kafka_delivery *d = malloc(sizeof *d);
    if (!d)
        return NULL;
    atomic_init(&d->refs, 1);
    atomic_init(&d->pending, 0);
    atomic_init(&d->failed, 0);
    return d;
}

void kafka_delivery_release(struct kafka_delivery *d)
{
    if (d && atomic_fetch_sub(&d->refs, 1) == 1)
        free(d);
}

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    enum log_level l = level <= 3   ? LOG_ERROR
                       : level <= 4 ? LOG_WARN
                       : level <= 6 ? LOG_INFO
                                    : LOG_DEBUG;
    LOG_AT(l, NULL, NULL, "librdkafka %s: %s", fac, buf);
}

void kafka_conf_use_log(rd_kafka_conf_t *conf)
{
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen)
{
    char e[256];
    if (rd_kafka_conf_set(conf, k, v, e, sizeof e) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka config %s: %s", k, e);
        return -1;
    }
    return 0;
}

static int conf_set_extra(rd_kafka_conf_t *conf, const char *const *extra, char *err, size_t errlen)
{
    for (size_t i = 0; extra && extra[i] && extra[i + 1]; i += 2)
        if (conf_set(conf, extra[i], extra[i + 1], err, errlen))
            return -1;
    return 0;
}

void kafka_client_reset(void)
{
    for (size_t i = 0; i < client_npairs; i++) {
        free(client_pairs[i]);
        client_pairs[i] = NULL;
    }
    client_npairs = 0;
}

static int pair_add(const char *k, size_t klen, const char *v, size_t vlen, char *err,
                    size_t errlen)
{
    if (client_npairs + 2 >= sizeof client_pairs / sizeof client_pairs[0]) {
        snprintf(err, errlen, "PANEL_KAFKA_PROPERTIES: more than %d properties",
                 KAFKA_MAX_PROPERTIES);
        return -1;
    }
    client_pairs[client_npairs] = strndup(k, klen);
    client_pairs[client_npairs + 1] = strndup(v, vlen);
    if (!client_pairs[client_npairs] || !client_pairs[client_npairs + 1]) {
        free(client_pairs[client_npairs]);
        free(client_pairs[client_npairs + 1]);
        client_pairs[client_npairs] = client_pairs[client_npairs + 1] = NULL;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    client_npairs += 2;
    return 0;
}

static int pair_set(const char *k, const char *v, char *err, size_t errlen)
{
    if (!v || !*v)
        return 0;
    return pair_add(k, strlen(k), v, strlen(v), err, errlen);
}

static bool is_reserved(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof reserved_properties / sizeof reserved_properties[0]; i++)
        if (strlen(reserved_properties[i]) == len && strncmp(reserved_properties[i], key, len) == 0)
            return true;
    return false;
}

/* "key=value" items separated by commas or newlines; blank items and lines starting with #
 * are skipped, spaces around keys and values trimmed. */
static int parse_properties(const char *text, char *err, size_t errlen)
{
    const char *p = text;
    while (p && *p) {
        const char *end = p + strcspn(p, ",\n");
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a < b && *a != '#') {
            const char *eq = memchr(a, '=', (size_t)(b - a));
            const char *ke = eq;
            if (!eq) {
                snprintf(err, errlen, "PANEL_KAFKA_PROPERTIES: '%.*s' is not key=value",
                         (int)(b - a > 80 ? 80 : b - a), a);
                return -1;
            }
            while (ke > a && isspace((unsigned char)ke[-1]))
                ke--;
            const char *v = eq + 1;
            while (v < b && isspace((unsigned char)*v))
                v++;
            for (const char *c = a; c < ke; c++)
                if (!islower((unsigned char)*c) && !isdigit((unsigned char)*c) && *c != '.' &&
                    *c != '_' && *c != '-') {
                    snprintf(err, errlen, "PANEL_KAFKA_PROPERTIES: '%.*s' is not a property name",
                             (int)(ke - a > 80 ? 80 : ke - a), a);
                    return -1;
                }
            if (ke == a) {
                snprintf(err, errlen, "PANEL_KAFKA_PROPERTIES: an item has no key");
                return -1;
            }
            if (is_reserved(a, (size_t)(ke - a))) {
                snprintf(err, errlen,
                         "PANEL_KAFKA_PROPERTIES: %.*s is set by the service itself or by its own "
                         "PANEL_KAFKA_* variable and cannot be overridden",
                         (int)(ke - a), a);
                return -1;
            }
            if (pair_add(a, (size_t)(ke - a), v, (size_t)(b - v), err, errlen))
                return -1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

static bool is_set(const char *s)
{
    return s && *s;
}

static int check_readable(const char *env, const char *path, char *err, size_t errlen)
{
    if (is_set(path) && access(path, R_OK) != 0) {
        snprintf(err, errlen, "%s: cannot read %s", env, path);
        return -1;
    }
    return 0;
}

int kafka_client_configure(const struct kafka_client_config *cfg, char *err, size_t errlen)
{
    static const char *const protocols[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"};
    static const char *const mechanisms[] = {"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"};
    const char *proto = is_set(cfg->security_protocol) ? cfg->security_protocol : "PLAINTEXT";
    bool known = false, sasl, tls, mech_ok = false;
    rd_kafka_conf_t *scratch = NULL;
    int rc = -1;
    kafka_client_reset();
    for (size_t i = 0; i < sizeof protocols / sizeof protocols[0]; i++)
        known = known || strcasecmp(proto, protocols[i]) == 0;
    if (!known) {
        snprintf(err, errlen,
                 "PANEL_KAFKA_SECURITY_PROTOCOL=%s is not PLAINTEXT, SSL, SASL_PLAINTEXT or "
                 "SASL_SSL",
                 proto);
        goto out;
    }
    sasl = strncasecmp(proto, "SASL_", 5) == 0;
    tls = strcasecmp(proto, "SSL") == 0 || strcasecmp(proto, "SASL_SSL") == 0;
    if (sasl) {
        for (size_t i = 0; i < sizeof mechanisms / sizeof mechanisms[0]; i++)
            mech_ok = mech_ok || (is_set(cfg->sasl_mechanism) &&
                                  strcasecmp(cfg->sasl_mechanism, mechanisms[i]) == 0);
        if (is_set(cfg->sasl_mechanism) && strcasecmp(cfg->sasl_mechanism, "OAUTHBEARER") == 0) {
            /* Debian's librdkafka 2.0 is built without its OIDC client (no libcurl there):
             * OAUTHBEARER would need a token-refresh callback of our own. */
            snprintf(err, errlen,
                     "PANEL_KAFKA_SASL_MECHANISM=OAUTHBEARER is not supported (this librdkafka "
                     "has no OIDC token client); use SCRAM-SHA-512 or mutual TLS");
            goto out;
        }
        if (!mech_ok) {
            snprintf(
                err, errlen,
                "PANEL_KAFKA_SASL_MECHANISM must be SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN with "
                "%s",
                proto);
            goto out;
        }
        if (!is_set(cfg->sasl_username) || !is_set(cfg->sasl_password)) {
            snprintf(err, errlen,
                     "PANEL_KAFKA_SASL_USERNAME and PANEL_KAFKA_SASL_PASSWORD are required with %s",
                     proto);
            goto out;
        }
        /* librdkafka before 2.6.1 repeats the client nonce in its SCRAM proof; Kafka 4.0
         * and later check it strictly and refuse the login as "invalid credentials". */
        if (strncasecmp(cfg->sasl_mechanism, "SCRAM", 5) == 0 && rd_kafka_version() < 0x020601ff)
            log_warn("librdkafka %s cannot log in with SCRAM to Kafka 4.0 or later brokers "
                     "(fixed in librdkafka 2.6.1): there use PLAIN over SASL_SSL",
                     rd_kafka_version_str());
        if (!tls && strcasecmp(cfg->sasl_mechanism, "PLAIN") == 0)
            log_warn("PANEL_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT with PLAIN sends the Kafka "
                     "password unencrypted: use SASL_SSL");
    } else if (is_set(cfg->sasl_mechanism) || is_set(cfg->sasl_username) ||
               is_set(cfg->sasl_password)) {
        snprintf(err, errlen,
                 "PANEL_KAFKA_SASL_* is set but PANEL_KAFKA_SECURITY_PROTOCOL=%s has no SASL "
                 "(use SASL_SSL)",
                 proto);
        goto out;
    }
    if (!tls && (is_set(cfg->ssl_ca_file) || is_set(cfg->ssl_cert_file) ||
                 is_set(cfg->ssl_key_file) || is_set(cfg->ssl_key_password))) {
        snprintf(err, errlen,
                 "PANEL_KAFKA_SSL_* is set but PANEL_KAFKA_SECURITY_PROTOCOL=%s has no TLS (use "
                 "SSL or SASL_SSL)",
                 proto);
        goto out;
    }
    if (is_set(cfg->ssl_cert_file) != is_set(cfg->ssl_key_file)) {
        snprintf(err, errlen, "PANEL_KAFKA_SSL_CERT_FILE and PANEL_KAFKA_SSL_KEY_FILE go together");
        goto out;
    }
    if (check_readable("PANEL_KAFKA_SSL_CA_FILE", cfg->ssl_ca_file, err, errlen) ||
        check_readable("PANEL_KAFKA_SSL_CERT_FILE", cfg->ssl_cert_file, err, errlen) ||
        check_readable("PANEL_KAFKA_SSL_KEY_FILE", cfg->ssl_key_file, err, errlen))
        goto out;
    if (pair_set("security.protocol", proto, err, errlen) ||
        pair_set("sasl.mechanisms", sasl ? cfg->sasl_mechanism : NULL, err, errlen) ||
        pair_set("sasl.username", cfg->sasl_username, err, errlen) ||
        pair_set("sasl.password", cfg->sasl_password, err, errlen) ||
        pair_set("ssl.ca.location", cfg->ssl_ca_file, err, errlen) ||
        pair_set("ssl.certificate.location", cfg->ssl_cert_file, err, errlen) ||
        pair_set("ssl.key.location", cfg->ssl_key_file, err, errlen) ||
        pair_set("ssl.key.password", cfg->ssl_key_password, err, errlen) ||
        parse_properties(cfg->properties, err, errlen))
        goto out;
    /* librdkafka's own check of names and values, now rather than at the first client. */
    scratch = rd_kafka_conf_new();
    if (!scratch) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (kafka_conf_apply_client(scratch, err, errlen))
        goto out;
    rc = 0;
out:
    if (scratch)
        rd_kafka_conf_destroy(scratch);
    if (rc)
        kafka_client_reset();
    return rc;
}

int kafka_conf_apply_client(rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    for (size_t i = 0; i + 1 < client_npairs; i += 2) {
        char e[256];
        if (rd_kafka_conf_set(conf, client_pairs[i], client_pairs[i + 1], e, sizeof e) !=
            RD_KAFKA_CONF_OK) {
            /* never echo the value: it may be a password */
            snprintf(err, errlen, "kafka setting %s: %s", client_pairs[i], e);
            return -1;
        }
    }
    return 0;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct kafka_producer *p = opaque;
    struct kafka_delivery *d = m->_private; /* the message's opaque: set when tracked */
    if (m->err) {
        atomic_fetch_add(d ? &d->failed : &p->failed, 1);
        log_error("kafka delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                  rd_kafka_err2str(m->err));
    }
    if (d) {
        atomic_fetch_sub(&d->pending, 1);
        kafka_delivery_release(d);
    }
}

struct kafka_producer *kafka_producer_new(const char *brokers, const char *client_id,
                                          const char *const *extra_conf, char *err, size_t errlen)
{
    struct kafka_producer *p = calloc(1, sizeof *p);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[512];
    char maxmsg[32];
    if (!p || !conf) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(maxmsg, sizeof maxmsg, "%d", KAFKA_MAX_MESSAGE + 64 * 1024);
    if (kafka_conf_apply_client(conf, err, errlen) ||
        conf_set(conf, "bootstrap.servers", brokers, err, errlen) ||
        conf_set(conf, "client.id", client_id, err, errlen) ||
        conf_set(conf, "enable.idempotence", "true", err, errlen) ||
        conf_set(conf, "acks", "all", err, errlen) ||
        conf_set(conf, "linger.ms", "5", err, errlen) ||
        conf_set(conf, "compression.codec", "lz4", err, errlen) ||
        conf_set(conf, "message.max.bytes", maxmsg, err, errlen) ||
        conf_set(conf, "queue.buffering.max.messages", "200000", err, errlen) ||
        /* librdkafka's default (1 GiB) lets a fetcher that lists faster than the brokers
         * acknowledge queue as much as it reads (google-sync's peak in the full district:
         * 56.0 MiB, 47.8 with this bound); 16 MiB is still over a second of the full
         * district's publishing, and a full queue makes produce wait (below). */
        conf_set(conf, "queue.buffering.max.kbytes", "16384", err, errlen) ||
        conf_set_extra(conf, extra_conf, err, errlen))
        goto fail;
    kafka_conf_use_log(conf);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!p->rk) {
        snprintf(err, errlen, "kafka producer: %s", e);
        goto fail;
    }
    return p;
fail:
    if (conf && (!p || !p->rk))
        rd_kafka_conf_destroy(conf);
    free(p);
    return NULL;
}

static int produce(struct kafka_producer *p, const char *topic, int32_t partition, const void *key,
                   size_t keylen, const void *value, size_t len, struct kafka_delivery *d,
                   char *err, size_t errlen)
{
    if (partition < 0 && partition != RD_KAFKA_PARTITION_UA) {
        snprintf(err, errlen, "produce to %s: partition %d is not a partition", topic,
                 (int)partition);
        return -1;
    }
    if (len > KAFKA_MAX_MESSAGE) {
        snprintf(err, errlen, "message of %zu bytes exceeds the %d byte limit", len,
                 KAFKA_MAX_MESSAGE);
        return -1;
    }
    if (d) { /* the message's reference, dropped by its delivery report */
        atomic_fetch_add(&d->refs, 1);
        atomic_fetch_add(&d->pending, 1);
    }
    for (int attempt = 0; attempt < 600; attempt++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (partition == RD_KAFKA_PARTITION_UA)
                snprintf(err, errlen, "produce to %s: %s", topic, rd_kafka_err2str(e));
            else
                snprintf(err, errlen, "produce to %s partition %d: %s", topic, (int)partition,
                         rd_kafka_err2str(e));
            goto fail;
        }
        rd_kafka_poll(p->rk, 100); /* local queue full: wait for deliveries */
    }
    snprintf(err, errlen, "produce to %s: local queue stayed full for 60 s", topic);
fail:
    if (d) { /* never queued: no report will come */
        atomic_fetch_sub(&d->pending, 1);
        kafka_delivery_release(d);
    }
    return -1;
}

int kafka_produce(struct kafka_producer *p, const char *topic, const void *key, size_t keylen,
                  const void *value, size_t len, char *err, size_t errlen)
{
    return produce(p, topic, RD_KAFKA_PARTITION_UA, key, keylen, value, len, NULL, err, errlen);
}

int kafka_produce_partition(struct kafka_producer *p, const char *topic, int32_t partition,
                            const void *key, size_t keylen, const void *value, size_t len,
                            struct kafka_delivery *d, char *err, size_t errlen)
{
    return produce(p, topic, partition, key, keylen, value, len, d, err, errlen);
}

int kafka_produce_tracked(struct kafka_producer *p, const char *topic, const void *key,
                          size_t keylen, const void *value, size_t len, struct kafka_delivery *d,
                          char *err, size_t errlen)
{
    return produce(p, topic, RD_KAFKA_PARTITION_UA, key, keylen, value, len, d, err, errlen);
}

long kafka_delivery_wait(struct kafka_producer *p, struct kafka_delivery *d, int timeout_ms)
{
    for (int waited = 0; atomic_load(&d->pending) > 0; waited += 50) {
        if (waited >= timeout_ms)
            return -1;
        rd_kafka_poll(p->rk, 50);
    }
    return atomic_load(&d->failed);
}

void kafka_producer_poll(struct kafka_producer *p)
{
    rd_kafka_poll(p->rk, 0);
}

long kafka_producer_flush(struct kafka_producer *p, int timeout_ms)
{
    if (rd_kafka_flush(p->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    return atomic_exchange(&p->failed, 0);
}

rd_kafka_t *kafka_producer_handle(struct kafka_producer *p)
{
    return p->rk;
}

void kafka_producer_destroy(struct kafka_producer *p)
{
    if (!p)
        return;
    if (p->rk) {
        if (rd_kafka_flush(p->rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            log_warn("kafka producer closed with %d messages undelivered",
                     rd_kafka_outq_len(p->rk));
        rd_kafka_destroy(p->rk);
    }
    free(p);
}

int32_t kafka_topic_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err,
                                    size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    int32_t n = -1;
    if (!t) {
        snprintf(err, errlen, "topic %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto out;
    }
    /* Only this topic's metadata: a producer may not ask for every topic's (ACLs). */
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen,
                 "the partitions of %s: no metadata from the brokers within %d ms (%s)", topic,
                 timeout_ms, rd_kafka_err2str(e));
        goto out;
    }
    if (md->topic_cnt != 1 || strcmp(md->topics[0].topic, topic) != 0) {
        snprintf(err, errlen, "the partitions of %s: the brokers' metadata does not name it",
                 topic);
        goto out;
    }
    if (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        snprintf(err, errlen, "topic %s does not exist (create it: panelctl topics)", topic);
        goto out;
    }
    if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "the partitions of %s: %s", topic,
                 rd_kafka_err2str(md->topics[0].err));
        goto out;
    }
    if (md->topics[0].partition_cnt < 1) {
        snprintf(err, errlen, "topic %s has no partitions", topic);
        goto out;
    }
    n = md->topics[0].partition_cnt;
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    return n;
}

static void default_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                              rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (coop)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
    } else {
        if (coop)
            rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
            rd_kafka_assign(rk, NULL);
    }
}

rd_kafka_t *kafka_consumer_new(const struct kafka_consumer_opts *o, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *subs = NULL;
    char e[512], maxmsg[32];
    snprintf(maxmsg, sizeof maxmsg, "%d", KAFKA_MAX_MESSAGE + 64 * 1024);
    if (!conf) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* Read-ahead per consumer: librdkafka's default queues up to 64 MiB of fetched messages,
     * and a merger runs one consumer per worker. A batch is a few MiB at most; 8 MiB keeps
     * the next batches ready without holding a backlog in memory. PANEL_KAFKA_PROPERTIES may
     * still change both (applied after). */
    if (conf_set(conf, "queued.max.messages.kbytes", "8192", err, errlen) ||
        conf_set(conf, "fetch.max.bytes", "4194304", err, errlen) ||
        kafka_conf_apply_client(conf, err, errlen) ||
        conf_set(conf, "bootstrap.servers", o->brokers, err, errlen) ||
        conf_set(conf, "group.id", o->group_id, err, errlen) ||
        conf_set(conf, "client.id", o->client_id ? o->client_id : o->group_id, err, errlen) ||
        conf_set(conf, "enable.auto.commit", o->enable_auto_commit ? "true" : "false", err,
                 errlen) ||
        conf_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        conf_set(conf, "auto.offset.reset",
                 o->auto_offset_reset ? o->auto_offset_reset : "earliest", err, errlen) ||
        conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", err, errlen) ||
        conf_set(conf, "fetch.message.max.bytes", maxmsg, err, errlen) ||
        conf_set(conf, "session.timeout.ms", "10000", err, errlen) ||
        conf_set(conf, "heartbeat.interval.ms", "1000", err, errlen) ||
        conf_set_extra(conf, o->extra_conf, err, errlen))
        goto fail;
    kafka_conf_use_log(conf);
    rd_kafka_conf_set_opaque(conf, o->opaque);
    rd_kafka_conf_set_rebalance_cb(conf, o->rebalance_cb ? o->rebalance_cb : default_rebalance);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!rk) {
        snprintf(err, errlen, "kafka consumer: %s", e);
        goto fail;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(rk);
    subs = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; o->topics[i]; i++)
        rd_kafka_topic_partition_list_add(subs, o->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (se) {
        snprintf(err, errlen, "kafka subscribe: %s", rd_kafka_err2str(se));
        goto fail;
    }
    return rk;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (rk)
        rd_kafka_destroy(rk);
    return NULL;
}

void kafka_consumer_destroy(rd_kafka_t *rk)
{
    if (!rk)
        return;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

int kafka_create_topics(const char *brokers, const struct kafka_topic_spec *specs, size_t n,
                        int timeout_ms, char *err, size_t errlen)
{
    int rc = -1;
    char e[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_NewTopic_t **topics = calloc(n ? n : 1, sizeof *topics);
    rd_kafka_event_t *ev = NULL;
    if (!topics || !conf || kafka_conf_apply_client(conf, err, errlen) ||
        conf_set(conf, "bootstrap.servers", brokers, err, errlen))
        goto out;
    kafka_conf_use_log(conf);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof e);
    if (!rk) {
        snprintf(err, errlen, "kafka admin: %s", e);
        goto out;
    }
    conf = NULL;
    for (size_t i = 0; i < n; i++) {
        topics[i] = rd_kafka_NewTopic_new(specs[i].name, specs[i].partitions, 1, e, sizeof e);
        if (!topics[i]) {
            snprintf(err, errlen, "topic %s: %s", specs[i].name, e);
            goto out;
        }
        if (specs[i].cleanup_policy)
            rd_kafka_NewTopic_set_config(topics[i], "cleanup.policy", specs[i].cleanup_policy);
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *aopts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(aopts, timeout_ms, e, sizeof e);
    rd_kafka_AdminOptions_set_request_timeout(aopts, timeout_ms, e, sizeof e);
    rd_kafka_CreateTopics(rk, topics, n, aopts, q);
    rd_kafka_AdminOptions_destroy(aopts);
    ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        snprintf(err, errlen, "kafka admin: no answer from %s within %d ms", brokers, timeout_ms);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "kafka admin: %s", rd_kafka_event_error_string(ev));
        goto out;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t nres = 0;
    const rd_kafka_topic_result_t **tres = rd_kafka_CreateTopics_result_topics(res, &nres);
    for (size_t i = 0; i < nres; i++) {
        rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tres[i]);
        if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            snprintf(err, errlen, "create topic %s: %s", rd_kafka_topic_result_name(tres[i]),
                     rd_kafka_topic_result_error_string(tres[i]));
            goto out;
        }
    }
    rc = 0;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    for (size_t i = 0; topics && i < n; i++)
        if (topics[i])
            rd_kafka_NewTopic_destroy(topics[i]);
    free(topics);
    if (q)
        rd_kafka_queue_destroy(q);
    if (rk)
        rd_kafka_destroy(rk);
    if (conf)
        rd_kafka_conf_destroy(conf);
    return rc;
}
