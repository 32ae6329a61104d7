/* checkouts: checking Assets out to People and back in (single and bulk, all-or-nothing),
 * with 409 when the Asset is already out, not out, retired, or the Person is removed;
 * history per Asset and per Person; GET /v1/checkouts (open, overdue). */
#ifndef API_CHECKOUTS_H
#define API_CHECKOUTS_H

#include "rest.h"

/* GET .../{id}/checkouts for kind "person" or "asset": 404 when id is not the tenant's. */
void checkouts_list_for(struct api_req *r, const char *kind, const char *id);
/* The routes (main.c's table): GET /v1/checkouts, POST /v1/checkouts/bulk and
 * /v1/checkins/bulk, POST /v1/assets/{id}/checkout and /v1/assets/{id}/checkin. */
int checkouts_list(struct router_req *q);
int checkouts_bulk(struct router_req *q);
int checkins_bulk(struct router_req *q);
int checkouts_checkout(struct router_req *q);
int checkouts_checkin(struct router_req *q);

#endif
