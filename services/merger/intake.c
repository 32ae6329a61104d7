/* intake: see intake.h. */
#include "intake.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

const char *intake_verdict_str(enum intake_verdict v)
{
    switch (v) {
    case INTAKE_APPLY:
        return "apply";
    case INTAKE_UNDECODABLE:
        return "undecodable";
    case INTAKE_INVALID:
        return "invalid";
    }
    return "?";
}

enum intake_verdict intake_check(const void *value, size_t len, int32_t topic_partitions,
                                 Envelope **env, char *why, size_t whylen)
{
    why[0] = '\0';
    *env = events_decode(value, len, why, whylen);
    if (!*env)
        return INTAKE_UNDECODABLE;
    if (apply_validate(*env, topic_partitions, why, whylen))
        return INTAKE_INVALID;
    return INTAKE_APPLY;
}

int intake_poll_wait_ms(int64_t first_at_ms, int64_t now_ms, int batch_ms)
{
    if (!first_at_ms)
        return INTAKE_POLL_MS;
    int64_t left = batch_ms - (now_ms - first_at_ms);
    if (left <= 0)
        return -1;
    return left > INTAKE_POLL_MS ? INTAKE_POLL_MS : (int)left;
}

size_t intake_batch_limit(const struct intake_failures *f, size_t cap)
{
    return f->isolate ? 1 : cap;
}

void intake_applied(struct intake_failures *f, size_t n)
{
    f->fails = 0;
    f->isolate = f->isolate > n ? f->isolate - n : 0;
}

enum intake_next intake_failed(struct intake_failures *f, enum apply_result ar, bool db_up,
                               bool timed_out, size_t n)
{
    if (db_up && !timed_out)
        f->fails += ar == APPLY_ERROR;
    if (ar != APPLY_ERROR || !db_up)
        return INTAKE_RETRY;
    if (n > 1 && f->fails >= INTAKE_ISOLATE_AFTER) {
        f->isolate = n;
        f->fails = 0;
        return INTAKE_ISOLATE;
    }
    if (n == 1 && f->fails >= INTAKE_DEAD_AFTER)
        return INTAKE_DEAD_LETTER;
    return INTAKE_RETRY;
}

void intake_dead_lettered(struct intake_failures *f)
{
    f->fails = 0;
    f->isolate = f->isolate > 1 ? f->isolate - 1 : 0;
}

struct intake_lettered {
    pthread_mutex_t mu;
    int64_t *end; /* indexed by partition */
    size_t n;
};

struct intake_lettered *intake_lettered_new(void)
{
    struct intake_lettered *l = calloc(1, sizeof *l);
    if (l && pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l);
        l = NULL;
    }
    return l;
}

void intake_lettered_destroy(struct intake_lettered *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->mu);
    free(l->end);
    free(l);
}

bool intake_lettered_already(struct intake_lettered *l, int32_t partition, int64_t offset)
{
    pthread_mutex_lock(&l->mu);
    bool yes = partition >= 0 && (size_t)partition < l->n && offset < l->end[partition];
    pthread_mutex_unlock(&l->mu);
    return yes;
}

void intake_lettered_note(struct intake_lettered *l, int32_t partition, int64_t offset)
{
    if (partition < 0 || partition > 65535)
        return;
    pthread_mutex_lock(&l->mu);
    if ((size_t)partition >= l->n) {
        size_t n = (size_t)partition + 1;
        int64_t *e = realloc(l->end, n * sizeof *e);
        if (!e)
            goto out;
        for (size_t i = l->n; i < n; i++)
            e[i] = 0;
        l->end = e;
        l->n = n;
    }
    if (offset + 1 > l->end[partition])
        l->end[partition] = offset + 1;
out:
    pthread_mutex_unlock(&l->mu);
}
