/* panelctl offsets: the end offsets (high watermarks) of topics, summed over partitions, for
 * benchmarks and operators ("how many events are on this topic"). */
#include "commands.h"
#include "kafka.h"

#include <stdio.h>
#include <string.h>

#define OFFSETS_TIMEOUT_MS 10000

/* Sum of the high watermarks of every partition of topic into *total. 0 or -1. */
static int topic_end_offsets(rd_kafka_t *rk, const char *topic, long long *total)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    int rc = -1;
    *total = 0;
    if (!t)
        goto out;
    if (rd_kafka_metadata(rk, 0, t, &md, OFFSETS_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        goto out;
    if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "panelctl: topic %s: %s\n", topic,
                md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "no metadata");
        goto out;
    }
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk, topic, md->topics[0].partitions[i].id, &lo, &hi, OFFSETS_TIMEOUT_MS);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "panelctl: %s[%d]: %s\n", topic, md->topics[0].partitions[i].id,
                    rd_kafka_err2str(e));
            goto out;
        }
        *total += hi;
    }
    rc = 0;
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    return rc;
}

int cmd_offsets(int argc, char **argv)
{
    char err[512];
    int rc = 1;
    if (argc < 1) {
        fprintf(stderr, "usage: panelctl offsets TOPIC...\n");
        return 2;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    kafka_conf_use_log(conf);
    if (kafka_conf_apply_client(conf, err, sizeof err) ||
        rd_kafka_conf_set(conf, "bootstrap.servers", panelctl_config()->kafka_brokers, err,
                          sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "panelctl: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "panelctl: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    printf("{");
    for (int i = 0; i < argc; i++) {
        long long total = 0;
        if (topic_end_offsets(rk, argv[i], &total) != 0)
            goto out;
        printf("%s\"%s\":%lld", i ? "," : "", argv[i], total);
    }
    rc = 0;
out:
    printf("}\n");
    rd_kafka_destroy(rk);
    return rc;
}
