#include "faults.h"
#include "json.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAULTS_MAX 64

struct rule {
    uint64_t id;
    char route[32];
    struct fault f;
    double rate;    /* 0..1 when by rate */
    long remaining; /* > 0 when by count; -1 = by rate */
    long after;     /* requests of the route let through before the rule applies */
};

struct faults {
    pthread_mutex_t mu;
    struct rule rules[FAULTS_MAX];
    size_t n;
    uint64_t next_id;
    uint64_t injected;
    uint64_t rng;
};

static const char *routes[] = {"google.token", "google.users", "google.orgunits", "google.devices",
                               "ms.token",     "graph.users",  "graph.delta",     "*"};

bool faults_route_known(const char *route)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(route, routes[i]))
            return true;
    return false;
}

struct faults *faults_new(void)
{
    struct faults *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->mu, NULL);
    f->next_id = 1;
    f->rng = 0x2545F4914F6CDD1DULL;
    return f;
}

void faults_destroy(struct faults *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static int parse_kind(const char *s, enum fault_kind *out)
{
    static const struct {
        const char *name;
        enum fault_kind kind;
    } kinds[] = {{"status", FAULT_STATUS},     {"slow", FAULT_SLOW},
                 {"truncate", FAULT_TRUNCATE}, {"malformed", FAULT_MALFORMED},
                 {"reset", FAULT_RESET},       {"invalid_input", FAULT_INVALID_INPUT}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(s, kinds[i].name)) {
            *out = kinds[i].kind;
            return 0;
        }
    return -1;
}

int faults_add(struct faults *f, const json_t *rule, uint64_t *id, char *err, size_t errlen)
{
    struct rule r;
    const char *route = NULL, *kind = NULL, *reason = NULL;
    int64_t count = 0, status = 0, delay = 0, after = 0;
    memset(&r, 0, sizeof r);
    if (!json_is_object(rule) || pjson_get_str(rule, "route", &route) != PJSON_OK ||
        !faults_route_known(route)) {
        snprintf(err, errlen,
                 "\"route\" must be one of google.token, google.users, "
                 "google.orgunits, google.devices, ms.token, graph.users, "
                 "graph.delta or \"*\"");
        return -1;
    }
    if (pjson_get_str(rule, "kind", &kind) != PJSON_OK || parse_kind(kind, &r.f.kind)) {
        snprintf(err, errlen,
                 "\"kind\" must be status, slow, truncate, malformed, reset or "
                 "invalid_input");
        return -1;
    }
    snprintf(r.route, sizeof r.route, "%s", route);
    json_t *rate = json_object_get(rule, "rate");
    enum pjson_get cg = pjson_get_int(rule, "count", &count);
    if (rate && json_is_number(rate)) {
        r.rate = json_number_value(rate);
        r.remaining = -1;
        if (r.rate < 0 || r.rate > 1) {
            snprintf(err, errlen, "\"rate\" must be between 0 and 1");
            return -1;
        }
    } else if (cg == PJSON_OK && count > 0 && count < 1000000000) {
        r.remaining = (long)count;
    } else {
        snprintf(err, errlen, "give \"rate\" (0..1) or \"count\" (a positive integer)");
        return -1;
    }
    enum pjson_get sg = pjson_get_int(rule, "status", &status);
    if (sg == PJSON_OK && (status < 100 || status > 599)) {
        snprintf(err, errlen, "\"status\" must be an HTTP status");
        return -1;
    }
    r.f.status = sg == PJSON_OK ? (int)status : (r.f.kind == FAULT_INVALID_INPUT ? 400 : 503);
    if (r.f.kind == FAULT_STATUS && sg != PJSON_OK) {
        snprintf(err, errlen, "kind \"status\" needs \"status\"");
        return -1;
    }
    json_t *ra = json_object_get(rule, "retry_after");
    if (json_is_string(ra))
        snprintf(r.f.retry_after, sizeof r.f.retry_after, "%s", json_string_value(ra));
    else if (json_is_number(ra))
        snprintf(r.f.retry_after, sizeof r.f.retry_after, "%g", json_number_value(ra));
    for (char *p = r.f.retry_after; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.')) {
            snprintf(err, errlen, "\"retry_after\" must be a number of seconds");
            return -1;
        }
    enum pjson_get ag = pjson_get_int(rule, "after", &after);
    if (ag != PJSON_OK && ag != PJSON_ABSENT) {
        snprintf(err, errlen, "\"after\" must be an integer");
        return -1;
    }
    if (after < 0 || after > 1000000000) {
        snprintf(err, errlen, "\"after\" must be 0..1000000000");
        return -1;
    }
    r.after = (long)after;
    if (pjson_get_str(rule, "reason", &reason) == PJSON_OK)
        snprintf(r.f.reason, sizeof r.f.reason, "%s", reason);
    if (pjson_get_int(rule, "delay_ms", &delay) == PJSON_OK) {
        if (delay < 0 || delay > 600000) {
            snprintf(err, errlen, "\"delay_ms\" must be 0..600000");
            return -1;
        }
        r.f.delay_ms = (long)delay;
    } else if (r.f.kind == FAULT_SLOW) {
        r.f.delay_ms = 2000;
    }
    pthread_mutex_lock(&f->mu);
    if (f->n == FAULTS_MAX) {
        pthread_mutex_unlock(&f->mu);
        snprintf(err, errlen, "too many fault rules (max %d)", FAULTS_MAX);
        return -1;
    }
    r.id = f->next_id++;
    f->rules[f->n++] = r;
    *id = r.id;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

void faults_clear(struct faults *f)
{
    pthread_mutex_lock(&f->mu);
    f->n = 0;
    pthread_mutex_unlock(&f->mu);
}

static double next_unit(struct faults *f)
{
    uint64_t x = f->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    f->rng = x;
    return (double)(x >> 11) / 9007199254740992.0;
}

bool faults_pick(struct faults *f, const char *route, struct fault *out)
{
    bool fired = false;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n && !fired; i++) {
        struct rule *r = &f->rules[i];
        if (strcmp(r->route, "*") && strcmp(r->route, route))
            continue;
        if (r->after > 0) {
            r->after--; /* e.g. a fault on a listing's third page: after = 2 */
            continue;
        }
        if (r->remaining > 0) {
            r->remaining--;
            fired = true;
        } else if (r->remaining < 0 && next_unit(f) < r->rate) {
            fired = true;
        }
        if (fired) {
            *out = r->f;
            f->injected++;
        }
    }
    /* rules by count that are used up are dropped */
    size_t k = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->rules[i].remaining != 0)
            f->rules[k++] = f->rules[i];
    f->n = k;
    pthread_mutex_unlock(&f->mu);
    return fired;
}

uint64_t faults_injected(struct faults *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->injected;
    pthread_mutex_unlock(&f->mu);
    return n;
}

void faults_reset_stats(struct faults *f)
{
    pthread_mutex_lock(&f->mu);
    f->injected = 0;
    pthread_mutex_unlock(&f->mu);
}
