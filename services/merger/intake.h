/* intake: what the consumer decides without a broker or a database — the verdict on one
 * message's bytes, how long the next poll may wait while a batch fills, and what a batch
 * that failed to apply leads to (retry, take its events one at a time, dead-letter the one
 * event that keeps failing). consumer.c does the Kafka and PostgreSQL side. */
#ifndef MERGER_INTAKE_H
#define MERGER_INTAKE_H

#include "apply.h"
#include "events.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A batch failing this often is split into single events; a single event failing this often
 * while the database answers is dead-lettered. */
#define INTAKE_ISOLATE_AFTER 3
#define INTAKE_DEAD_AFTER    5
/* The longest single poll: a stop or a revocation is noticed this fast. */
#define INTAKE_POLL_MS 200

enum intake_verdict {
    INTAKE_APPLY = 0,       /* decoded and valid */
    INTAKE_UNDECODABLE = 1, /* not an Envelope of this schema: *env is NULL */
    INTAKE_INVALID = 2,     /* decoded but breaks the schema: *env is set (its run learns of it) */
};
const char *intake_verdict_str(enum intake_verdict v);

/* Decode and validate one message's value (untrusted bytes) of a topic of topic_partitions
 * partitions (0: not known; apply_validate). *env: the decoded Envelope for APPLY and INVALID
 * (caller frees with events_free), else NULL. why: "" for APPLY, else the reason (fixed
 * text, never bytes of the message) for the dead letter's header. */
enum intake_verdict intake_check(const void *value, size_t len, int32_t topic_partitions,
                                 Envelope **env, char *why, size_t whylen);

/* How long the next poll may wait: INTAKE_POLL_MS before the batch's first message
 * (first_at_ms 0); then what is left of batch_ms, at most INTAKE_POLL_MS; -1 once the
 * batch is due. */
int intake_poll_wait_ms(int64_t first_at_ms, int64_t now_ms, int batch_ms);

/* Failures of the batch at the head of the partitions. Start zeroed. */
struct intake_failures {
    int fails;      /* consecutive failures that count (the database answered in time) */
    size_t isolate; /* events still to take one at a time */
};

enum intake_next {
    INTAKE_RETRY = 0,       /* read the batch again from its first offsets */
    INTAKE_ISOLATE = 1,     /* the same, one event per batch from now on */
    INTAKE_DEAD_LETTER = 2, /* the single event is poison: dead-letter it, then
                               intake_dead_lettered() */
};

/* The most events the next batch may take (1 while isolating). */
size_t intake_batch_limit(const struct intake_failures *f, size_t cap);
/* A batch of n events was applied. */
void intake_applied(struct intake_failures *f, size_t n);
/* A batch of n events was not applied (ar not APPLY_OK). Only failures while the database
 * answered, within the statement timeout, count: an outage or a slow database never makes
 * a valid event look poisonous. */
enum intake_next intake_failed(struct intake_failures *f, enum apply_result ar, bool db_up,
                               bool timed_out, size_t n);
/* The single event intake_failed() named was dead-lettered and its offset committed. */
void intake_dead_lettered(struct intake_failures *f);

/* The messages this process sent to the dead-letter topic, per partition (the offset after
 * the last one): a batch read again (a conflict, a failure, a revocation while collecting,
 * by the same worker or another of the process) meets its dead letters again and must not
 * send them twice. One object is shared by all the workers of a process (it locks itself).
 * Only this process remembers: after a restart a dead letter may be sent again (the topic is
 * at least once). */
struct intake_lettered;
/* A new, empty memory (NULL when out of memory); the caller owns it and releases it with
 * intake_lettered_destroy once no worker uses it. */
struct intake_lettered *intake_lettered_new(void) __attribute__((warn_unused_result));
void intake_lettered_destroy(struct intake_lettered *l);
bool intake_lettered_already(struct intake_lettered *l, int32_t partition, int64_t offset);
/* The message at partition/offset was handed to the dead-letter topic's producer (which
 * delivers it). Partitions past 65535 (or memory running out) are not remembered. */
void intake_lettered_note(struct intake_lettered *l, int32_t partition, int64_t offset);

#endif
