/* routes: the merger's internal HTTP routes (docs/contracts.md section 4), guarded by the
 * service secret: approve / reject a held run, resolve a match case. */
#ifndef MERGER_ROUTES_H
#define MERGER_ROUTES_H

#include "httpd.h"

struct routes_ctx {
    const char *pg_url;         /* borrowed */
    const char *service_secret; /* borrowed */
};

/* Register /internal/tenants/ on h. 0 or -1. */
int routes_register(struct httpd *h, struct routes_ctx *ctx) __attribute__((warn_unused_result));

#endif
