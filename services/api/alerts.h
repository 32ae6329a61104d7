/* alerts: what a district's admins should act on — a held run, a failed run, a revoked
 * connection, overdue checkouts. GET /v1/alerts lists the current ones (the admin page's
 * banners); alerts_publish, run by the api's main loop, writes one SyncAlert event per new
 * happening to the outbox for panel.sync.events (the merger's relay publishes it), recorded
 * in sync_alerts so it is published once whatever the number of api replicas. */
#ifndef API_ALERTS_H
#define API_ALERTS_H

#include "db.h"
#include "rest.h"

/* The route (main.c's table): GET /v1/alerts. */
int alerts_list(struct router_req *q);
/* Publish the happenings not yet published, at most a batch; returns how many, or -1 on a
 * database error (logged; the next call retries). */
int alerts_publish(struct db_pool *pool);

#endif
