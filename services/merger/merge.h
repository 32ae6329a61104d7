/* merge: the pure parts of the merger — the Person shown from its source rows (Google's
 * row overlaid by every field Azure's row provides), what changed between two versions of an
 * entity, and the deletion-threshold decision. No I/O. */
#ifndef MERGER_MERGE_H
#define MERGER_MERGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The merged Person. Every member is a new reference owned by the struct. */
struct merge_person {
    json_t *fields;     /* object: the shown values */
    json_t *provenance; /* object: field -> "google" | "azure" */
    json_t *sources;    /* array of the clouds that have the Person, "google" before "azure" */
    bool removed;       /* no source row is left */
};

/* Compute the Person from Google's and Azure's source rows (each a JSON object of only the
 * fields that cloud provided, or NULL when that cloud has no live row). A field absent from
 * Azure's row keeps Google's value; a field Azure provides wins, whatever order the rows
 * arrived in. Fills out (release with merge_person_clear). 0, or -1 when out of memory. */
int merge_person_compute(const json_t *google, const json_t *azure, struct merge_person *out)
    __attribute__((warn_unused_result));
void merge_person_clear(struct merge_person *p);

/* A source row its cloud soft-deleted (Azure's "changed" removal, kept as
 * person_sources.suspended_in_source) shows its account suspended, whatever its fields say: sets
 * "suspended" true in that cloud's fields (updated in place) before merge_person_compute, so
 * that the other cloud's own value still follows the precedence above. NULL (no live row) is
 * left alone. 0, or -1 when out of memory. */
int merge_source_suspended(json_t *fields) __attribute__((warn_unused_result));

/* Leave out of a cloud's fields (object, updated in place) the values the product does not
 * accept, whoever published them: a graduation_year that is not an integer from FMAP_YEAR_MIN
 * to FMAP_YEAR_MAX (the fetchers already refuse those; a stray producer may not). Returns how
 * many were left out. */
int merge_person_drop_invalid(json_t *fields);

/* Names of the top-level fields whose values differ between old and new (either may be
 * NULL = empty), sorted. New reference (an array), or NULL when out of memory. */
json_t *merge_changed_fields(const json_t *old_fields, const json_t *new_fields);

/* The deletion threshold: true when removing `removals` of `total` objects of one kind is
 * more than max_count objects or more than max_percent percent of them. */
bool merge_threshold_exceeded(long removals, long total, long max_count, int max_percent);

/* Combine a later Azure delta observation of one object into an earlier one of the same
 * round (Graph may list an object twice): fields (object) and cleared (array of names) are
 * the earlier observation's and are updated in place; later_fields / later_cleared are
 * borrowed. A later value wins, a later clear removes the earlier value, and a field the later
 * observation sets again is no longer cleared. 0, or -1 when out of memory. */
int merge_delta_combine(json_t *fields, json_t *cleared, const json_t *later_fields,
                        const json_t *later_cleared) __attribute__((warn_unused_result));

/* The key of the advisory lock that orders the transactions linking `address` (normalised)
 * in `tenant`: a 64-bit FNV-1a of both. Members applying one district's partitions at once
 * take the locks of every address their changed People rows link by, in increasing key order,
 * before they look for candidates, so two rows of one Person (one per cloud, on two
 * partitions) never each create a Person. */
long long merge_address_lock_key(const char *tenant, const char *address);

/* The address of an Exchange proxy address ("SMTP:" or "smtp:", any case, then the address):
 * a pointer into proxy after the prefix, or NULL for another kind (X500:, SIP: ...). */
const char *merge_smtp_address(const char *proxy);

/* The addresses a source row is found by (person_sources.addresses, migration 0023): from a
 * cloud's fields (object; anything else has none) email_normalized, mail, aliases.values and
 * the SMTP proxy_addresses.values, never other_mails; each trimmed of spaces, tabs, CR and LF,
 * A-Z lower-cased (no other letter), kept when shaped like something@something (SQL's
 * LIKE '_%@_%'). The rules of PostgreSQL's person_source_addresses (migration 0007), which
 * stays as the oracle the e2e tests compare with; only string values count (a Person message
 * has no other type there). New reference: an array of strings without repeats, sorted
 * bytewise; NULL when out of memory. */
json_t *merge_person_addresses(const json_t *fields);

/* A full run's listing is incomplete, so its removals must wait for an admin: the fetcher
 * skipped objects, observations were dead-lettered (invalid), or the merger received fewer
 * observation events than RunCompleted says were published. */
bool merge_run_incomplete(long reported, long received, long skipped, long invalid);

#endif
