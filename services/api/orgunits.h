/* orgunits: GET /v1/org-units (flat with parent ids, or ?format=tree nested) and
 * GET /v1/org-units/{id} with counts of People and Assets. */
#ifndef API_ORGUNITS_H
#define API_ORGUNITS_H

#include "rest.h"

void orgunits_handle(struct api_req *r);

#endif
