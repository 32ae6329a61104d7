/* ratelimit: a token bucket per caller (an API key or a signed-in person), so that one client
 * in a loop cannot take every worker and database connection from the others. A caller may
 * make per_minute requests a minute on average and bursts of up to burst at once. The buckets
 * live in this process: with N api replicas behind one address a caller gets up to N times
 * the rate (docs/operations.md). A full table forgets its least recently used bucket, which
 * only ever gives that caller a fresh (full) bucket. Thread-safe. */
#ifndef API_RATELIMIT_H
#define API_RATELIMIT_H

#include <stdint.h>

struct ratelimit;

/* NULL (no limit, every call allowed) when per_minute is 0 or memory is short. Free with
 * ratelimit_free. */
struct ratelimit *ratelimit_new(long per_minute, long burst);
void ratelimit_free(struct ratelimit *rl);

/* Take one request of caller (any string; longer than 127 bytes is cut) at now_ms (a
 * monotonic clock): 0 when allowed, else the whole seconds (at least 1) after which the
 * next request would be. A NULL rl allows everything. */
long ratelimit_take(struct ratelimit *rl, const char *caller, int64_t now_ms);

#endif
