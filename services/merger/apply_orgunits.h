/* apply_orgunits: OrgUnitObserved rows into org_units and their OrgUnitChanged events. */
#ifndef MERGER_APPLY_ORGUNITS_H
#define MERGER_APPLY_ORGUNITS_H

#include "apply_ctx.h"

/* Apply the OrgUnitObserved rows of a segment: an array of {"i","t","id","f","r"}. 0 or -1. */
int orgunits_apply(struct actx *c, json_t *rows);

/* Queue the OrgUnitChanged of org unit ou_id: its fields (object) and the names of the
 * changed ones (array), both borrowed. 0 or -1. */
int orgunits_event(struct actx *c, const char *tenant, const char *run, const char *ou_id,
                   Panel__V1__ChangeKind kind, const json_t *fields, const json_t *changed);

#endif
