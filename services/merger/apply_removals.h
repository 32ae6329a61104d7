/* apply_removals: remove source rows, devices and org units (or suspend Azure's soft-deleted
 * accounts), remerge the People concerned and queue the events. */
#ifndef MERGER_APPLY_REMOVALS_H
#define MERGER_APPLY_REMOVALS_H

#include "apply_ctx.h"

/* One object to remove; members borrowed. */
struct removal {
    const char *tenant_id;
    const char *object_kind; /* person | device | org_unit */
    const char *source;      /* google | azure (NULL: only a person's removal reads it) */
    const char *source_id;
    const char *run_id; /* the run that reported it; may be NULL */
};
/* The row of o in the list removals_apply takes, its columns by name: new reference, NULL when
 * out of memory or when a member that may not be NULL is. */
json_t *removals_row(const struct removal *o);

/* Remove the objects in list (an array of removals_row rows) for run;
 * suspend: Azure's soft delete (person rows only, nothing removed). *removed gets how many
 * objects changed. 0 or -1. */
int removals_apply(struct actx *c, json_t *list, const char *run, bool suspend, long *removed);

#endif
