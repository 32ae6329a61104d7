/* connections: /v1/connections — status per cloud (from PostgreSQL), start Google
 * authorization or Microsoft admin consent (auth returns the consent URL), de-authorize. */
#ifndef API_CONNECTIONS_H
#define API_CONNECTIONS_H

#include "rest.h"

/* The routes (main.c's table): GET /v1/connections, POST
 * /v1/connections/{provider}/authorize and /deauthorize. */
int connections_status(struct router_req *q);
int connections_authorize(struct router_req *q);
int connections_deauthorize(struct router_req *q);

#endif
