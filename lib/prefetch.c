#include "prefetch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct prefetch {
    prefetch_fn fn;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    void *job; /* started, not yet taken (under lock) */
    bool done; /* job has run (under lock) */
    bool quit; /* the thread is to exit (under lock) */
    atomic_bool cancelled;
};

static void *worker(void *arg)
{
    struct prefetch *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->quit && (!p->job || p->done))
            pthread_cond_wait(&p->changed, &p->lock);
        if (p->quit)
            break;
        void *job = p->job;
        pthread_mutex_unlock(&p->lock);
        p->fn(job, p->ctx);
        pthread_mutex_lock(&p->lock);
        p->done = true;
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct prefetch *prefetch_new(prefetch_fn fn, void *ctx, char *err, size_t errlen)
{
    struct prefetch *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_init(&p->cancelled, false);
    if (pthread_mutex_init(&p->lock, NULL)) {
        snprintf(err, errlen, "cannot create a mutex");
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->changed, NULL)) {
        snprintf(err, errlen, "cannot create a condition variable");
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    int rc = pthread_create(&p->thread, NULL, worker, p);
    if (rc) {
        snprintf(err, errlen, "cannot start the prefetch thread: %s", strerror(rc));
        pthread_cond_destroy(&p->changed);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    return p;
}

int prefetch_start(struct prefetch *p, void *job)
{
    int rc = -1;
    pthread_mutex_lock(&p->lock);
    if (p->job || atomic_load(&p->cancelled) || !job)
        goto out;
    p->job = job;
    p->done = false;
    pthread_cond_broadcast(&p->changed);
    rc = 0;
out:
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void *prefetch_wait(struct prefetch *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->job && !p->done)
        pthread_cond_wait(&p->changed, &p->lock);
    void *job = p->job;
    p->job = NULL;
    p->done = false;
    pthread_mutex_unlock(&p->lock);
    return job;
}

bool prefetch_busy(struct prefetch *p)
{
    pthread_mutex_lock(&p->lock);
    bool busy = p->job != NULL;
    pthread_mutex_unlock(&p->lock);
    return busy;
}

void prefetch_cancel(struct prefetch *p)
{
    atomic_store(&p->cancelled, true);
}

bool prefetch_cancelled(struct prefetch *p)
{
    return atomic_load(&p->cancelled);
}

void prefetch_destroy(struct prefetch *p)
{
    if (!p)
        return;
    prefetch_cancel(p);
    (void)prefetch_wait(p);
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
