/* apply_removals: remove source rows, devices and org units (or suspend Azure's soft-deleted
 * accounts), remerge the People concerned and queue the events. */
#ifndef MERGER_APPLY_REMOVALS_H
#define MERGER_APPLY_REMOVALS_H

#include "apply_ctx.h"

/* Remove the objects in list (array of {"t","k","s","id"}; k person|device|org_unit) for run;
 * suspend: Azure's soft delete (person rows only, nothing removed). *removed gets how many
 * objects changed. 0 or -1. */
int removals_apply(struct actx *c, json_t *list, const char *run, bool suspend, long *removed);

#endif
