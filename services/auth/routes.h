/* routes: auth's HTTP routes (docs/contracts.md section 2), two lib/router.h tables. The
 * browser callbacks finish an OAuth flow and redirect to the admin page; the /internal routes
 * need a calling service's secret, and each route accepts only the callers that need it
 * (internal_routes in routes.c). Errors are JSON {"error":{"code","message","request_id"}};
 * every tenant-scoped statement filters by the tenant in the path. */
#ifndef AUTH_ROUTES_H
#define AUTH_ROUTES_H

#include "ctx.h"
#include "httpd.h"
#include "router.h"

#include <stdbool.h>

/* Register the routes on h; c is borrowed and must outlive the server. *internal and
 * *callbacks get the two routers (caller frees both with router_destroy after the server
 * stopped, also on failure). 0 or -1. */
int routes_register(struct httpd *h, struct auth_ctx *c, struct router **internal,
                    struct router **callbacks) __attribute__((warn_unused_result));

/* Input checks, exposed for the unit tests (tenant ids and addresses: lib/ids.h). */
/* An actor for audit fields, as the api authenticated it: "person:<email>" (a valid admin
 * email) or "apikey:<key_id>" (1..40 base64url characters). */
bool routes_valid_actor(const char *s);

#endif
