/* people: GET /v1/people (filters, keyset pages), /v1/people/{id} (with per-cloud source
 * records and field provenance), /v1/people/{id}/checkouts. Read-only: the merger owns
 * directory data. */
#ifndef API_PEOPLE_H
#define API_PEOPLE_H

#include "rest.h"

void people_handle(struct api_req *r);
/* Escape s for LIKE (backslash before % _ \) and wrap it in %...%, lower-cased. 0 or -1. */
int people_like_pattern(const char *s, char *out, size_t outlen)
    __attribute__((warn_unused_result));

#endif
