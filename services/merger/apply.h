/* apply: one PostgreSQL transaction per batch of source events — source rows, the merged
 * People / OrgUnits / Assets, run bookkeeping, outbox rows and the consumed offsets — with
 * set-based SQL (a JSON array staged through jsonb_to_recordset, then INSERT ... ON CONFLICT
 * or UPDATE ... FROM), never one round trip per event. Also the admin's approve / reject of a
 * held run, which goes through the same removal code. */
#ifndef MERGER_APPLY_H
#define MERGER_APPLY_H

#include "events.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One consumed message. env is borrowed; NULL for a message that was dead-lettered (its
 * offset still advances). dead: the dead-lettered envelope when it could be decoded (its run
 * gets an 'invalid' outcome and counts as incomplete, so it removes nothing unapproved), with
 * dead_reason; both borrowed, may be NULL. */
struct apply_msg {
    int32_t partition;
    int64_t offset;
    const Envelope *env;
    const Envelope *dead;
    const char *dead_reason;
};

enum apply_result {
    APPLY_OK = 0,
    APPLY_ERROR = -1,    /* rolled back; retry the same messages later */
    APPLY_FENCED = -2,   /* another member already stored later offsets: drop the batch */
    APPLY_CONFLICT = -3, /* rolled back on a deadlock or serialization failure with another
                            member's transaction (members apply one district's partitions at
                            once): retry at once; it says nothing about the events */
};
const char *apply_result_str(enum apply_result r);

/* What a batch did, for metrics and logs. */
struct apply_stats {
    long events;
    long rows_changed;
};

/* Apply msgs (in partition order) in one transaction that also stores, for each partition,
 * the next offset for group/topic. Nothing is written unless everything is. */
enum apply_result apply_batch(PGconn *pg, const char *group, const char *topic,
                              const struct apply_msg *msgs, size_t n, struct apply_stats *stats,
                              char *err, size_t errlen) __attribute__((warn_unused_result));

enum apply_decision { APPLY_APPROVE, APPLY_REJECT };
enum apply_decide_result {
    DECIDE_OK = 0,
    DECIDE_NOT_FOUND = 1,
    DECIDE_NOT_HELD = 2,
    DECIDE_ERROR = -1,
};
/* Approve (apply the held removals, outbox rows included) or reject (discard them) a held
 * run, in one transaction. *removed gets the number of objects removed. */
enum apply_decide_result apply_decide(PGconn *pg, const char *tenant, const char *run_id,
                                      const char *admin, enum apply_decision d, long *removed,
                                      char *err, size_t errlen) __attribute__((warn_unused_result));

/* Resolve an open match case: link its source row to person_id (a live Person of the
 * tenant), or to a new Person when person_id is NULL; remerge and write the outbox rows.
 * DECIDE_NOT_HELD: the case is not open, or the new Person's e-mail belongs to another.
 * warning (caller's buffer): "" or, when the Person now has two live accounts of the case's
 * cloud, what that means for what it shows. */
enum apply_decide_result apply_resolve_case(PGconn *pg, const char *tenant, const char *case_id,
                                            const char *person_id, const char *admin,
                                            char *resolved_person, size_t rplen, char *warning,
                                            size_t wlen, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The most partitions a run's end may name (RunCompleted / RunFailed.partition_count). */
#define APPLY_PARTITION_COUNT_MAX 65535
/* The partition_count of env's RunCompleted / RunFailed (0: absent, one copy); 0 for any
 * other event. */
uint32_t apply_end_partition_count(const Envelope *env);

/* Validate the envelope of a panel.source.events message beyond events_decode: a source
 * event payload, a valid tenant id, run id, a cloud source, the object's key fields, and a
 * run's end naming at most APPLY_PARTITION_COUNT_MAX partitions and no more than the topic
 * has (topic_partitions; 0: not known, only the first bound): an end whose barrier could
 * never pass would leave its run running. 0, or -1 with the reason (fixed text) in err. */
int apply_validate(const Envelope *env, int32_t topic_partitions, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
