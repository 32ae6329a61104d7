/* people: GET /v1/people (filters, keyset pages), /v1/people/{id} (with per-cloud source
 * records and field provenance), /v1/people/{id}/checkouts. Read-only: the merger owns
 * directory data. */
#ifndef API_PEOPLE_H
#define API_PEOPLE_H

#include "rest.h"

/* The routes (main.c's table): GET /v1/people, /v1/people/{id}, /v1/people/{id}/checkouts. */
int people_list(struct router_req *q);
int people_get(struct router_req *q);
int people_checkouts(struct router_req *q);
/* Escape s for LIKE (backslash before % _ \) and wrap it in %...%, lower-cased. 0 or -1. */
int people_like_pattern(const char *s, char *out, size_t outlen)
    __attribute__((warn_unused_result));

#endif
