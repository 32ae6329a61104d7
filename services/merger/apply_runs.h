/* apply_runs: the bookkeeping of sync runs — the run row (RunStarted, or any event of a run
 * not seen yet), RunCompleted (removals of what a full run did not see or a delta run
 * reported, through the deletion threshold, or a preview's report) and RunFailed. */
#ifndef MERGER_APPLY_RUNS_H
#define MERGER_APPLY_RUNS_H

#include "apply_ctx.h"

/* The tenant and run row of env's run exist; status "running" for RunStarted (its kind,
 * preview and reason are stored), NULL for any other event. 0 or -1. */
int runs_ensure(struct actx *c, const Envelope *env, const char *status);

struct run_info {
    bool found, preview, delta, open;
};
/* What sync_runs says of run. 0 or -1. */
int runs_info(struct actx *c, const char *tenant, const char *run, struct run_info *ri);

/* A run's end is a barrier across the partitions of the source topic: a fetcher that spread
 * the run over n partitions (partition_count n > 1) sent its RunCompleted / RunFailed once on
 * each, after that partition's observations. The end reached on `partition` for env's run:
 * *ri is what sync_runs says of the run; 1 when the run is open and every partition 0..n-1
 * has applied its copy (the run ends now: this copy is recorded), 0 when there is nothing to
 * end (the run is unknown or already ended — the second end of a run two fetchers ran — or
 * other partitions' copies are still to come, this one being recorded), -1 on error. A count
 * of 0 or 1 (one copy) ends an open run at once. Serialised per run (the run row is locked),
 * so of two members applying the last two copies at once exactly one ends the run. */
int runs_end_reached(struct actx *c, const Envelope *env, int32_t partition, uint32_t count,
                     struct run_info *ri);

/* Apply env's RunCompleted, consumed from `partition`: once its barrier is passed, the run
 * ends and its deletions are decided. 0 or -1. */
int runs_completed(struct actx *c, const Envelope *env, int32_t partition);
/* Apply env's RunFailed (from `partition`, the same barrier): the run fails, what it saw is
 * forgotten. 0 or -1. */
int runs_failed(struct actx *c, const Envelope *env, int32_t partition);
/* env, a run's end (RunCompleted / RunFailed), was dead-lettered for why (borrowed): its run,
 * if still open, fails at once (`invalid_end`, the reason in its message) and deletes
 * nothing, rather than wait for an end that will never pass the barrier. 0 or -1. */
int runs_end_refused(struct actx *c, const Envelope *env, const char *why);

#endif
