/* scheduler: periodic sync requests for connected tenants, and the retry of remote revokes
 * that failed. Every due connection row is claimed with FOR UPDATE SKIP LOCKED, so with
 * several replicas each due schedule fires once; next_sync_at advances in the same
 * transaction that writes the request, so a restart neither loses nor doubles a due run. */
#ifndef AUTH_SCHEDULER_H
#define AUTH_SCHEDULER_H

#include "ctx.h"

#include <stdbool.h>
#include <stdint.h>

struct pause_window {
    int64_t starts_at; /* seconds since the epoch, inclusive */
    int64_t ends_at;   /* exclusive */
};

/* True when now falls inside one of the windows. */
bool sched_paused(int64_t now, const struct pause_window *w, size_t n);
/* The next due time after a schedule due at `due` fired at `now`: due + k * interval for
 * the smallest k >= 1 that lands after now (a long outage does not cause a burst). */
int64_t sched_next(int64_t now, int64_t due, int64_t interval);

enum sched_action { SCHED_REQUEST = 0, SCHED_PAUSED = 1 };
/* What a due schedule does: scheduled runs are skipped inside a pause window. */
enum sched_action sched_decide(int64_t now, const struct pause_window *w, size_t n);

struct scheduler;
struct metrics;
/* Start the background thread ticking every tick_ms; m (borrowed, may be NULL) gets
 * auth_scheduler_passes_total{result} (auth_scheduled_requests_total{result} is counted on the
 * auth_ctx's metrics). NULL with a message. */
struct scheduler *scheduler_start(struct auth_ctx *c, long tick_ms, struct metrics *m, char *err,
                                  size_t errlen);
/* One pass: fire due schedules, publish pending requests, retry pending revokes
 * (old states: lib/retention, started by main.c). Returns the number of sync requests written, or
 * -1 with a message. */
long scheduler_tick(struct auth_ctx *c, char *err, size_t errlen);
/* Stop and join the thread. */
void scheduler_stop(struct scheduler *s);

#endif
