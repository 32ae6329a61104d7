/* apply_people: PersonObserved rows into person_sources and the merged People — compare with
 * the stored rows, link unlinked rows by e-mail (or open a match case), create the new People,
 * remerge the changed ones and queue their PersonChanged events. */
#ifndef MERGER_APPLY_PEOPLE_H
#define MERGER_APPLY_PEOPLE_H

#include "apply_ctx.h"

/* Apply the PersonObserved rows of a segment: an array of {"i","t","s","id","e","f","r",
 * "delta","cl","alt"}, one per source row. 0 or -1. */
int people_apply(struct actx *c, json_t *rows);

/* Take, before anything else of a batch, the address locks (see people_apply) of every
 * PersonObserved among envs[0..n) (NULL entries skipped), all in one increasing order: a
 * batch with several segments would otherwise take them in two rounds, and two workers could
 * each wait for the other's. people_apply takes the locks again (held already, no wait), plus
 * those only the stored rows knew. 0 or -1. */
int people_lock_batch(struct actx *c, const Envelope *const *envs, size_t n);

/* Add Person pid of tenant to persons, the People people_remerge recomputes (a row
 * {"tenant_id","person_id","run_id","unsuspended"}); run may be NULL;
 * unsuspended: one of its rows came back from an Azure soft delete. 0, or -1 when out of
 * memory. */
int people_queue_remerge(json_t *persons, const char *tenant, const char *pid, const char *run,
                         bool unsuspended);

/* Recompute the People in persons (people_queue_remerge) from their live source rows;
 * write the ones that changed and queue their events. 0 or -1. */
int people_remerge(struct actx *c, json_t *persons);

/* The fields a cloud provided for p as a JSON object (new reference; NULL when out of
 * memory), without source_id and cleared_fields; email_norm NULL drops the address (a delta
 * that did not carry it). */
json_t *people_fields(const Panel__V1__Person *p, const char *email_norm);

/* The other addresses of p that may link it (Azure's mail and SMTP proxy addresses),
 * normalised: a new JSON array. */
json_t *people_alt_emails(const Panel__V1__Person *p);

#endif
