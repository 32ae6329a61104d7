/* dlq: the dead-letter topic for source events that cannot be decoded or break the schema.
 * The original bytes are kept; the reason, origin partition and offset travel as headers
 * (x-panel-dlq-reason, x-panel-dlq-partition, x-panel-dlq-offset). */
#ifndef MERGER_DLQ_H
#define MERGER_DLQ_H

#include "kafka.h"

#include <stddef.h>
#include <stdint.h>

#define DLQ_HEADERS 3

/* The headers of one dead letter: name[i] = value[i] (len[i] bytes, no NUL counted). The
 * values point into the struct (partition, offset in decimal) or at the reason (borrowed). */
struct dlq_headers {
    const char *name[DLQ_HEADERS];
    const char *value[DLQ_HEADERS];
    size_t len[DLQ_HEADERS];
    char partition[16];
    char offset[24];
};

/* Fill h for a message of partition at offset, dead-lettered for reason (borrowed). */
void dlq_headers_fill(struct dlq_headers *h, int32_t partition, int64_t offset, const char *reason);

/* Queue one dead letter on TOPIC_DEAD_LETTER with the original key and value. 0 or -1. */
int dlq_send(struct kafka_producer *p, const void *key, size_t keylen, const void *value,
             size_t len, int32_t partition, int64_t offset, const char *reason, char *err,
             size_t errlen) __attribute__((warn_unused_result));

#endif
