/* assets: GET/POST /v1/assets, GET/PATCH /v1/assets/{id}, lookup by serial and by tag,
 * lifecycle (retire), physical audits and their history (GET /v1/assets/{id}/audits); and the
 * AssetChanged outbox row every change of an Asset writes in its own transaction. Checkout routes
 * under /v1/assets/{id}/ are passed to checkouts.c. */
#ifndef API_ASSETS_H
#define API_ASSETS_H

#include "rest.h"

#include "panel/v1/pb_short_names.h"

/* The routes (main.c's table): GET and POST /v1/assets; GET /v1/assets/by-serial/{serial},
 * /v1/assets/by-tag/{tag}; GET and PATCH /v1/assets/{id}; POST /v1/assets/{id}/retire,
 * /v1/assets/{id}/audit; GET /v1/assets/{id}/audits, /v1/assets/{id}/checkouts. */
int assets_list(struct router_req *q);
int assets_create(struct router_req *q);
int assets_by_serial(struct router_req *q);
int assets_by_tag(struct router_req *q);
int assets_get(struct router_req *q);
int assets_update(struct router_req *q);
int assets_retire(struct router_req *q);
int assets_audit(struct router_req *q);
int assets_audits(struct router_req *q);
int assets_checkouts(struct router_req *q);
/* Inside the caller's transaction: queue an AssetChanged (full asset after the change) on
 * panel.assets.events with key "<tenant>/<asset id>". changed: NULL-terminated field
 * names. 0, or -1 with the reply filled. */
int assets_emit(struct api_req *r, const char *asset_id, Panel__V1__AssetChangeKind kind,
                const char *const *changed) __attribute__((warn_unused_result));

#endif
