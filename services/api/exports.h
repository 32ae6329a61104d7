/* exports: GET /v1/exports/{people,assets,checkouts,overdue}.csv — a whole list of the
 * caller's district as CSV, streamed: PostgreSQL's COPY ... TO STDOUT hands over one row at
 * a time and rows go out as HTTP chunks of at most EXPORTS_CHUNK bytes, so an export of any
 * size holds one chunk in memory, never the table. Dates are in the district's time zone;
 * text cells that a spreadsheet would run as a formula (=, +, -, @ first) are prefixed
 * with '. */
#ifndef API_EXPORTS_H
#define API_EXPORTS_H

#include "rest.h"

#define EXPORTS_CHUNK (64 * 1024)

/* The route (main.c's table): GET /v1/exports/{file}. */
int exports_get(struct router_req *q);

#endif
