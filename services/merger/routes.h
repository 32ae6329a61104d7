/* routes: the merger's internal HTTP routes (docs/contracts.md section 4), guarded by the
 * callers' secrets (lib/callers.h; only the api may call them): approve / reject a held run,
 * resolve a match case. */
#ifndef MERGER_ROUTES_H
#define MERGER_ROUTES_H

#include "callers.h"
#include "db.h"
#include "httpd.h"
#include "router.h"

struct routes_ctx {
    struct db_pool *db;            /* borrowed; a request holds one connection */
    const struct callers *callers; /* borrowed; who may call the internal routes */
    struct router *router;         /* owned, set by routes_register; routes_free frees it */
};

/* How long a request waits for a pooled connection before it is answered 503. */
#define ROUTES_DB_WAIT_MS 5000

/* Register /internal/tenants/ on h (lib/router.h: the caller check, 404/405, the body limit).
 * 0 or -1. */
int routes_register(struct httpd *h, struct routes_ctx *ctx) __attribute__((warn_unused_result));
/* Free the router once the server has stopped. */
void routes_free(struct routes_ctx *ctx);

#endif
