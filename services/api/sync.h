/* sync: /v1/sync — request an immediate sync or a preview (through auth), runs with counts,
 * reports and per-object outcomes, approve/reject a held run and resolve match cases
 * (through the merger), pause windows, interval and deletion thresholds. */
#ifndef API_SYNC_H
#define API_SYNC_H

#include "rest.h"

void sync_handle(struct api_req *r);

#endif
