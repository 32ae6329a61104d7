/* oauth_http: one form-encoded POST to a provider's OAuth endpoint and its JSON reply. The
 * form carries secrets, so neither it nor the reply is ever logged. */
#ifndef AUTH_OAUTH_HTTP_H
#define AUTH_OAUTH_HTTP_H

#include "buf.h"
#include "http_client.h"

#include <jansson.h>
#include <stddef.h>

/* The largest token-endpoint reply we read. */
#define OAUTH_MAX_REPLY (64 * 1024)

enum oauth_http_result {
    OAUTH_HTTP_OK = 0,          /* a reply arrived: *status and *reply (JSON object or NULL) */
    OAUTH_HTTP_UNAVAILABLE = 1, /* no reply (unreachable, timeouts, 5xx after retries) */
};

/* A client tuned for OAuth calls: short timeouts and few retries, so that an unreachable
 * provider is reported within seconds. NULL with a message on failure. */
struct http_client *oauth_http_client_new(char *err, size_t errlen);
/* POST form (application/x-www-form-urlencoded) to url. *reply: new reference to the parsed
 * JSON object, or NULL when the body was empty or not JSON. A 5xx after the retries counts
 * as UNAVAILABLE. err gets a description without secrets. */
/* Append "name=value" (value URL-encoded) to a form or a query, after '&' unless first. 0 or
 * -1 (out of memory). */
int oauth_param(struct buf *b, int first, const char *name, const char *value)
    __attribute__((warn_unused_result));
/* Wipe and free what may hold secrets: a form (client secret, codes, refresh tokens) and a
 * reply (tokens: every string member is overwritten before the object is released). */
void oauth_form_free(struct buf *form);
void oauth_reply_free(json_t *reply);

enum oauth_http_result oauth_http_post_form(struct http_client *c, const char *url,
                                            const struct buf *form, long *status, json_t **reply,
                                            char *err, size_t errlen);

#endif
