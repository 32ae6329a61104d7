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

/* Apply env's RunCompleted. 0 or -1. */
int runs_completed(struct actx *c, const Envelope *env);
/* Apply env's RunFailed: the run fails, what it saw is forgotten. 0 or -1. */
int runs_failed(struct actx *c, const Envelope *env);

#endif
