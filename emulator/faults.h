/* faults: injected failures per route, by rate or by count, set through the control API. */
#ifndef EMU_FAULTS_H
#define EMU_FAULTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fault_kind {
    FAULT_STATUS = 0,    /* the provider's error body with this status (+ Retry-After) */
    FAULT_SLOW,          /* wait delay_ms, then answer normally */
    FAULT_TRUNCATE,      /* send half the body, then close */
    FAULT_MALFORMED,     /* 200 with invalid JSON */
    FAULT_RESET,         /* close the connection without a reply */
    FAULT_INVALID_INPUT, /* Google 400 "Invalid Input: <token>" */
};

struct fault {
    enum fault_kind kind;
    int status;
    char retry_after[24]; /* "" = no Retry-After header */
    char reason[64];      /* "" = the provider's usual reason for status */
    long delay_ms;
};

struct faults;

struct faults *faults_new(void);
void faults_destroy(struct faults *f);
/* Add a rule from the control API's JSON; fills the new rule's id. 0, or -1 with err. */
int faults_add(struct faults *f, const json_t *rule, uint64_t *id, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void faults_clear(struct faults *f);
/* Whether a request on route fires a fault now; when true *out is filled. */
bool faults_pick(struct faults *f, const char *route, struct fault *out);
uint64_t faults_injected(struct faults *f);
void faults_reset_stats(struct faults *f);
/* Whether route is a name rules may use. */
bool faults_route_known(const char *route);

#endif
