/* prefetch: one worker thread that runs one job at a time while its owner works on the
 * result of the previous one (a fetcher downloads the next provider page while it publishes
 * the current one). Bounded by construction: a job is started only after the previous one
 * was taken with prefetch_wait(), so at most one job is in flight. Jobs run in the order
 * they are started. The owner is one thread. */
#ifndef PANEL_PREFETCH_H
#define PANEL_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>

struct prefetch;

/* Runs on the worker thread; job and ctx are the owner's (borrowed). */
typedef void (*prefetch_fn)(void *job, void *ctx);

/* Start the worker. NULL with a message in err. ctx is borrowed. */
struct prefetch *prefetch_new(prefetch_fn fn, void *ctx, char *err, size_t errlen);
/* Hand job (borrowed until prefetch_wait() returns it) to the worker. -1 when a job is
 * already in flight or the worker was cancelled: the owner must take the first one. */
int prefetch_start(struct prefetch *p, void *job) __attribute__((warn_unused_result));
/* Wait for the job in flight to finish and return it (NULL when none is in flight). */
void *prefetch_wait(struct prefetch *p);
/* True while a started job was not taken yet. */
bool prefetch_busy(struct prefetch *p);
/* Refuse further jobs; a job in flight still runs to its end (its fn may poll
 * prefetch_cancelled() to end early) and is taken with prefetch_wait(). */
void prefetch_cancel(struct prefetch *p);
bool prefetch_cancelled(struct prefetch *p);
/* Cancel, wait for a job in flight, stop the thread and free. NULL is fine. */
void prefetch_destroy(struct prefetch *p);

#endif
