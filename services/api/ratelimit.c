/* ratelimit: token buckets in an open-addressing table. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS  4096 /* callers remembered at once (a power of two) */
#define PROBES 16   /* slots looked at for one caller before the oldest is reused */
#define KEYLEN 128

struct bucket {
    char caller[KEYLEN];
    double tokens;
    int64_t last_ms;
    bool used;
};

struct ratelimit {
    pthread_mutex_t mu;
    double per_ms; /* tokens added per millisecond */
    double burst;
    struct bucket slots[SLOTS];
};

struct ratelimit *ratelimit_new(long per_minute, long burst)
{
    if (per_minute <= 0)
        return NULL;
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    pthread_mutex_init(&rl->mu, NULL);
    rl->per_ms = (double)per_minute / 60000.0;
    rl->burst = burst > 0 ? (double)burst : 1.0;
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The caller's bucket, or a free or least recently used one made the caller's (full). */
static struct bucket *bucket_of(struct ratelimit *rl, const char *caller, int64_t now_ms)
{
    uint32_t h = fnv1a(caller);
    struct bucket *oldest = NULL;
    for (unsigned i = 0; i < PROBES; i++) {
        struct bucket *b = &rl->slots[(h + i) & (SLOTS - 1)];
        if (b->used && strcmp(b->caller, caller) == 0)
            return b;
        if (!b->used) {
            oldest = b;
            break;
        }
        if (!oldest || b->last_ms < oldest->last_ms)
            oldest = b;
    }
    snprintf(oldest->caller, sizeof oldest->caller, "%s", caller);
    oldest->tokens = rl->burst;
    oldest->last_ms = now_ms;
    oldest->used = true;
    return oldest;
}

long ratelimit_take(struct ratelimit *rl, const char *caller, int64_t now_ms)
{
    if (!rl)
        return 0;
    char key[KEYLEN];
    snprintf(key, sizeof key, "%s", caller ? caller : "");
    long wait_s = 0;
    pthread_mutex_lock(&rl->mu);
    struct bucket *b = bucket_of(rl, key, now_ms);
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rl->per_ms;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
    } else {
        long ms = (long)((1.0 - b->tokens) / rl->per_ms + 0.999); /* to the next token */
        wait_s = ms <= 1000 ? 1 : (ms + 999) / 1000;
    }
    pthread_mutex_unlock(&rl->mu);
    return wait_s;
}
