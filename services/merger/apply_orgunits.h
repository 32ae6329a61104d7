/* apply_orgunits: OrgUnitObserved rows into org_units and their OrgUnitChanged events. */
#ifndef MERGER_APPLY_ORGUNITS_H
#define MERGER_APPLY_ORGUNITS_H

#include "apply_ctx.h"

/* The fields of the org unit o (an org_units row alias) as its event carries them. */
#define ORGUNITS_JSON_SQL                                                                          \
    "jsonb_strip_nulls(jsonb_build_object('org_unit_id', o.org_unit_id, 'path', o.path,"           \
    " 'name', nullif(o.name, ''), 'description', o.description, 'parent_id', o.parent_id,"         \
    " 'parent_path', o.parent_path))"

/* Apply the OrgUnitObserved rows of a segment: an array of {"i","t","id","f","r"}. 0 or -1. */
int orgunits_apply(struct actx *c, json_t *rows);

/* Queue the OrgUnitChanged of org unit ou_id: its fields (object) and the names of the
 * changed ones (array), both borrowed. 0 or -1. */
int orgunits_event(struct actx *c, const char *tenant, const char *run, const char *ou_id,
                   Panel__V1__ChangeKind kind, const json_t *fields, const json_t *changed);

#endif
