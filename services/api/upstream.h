/* upstream: calls to auth's and merger's internal routes with the service secret. */
#ifndef API_UPSTREAM_H
#define API_UPSTREAM_H

#include "rest.h"

/* method base path body -> the upstream's status and JSON body (new reference; NULL when
 * not JSON). Returns 0 when a response arrived; -1 with a 502/503 reply filled when the
 * service could not be reached. body may be NULL. */
int upstream_call(struct api_req *r, const char *base, const char *method, const char *path,
                  json_t *body, long *status, json_t **out) __attribute__((warn_unused_result));
/* Pass an upstream reply through: 2xx as is (with status), an error body in our shape as is,
 * anything else as 502 upstream_error. */
void upstream_reply(struct api_req *r, long status, json_t *out);
/* POST body (borrowed; NULL, a failed json_pack, is answered 500) to base path and pass the
 * answer through as upstream_reply does: an admin action that auth or the merger performs. */
void upstream_post(struct api_req *r, const char *base, const char *path, json_t *body);

#endif
