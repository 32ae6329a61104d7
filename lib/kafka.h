/* kafka: thin helpers over librdkafka — an idempotent producer with delivery accounting, a
 * consumer-group consumer with manual offset control, idempotent topic creation and the
 * topic names. librdkafka's own logs go through log.h. */
#ifndef PANEL_KAFKA_H
#define PANEL_KAFKA_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#define TOPIC_SYNC_REQUESTS  "panel.sync.requests"
#define TOPIC_AUTH_EVENTS    "panel.auth.events"
#define TOPIC_SOURCE_EVENTS  "panel.source.events"
#define TOPIC_PEOPLE_EVENTS  "panel.people.events"
#define TOPIC_ASSETS_EVENTS  "panel.assets.events"
#define TOPIC_ORGUNIT_EVENTS "panel.orgunits.events"
#define TOPIC_DEAD_LETTER    "panel.source.events.dlq"
#define TOPIC_SYNC_EVENTS    "panel.sync.events"

/* The largest Envelope any producer may send or any consumer will accept. */
#define KAFKA_MAX_MESSAGE (1024 * 1024)

/* How every Kafka client of the process authenticates and encrypts, shared by all services
 * and panelctl (PANEL_KAFKA_* in kafka_client_options). Strings are owned by the struct (see
 * cfg_free with kafka_client_options). */
struct kafka_client_config {
    char *security_protocol; /* PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL */
    char *sasl_mechanism;    /* SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN */
    char *sasl_username;
    char *sasl_password;    /* secret */
    char *ssl_ca_file;      /* PEM: the CA that signed the brokers' certificates */
    char *ssl_cert_file;    /* PEM: this client's certificate (mutual TLS), with ssl_key_file */
    char *ssl_key_file;     /* PEM */
    char *ssl_key_password; /* secret; for an encrypted ssl_key_file */
    char *properties;       /* other librdkafka properties: "key=value,key=value" */
};

extern const struct cfg_option kafka_client_options[];
extern const size_t kafka_client_noptions;

/* Check cfg and make it the settings every client created afterwards starts from (the
 * constructors below and kafka_conf_apply_client). Call once at start, before any client
 * exists and before threads start. Refuses unknown combinations and passthrough properties
 * that would override what this code relies on (idempotence, manual offsets, group, sizes)
 * or that have their own variable. 0, or -1 with a message naming the variable. */
int kafka_client_configure(const struct kafka_client_config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Apply the configured security settings to a conf the caller builds itself. 0 or -1. */
int kafka_conf_apply_client(rd_kafka_conf_t *conf, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Forget the configured settings (tests; process exit). */
void kafka_client_reset(void);

struct kafka_producer;

/* Idempotent producer (acks=all, in-order retries). extra_conf: NULL or NULL-terminated
 * key/value pairs applied last. Returns NULL with a message in err. */
struct kafka_producer *kafka_producer_new(const char *brokers, const char *client_id,
                                          const char *const *extra_conf, char *err, size_t errlen);
/* Queue one message (key and value are copied). Blocks briefly while the local queue is
 * full. 0, or -1 with a message. Delivery failures are counted, see kafka_producer_flush. */
int kafka_produce(struct kafka_producer *p, const char *topic, const void *key, size_t keylen,
                  const void *value, size_t len, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The delivery results of the messages one caller produced (librdkafka's per-message
 * delivery reports), so that callers sharing a producer never see each other's failures.
 * Reference-counted: every tracked message holds a reference until its report arrived, so the
 * caller may release it even after a timed-out wait. */
struct kafka_delivery;
/* A new tracker (the caller's reference), or NULL when out of memory. */
struct kafka_delivery *kafka_delivery_new(void);
/* Drop the caller's reference (NULL is allowed). */
void kafka_delivery_release(struct kafka_delivery *d);
/* kafka_produce whose delivery result is counted in d. 0, or -1 with a message. */
int kafka_produce_tracked(struct kafka_producer *p, const char *topic, const void *key,
                          size_t keylen, const void *value, size_t len, struct kafka_delivery *d,
                          char *err, size_t errlen) __attribute__((warn_unused_result));
/* Queue one message on an explicit partition of topic (0 .. count-1, see
 * kafka_topic_partition_count; RD_KAFKA_PARTITION_UA: the partitioner picks one by key, as
 * kafka_produce), its delivery result counted in d (NULL: in the producer's count, see
 * kafka_producer_flush). The producer is idempotent, so the messages of one partition are
 * written in the order they were queued. 0, or -1 with a message (also for a negative
 * partition other than RD_KAFKA_PARTITION_UA; one beyond the topic's fails then or at
 * delivery). */
int kafka_produce_partition(struct kafka_producer *p, const char *topic, int32_t partition,
                            const void *key, size_t keylen, const void *value, size_t len,
                            struct kafka_delivery *d, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Wait until every message tracked by d was delivered or failed: the number that failed
 * (0 = all delivered), or -1 when some are still undecided after timeout_ms. */
long kafka_delivery_wait(struct kafka_producer *p, struct kafka_delivery *d, int timeout_ms)
    __attribute__((warn_unused_result));
/* Serve delivery reports without blocking. */
void kafka_producer_poll(struct kafka_producer *p);
/* Wait until everything queued is delivered or failed. Returns the number of messages that
 * failed delivery since the last call (0 = all delivered), or -1 on timeout. */
long kafka_producer_flush(struct kafka_producer *p, int timeout_ms)
    __attribute__((warn_unused_result));
rd_kafka_t *kafka_producer_handle(struct kafka_producer *p); /* borrowed */
/* Flushes (up to 10 s) and frees. */
void kafka_producer_destroy(struct kafka_producer *p);

/* Consumer configuration for kafka_consumer_new. */
struct kafka_consumer_opts {
    const char *brokers;
    const char *group_id;
    const char *client_id;
    const char *const *topics;     /* NULL-terminated */
    int enable_auto_commit;        /* 0: the caller commits (or stores offsets elsewhere) */
    const char *auto_offset_reset; /* "earliest" (default) or "latest" */
    /* Optional rebalance hook; when NULL the default assign/unassign is used. */
    void (*rebalance_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque);
    void *opaque;
    const char *const *extra_conf; /* NULL-terminated key/value pairs */
};

/* A subscribed consumer-group member. Returns NULL with a message in err. */
rd_kafka_t *kafka_consumer_new(const struct kafka_consumer_opts *opts, char *err, size_t errlen);
/* Close (leave the group) and destroy. */
void kafka_consumer_destroy(rd_kafka_t *rk);

/* The number of partitions of topic as the brokers' metadata says (rk: any client, e.g.
 * kafka_producer_handle; borrowed), asking for that topic alone and waiting up to
 * timeout_ms. The count (>= 1), or -1 with a message: brokers unreachable within the
 * timeout, the topic unknown, or another metadata error. */
int32_t kafka_topic_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err,
                                    size_t errlen) __attribute__((warn_unused_result));

struct kafka_topic_spec {
    const char *name;
    int partitions;
    const char *cleanup_policy; /* NULL = "delete" */
};

/* Create the topics that do not exist yet; existing ones are left alone. 0 or -1. */
int kafka_create_topics(const char *brokers, const struct kafka_topic_spec *specs, size_t n,
                        int timeout_ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Route a client's log lines to log.h (already done by the constructors above). */
void kafka_conf_use_log(rd_kafka_conf_t *conf);

/* The option-table row (lib/config.h) of the brokers every Kafka client of the services
 * reaches: PANEL_KAFKA_BROKERS, read into member (char *) of the service's config type. */
#define KAFKA_CFG_BROKERS(type, member)                                                            \
    {                                                                                              \
        "PANEL_KAFKA_BROKERS", CFG_STRING, "127.0.0.1:9092", 0, 1024, offsetof(type, member),      \
            "Kafka bootstrap servers (host:port,...)"                                              \
    }

#endif
