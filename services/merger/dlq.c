#include "dlq.h"

#include <stdio.h>
#include <string.h>

void dlq_headers_fill(struct dlq_headers *h, int32_t partition, int64_t offset, const char *reason)
{
    snprintf(h->partition, sizeof h->partition, "%d", (int)partition);
    snprintf(h->offset, sizeof h->offset, "%lld", (long long)offset);
    h->name[0] = "x-panel-dlq-reason";
    h->value[0] = reason;
    h->name[1] = "x-panel-dlq-partition";
    h->value[1] = h->partition;
    h->name[2] = "x-panel-dlq-offset";
    h->value[2] = h->offset;
    for (int i = 0; i < DLQ_HEADERS; i++)
        h->len[i] = strlen(h->value[i]);
}

int dlq_send(struct kafka_producer *p, const void *key, size_t keylen, const void *value,
             size_t len, int32_t partition, int64_t offset, const char *reason, char *err,
             size_t errlen)
{
    struct dlq_headers h;
    dlq_headers_fill(&h, partition, offset, reason);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        kafka_producer_handle(p), RD_KAFKA_V_TOPIC(TOPIC_DEAD_LETTER),
        RD_KAFKA_V_KEY((void *)key, keylen), RD_KAFKA_V_VALUE((void *)value, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER(h.name[0], h.value[0], (ssize_t)h.len[0]),
        RD_KAFKA_V_HEADER(h.name[1], h.value[1], (ssize_t)h.len[1]),
        RD_KAFKA_V_HEADER(h.name[2], h.value[2], (ssize_t)h.len[2]), RD_KAFKA_V_END);
    if (e) {
        snprintf(err, errlen, "dead letter: %s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}
