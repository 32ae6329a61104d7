#include "dlq.h"

#include <stdio.h>
#include <string.h>

int dlq_send(struct kafka_producer *p, const void *key, size_t keylen, const void *value,
             size_t len, int32_t partition, int64_t offset, const char *reason, char *err,
             size_t errlen)
{
    char part[16], off[32];
    snprintf(part, sizeof part, "%d", (int)partition);
    snprintf(off, sizeof off, "%lld", (long long)offset);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        kafka_producer_handle(p), RD_KAFKA_V_TOPIC(TOPIC_DEAD_LETTER),
        RD_KAFKA_V_KEY((void *)key, keylen), RD_KAFKA_V_VALUE((void *)value, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("x-panel-dlq-reason", reason, (ssize_t)strlen(reason)),
        RD_KAFKA_V_HEADER("x-panel-dlq-partition", part, (ssize_t)strlen(part)),
        RD_KAFKA_V_HEADER("x-panel-dlq-offset", off, (ssize_t)strlen(off)), RD_KAFKA_V_END);
    if (e) {
        snprintf(err, errlen, "dead letter: %s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}
