/* checkouts: checking Assets out to People and back in (single and bulk, all-or-nothing),
 * with 409 when the Asset is already out, not out, retired, or the Person is removed;
 * history per Asset and per Person; GET /v1/checkouts (open, overdue). */
#ifndef API_CHECKOUTS_H
#define API_CHECKOUTS_H

#include "rest.h"

/* POST /v1/assets/{id}/checkout and /checkin (segs[1] is the asset id). */
void checkouts_asset_action(struct api_req *r);
/* GET .../{id}/checkouts for kind "person" or "asset": 404 when id is not the tenant's. */
void checkouts_list_for(struct api_req *r, const char *kind, const char *id);
/* /v1/checkouts, /v1/checkouts/bulk, /v1/checkins/bulk. */
void checkouts_handle(struct api_req *r);

#endif
