#include "kafka.h"
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kafka_producer {
    rd_kafka_t *rk;
    atomic_long failed;
};

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

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct kafka_producer *p = opaque;
    if (m->err) {
        atomic_fetch_add(&p->failed, 1);
        log_error("kafka delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                  rd_kafka_err2str(m->err));
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
    if (conf_set(conf, "bootstrap.servers", brokers, err, errlen) ||
        conf_set(conf, "client.id", client_id, err, errlen) ||
        conf_set(conf, "enable.idempotence", "true", err, errlen) ||
        conf_set(conf, "acks", "all", err, errlen) ||
        conf_set(conf, "linger.ms", "5", err, errlen) ||
        conf_set(conf, "compression.codec", "lz4", err, errlen) ||
        conf_set(conf, "message.max.bytes", maxmsg, err, errlen) ||
        conf_set(conf, "queue.buffering.max.messages", "200000", err, errlen) ||
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

int kafka_produce(struct kafka_producer *p, const char *topic, const void *key, size_t keylen,
                  const void *value, size_t len, char *err, size_t errlen)
{
    if (len > KAFKA_MAX_MESSAGE) {
        snprintf(err, errlen, "message of %zu bytes exceeds the %d byte limit", len,
                 KAFKA_MAX_MESSAGE);
        return -1;
    }
    for (int attempt = 0; attempt < 600; attempt++) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
                              RD_KAFKA_V_VALUE((void *)value, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            snprintf(err, errlen, "produce to %s: %s", topic, rd_kafka_err2str(e));
            return -1;
        }
        rd_kafka_poll(p->rk, 100); /* local queue full: wait for deliveries */
    }
    snprintf(err, errlen, "produce to %s: local queue stayed full for 60 s", topic);
    return -1;
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
    if (conf_set(conf, "bootstrap.servers", o->brokers, err, errlen) ||
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
    if (!topics || conf_set(conf, "bootstrap.servers", brokers, err, errlen))
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
