/* connections: /v1/connections — status per cloud (from PostgreSQL), start Google
 * authorization or Microsoft admin consent (auth returns the consent URL), de-authorize. */
#ifndef API_CONNECTIONS_H
#define API_CONNECTIONS_H

#include "rest.h"

void connections_handle(struct api_req *r);

#endif
