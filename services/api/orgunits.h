/* orgunits: GET /v1/org-units (flat with parent ids, or ?format=tree nested) and
 * GET /v1/org-units/{id} with counts of People and Assets; and the org-unit subtree filter
 * the People and Assets lists share. */
#ifndef API_ORGUNITS_H
#define API_ORGUNITS_H

#include "rest.h"

/* The routes (main.c's table): GET /v1/org-units, /v1/org-units/{id}. */
int orgunits_list(struct router_req *q);
int orgunits_get(struct router_req *q);

/* SQL condition "column is in the subtree of text parameter $n" (n a string literal): the
 * path itself or anything under path + '/'. Served by the "C"-collation indexes of
 * migration 0014 as one index range. The parameter is NULL for no filter. */
#define ORGUNITS_SUBTREE_SQL(column, n)                                                            \
    "($" n "::text IS NULL OR (" column " COLLATE \"C\" >= $" n " AND " column                     \
    " COLLATE \"C\" < $" n " || '0' AND (length(" column ") = length($" n ") OR substr(" column    \
    ", length($" n ") + 1, 1) = '/')))"

/* Read query parameter name as a subtree root: 0 with the path (a trailing '/' dropped) in
 * out, 1 absent or "/" (every org unit: no filter), -1 invalid with msg (not starting
 * with '/'). */
int orgunits_subtree_param(const char *query, const char *name, char *out, size_t outlen, char *msg,
                           size_t msglen) __attribute__((warn_unused_result));

#endif
