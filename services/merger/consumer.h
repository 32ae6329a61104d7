/* consumer: the panel.source.events group member. On every partition assignment it seeks to
 * the next offset stored in PostgreSQL (consumer_offsets), collects batches by count and
 * time, sends undecodable or invalid events to the dead-letter topic, and hands each batch
 * to apply_batch. A batch that fails is retried from its first offsets; a batch interrupted
 * by a revocation or a stop is abandoned (nothing of it is committed). */
#ifndef MERGER_CONSUMER_H
#define MERGER_CONSUMER_H

#include "metrics.h"

#include <stdbool.h>
#include <stddef.h>

struct consumer_opts {
    const char *brokers;
    const char *pg_url;
    const char *group;
    int batch_max;              /* events per batch */
    int batch_ms;               /* longest wait for a batch to fill */
    struct metrics *metrics;    /* borrowed */
    bool (*running)(void *arg); /* false once the service should stop */
    void *arg;
};

/* Run until running() turns false. 0 on a clean stop, -1 with a message in err. */
int consumer_run(const struct consumer_opts *o, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Run `workers` consumers (1..CONSUMER_WORKERS_MAX) in threads of this process, each its own
 * member of the group with its own PostgreSQL connection, so that the partitions of one
 * district are applied at once (the fetchers spread a run over the partitions; its end is a
 * barrier, apply_runs.h). They share one memory of the dead letters sent (intake.h), so a
 * partition that moves between them is not dead-lettered twice. Returns when all have stopped: 0
 * when they stopped cleanly, -1 (err: the first failure) when one failed, which stops the others
 * too. */
#define CONSUMER_WORKERS_MAX 16
int consumer_run_workers(const struct consumer_opts *o, int workers, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
