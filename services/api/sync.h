/* sync: /v1/sync — request an immediate sync or a preview (through auth), runs with counts,
 * reports and per-object outcomes, approve/reject a held run and resolve match cases
 * (through the merger), pause windows, interval and deletion thresholds. */
#ifndef API_SYNC_H
#define API_SYNC_H

#include "rest.h"

/* The routes (main.c's table): POST /v1/sync; GET and PUT /v1/sync/settings; GET
 * /v1/sync/runs, /v1/sync/runs/{run}, /v1/sync/runs/{run}/outcomes; POST
 * /v1/sync/runs/{run}/approve and /reject; GET /v1/sync/match-cases,
 * /v1/sync/match-cases/{case}; POST /v1/sync/match-cases/{case}/resolve. */
int sync_request(struct router_req *q);
int sync_settings(struct router_req *q);
int sync_put_settings(struct router_req *q);
int sync_runs(struct router_req *q);
int sync_run(struct router_req *q);
int sync_run_outcomes(struct router_req *q);
int sync_run_approve(struct router_req *q);
int sync_run_reject(struct router_req *q);
int sync_cases(struct router_req *q);
int sync_case(struct router_req *q);
int sync_case_resolve(struct router_req *q);

#endif
