#include "metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define METRIC_BUCKETS 12
static const double bucket_sets[][METRIC_BUCKETS] = {
    [METRICS_BUCKETS_REQUEST] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                                 60.0},
    [METRICS_BUCKETS_RUN] = {1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 43200},
};

enum series_kind { SERIES_COUNTER, SERIES_GAUGE, SERIES_HISTOGRAM };

struct series {
    char *name;
    char *labels;
    enum series_kind kind;
    double value; /* counter/gauge; histogram sum */
    unsigned long long count;
    unsigned long long buckets[METRIC_BUCKETS];
    const double *bounds; /* histogram: its family's bucket set */
    bool rendered;        /* scratch for metrics_render */
    struct series *next;
};

struct family {
    char *name, *type, *help;
    enum metrics_buckets buckets;
    struct family *next;
};

struct metrics {
    pthread_mutex_t lock;
    struct series *head, *tail;
    struct family *families;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_destroy(struct metrics *m)
{
    if (!m)
        return;
    for (struct series *s = m->head, *n; s; s = n) {
        n = s->next;
        free(s->name);
        free(s->labels);
        free(s);
    }
    for (struct family *f = m->families, *n; f; f = n) {
        n = f->next;
        free(f->name);
        free(f->type);
        free(f->help);
        free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Caller holds the lock. */
static struct family *family_find(struct metrics *m, const char *name)
{
    for (struct family *f = m->families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static void describe(struct metrics *m, const char *name, const char *type, const char *help,
                     enum metrics_buckets buckets)
{
    if (!m)
        return;
    struct family *f = calloc(1, sizeof *f);
    if (!f)
        return;
    f->name = strdup(name);
    f->type = strdup(type);
    f->help = strdup(help);
    f->buckets = buckets;
    if (!f->name || !f->type || !f->help) {
        free(f->name);
        free(f->type);
        free(f->help);
        free(f);
        return;
    }
    pthread_mutex_lock(&m->lock);
    if (family_find(m, name)) { /* described twice (two workers): keep the first */
        pthread_mutex_unlock(&m->lock);
        free(f->name);
        free(f->type);
        free(f->help);
        free(f);
        return;
    }
    f->next = m->families;
    m->families = f;
    pthread_mutex_unlock(&m->lock);
}

void metrics_describe(struct metrics *m, const char *name, const char *type, const char *help)
{
    describe(m, name, type, help, METRICS_BUCKETS_REQUEST);
}

void metrics_describe_histogram(struct metrics *m, const char *name, const char *help,
                                enum metrics_buckets buckets)
{
    describe(m, name, "histogram", help, buckets);
}

/* Caller holds the lock. Series keep creation order so related lines stay together. */
static struct series *find(struct metrics *m, const char *name, const char *labels,
                           enum series_kind kind)
{
    const char *l = labels ? labels : "";
    for (struct series *s = m->head; s; s = s->next)
        if (s->kind == kind && strcmp(s->name, name) == 0 && strcmp(s->labels, l) == 0)
            return s;
    struct series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->name = strdup(name);
    s->labels = strdup(l);
    s->kind = kind;
    struct family *f = kind == SERIES_HISTOGRAM ? family_find(m, name) : NULL;
    s->bounds = bucket_sets[f ? f->buckets : METRICS_BUCKETS_REQUEST];
    if (!s->name || !s->labels) {
        free(s->name);
        free(s->labels);
        free(s);
        return NULL;
    }
    if (m->tail)
        m->tail->next = s;
    else
        m->head = s;
    m->tail = s;
    return s;
}

void metrics_counter_add(struct metrics *m, const char *name, const char *labels, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    struct series *s = find(m, name, labels, SERIES_COUNTER);
    if (s)
        s->value += v;
    pthread_mutex_unlock(&m->lock);
}

void metrics_gauge_set(struct metrics *m, const char *name, const char *labels, double v)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    struct series *s = find(m, name, labels, SERIES_GAUGE);
    if (s)
        s->value = v;
    pthread_mutex_unlock(&m->lock);
}

void metrics_observe(struct metrics *m, const char *name, const char *labels, double seconds)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    struct series *s = find(m, name, labels, SERIES_HISTOGRAM);
    if (s) {
        s->value += seconds;
        s->count++;
        for (int i = 0; i < METRIC_BUCKETS; i++)
            if (seconds <= s->bounds[i])
                s->buckets[i]++;
    }
    pthread_mutex_unlock(&m->lock);
}

static const char *kind_type(enum series_kind kind)
{
    return kind == SERIES_COUNTER ? "counter" : kind == SERIES_GAUGE ? "gauge" : "histogram";
}

static int render_series(const struct series *s, struct buf *out)
{
    int rc = 0;
    const char *sep = *s->labels ? "," : "";
    if (s->kind != SERIES_HISTOGRAM) {
        if (*s->labels)
            return buf_appendf(out, "%s{%s} %.17g\n", s->name, s->labels, s->value);
        return buf_appendf(out, "%s %.17g\n", s->name, s->value);
    }
    for (int i = 0; i < METRIC_BUCKETS; i++)
        rc |= buf_appendf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, s->labels, sep,
                          s->bounds[i], s->buckets[i]);
    rc |= buf_appendf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep, s->count);
    if (*s->labels)
        rc |= buf_appendf(out, "%s_sum{%s} %.17g\n%s_count{%s} %llu\n", s->name, s->labels,
                          s->value, s->name, s->labels, s->count);
    else
        rc |=
            buf_appendf(out, "%s_sum %.17g\n%s_count %llu\n", s->name, s->value, s->name, s->count);
    return rc;
}

int metrics_render(struct metrics *m, struct buf *out)
{
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    for (struct series *s = m->head; s; s = s->next)
        s->rendered = false;
    /* Families in the order of their first series; each family's series together. */
    for (struct series *first = m->head; first; first = first->next) {
        if (first->rendered)
            continue;
        const struct family *f = family_find(m, first->name);
        rc |=
            buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", first->name, f ? f->help : first->name,
                        first->name, f ? f->type : kind_type(first->kind));
        for (struct series *s = first; s; s = s->next) {
            if (s->rendered || s->kind != first->kind || strcmp(s->name, first->name) != 0)
                continue;
            s->rendered = true;
            rc |= render_series(s, out);
        }
    }
    /* A described family with no series yet still shows its HELP and TYPE, so a scraper (and
     * whoever reads /metrics) sees what the service counts before the first event happens. */
    for (const struct family *f = m->families; f; f = f->next) {
        bool has_series = false;
        for (const struct series *s = m->head; s && !has_series; s = s->next)
            has_series = strcmp(s->name, f->name) == 0;
        if (!has_series)
            rc |= buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                              f->type);
    }
    pthread_mutex_unlock(&m->lock);
    return rc ? -1 : 0;
}
