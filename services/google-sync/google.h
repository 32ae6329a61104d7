/* google: what is specific to Google Workspace's Admin SDK Directory API — URLs, paging with
 * pageToken/maxResults, the three listings (org units, users, ChromeOS devices), error
 * classification and the field-mapping tables. The run machinery is lib/fetch_run.h. */
#ifndef GOOGLE_SYNC_GOOGLE_H
#define GOOGLE_SYNC_GOOGLE_H

#include "fetch_map.h"
#include "fetch_run.h"

struct google_opts {
    const char *api_url;   /* e.g. https://admin.googleapis.com (no trailing slash) */
    long users_page;       /* maxResults of users.list (<= 500) */
    long devices_page;     /* maxResults of chromeosdevices.list */
    int same_page_retries; /* devices' transient 400 "Invalid Input" retried this often */
    int listing_restarts;  /* an expired page token restarts a listing at most this often */
    /* "Schema.Field" of the custom schema field holding a student's graduation year, or
     * NULL / "" (not read, not requested). Borrowed. */
    const char *graduation_year_field;
    /* Filled by google_opts_prepare(): the users listing as configured. */
    struct fmap_field user_configured[1];
    struct fmap_spec user_spec;
    char graduation_year_json[160];
    char users_query[1024];
};

/* Check the configured custom schema field and build the users listing from it (the
 * mapping table plus the configured field; projection=custom&customFieldMask=<Schema> and
 * customSchemas in fields= only when a field is configured). 0, or -1 with err filled. */
int google_opts_prepare(struct google_opts *g, char *err, size_t errlen)
    __attribute__((warn_unused_result));

extern const struct fmap_spec google_user_spec;
extern const struct fmap_spec google_orgunit_spec;
extern const struct fmap_spec google_device_spec;

/* errors[0].reason and error.message of a Google error body (borrowed from the parsed
 * body; "" when absent). Returns the parsed body to json_decref(), or NULL. */
json_t *google_error(const struct buf *body, const char **reason, const char **message);
/* Retry decision: 429, 403 rateLimitExceeded/userRateLimitExceeded/quotaExceeded throttle;
 * 500/502/503/504 retry; everything else is final. */
enum http_retry google_classify(long status, const struct buf *body, void *ctx);
/* Why a final error ends the run. */
fetch_reason google_failure(long status, const struct buf *body, char *msg, size_t msglen);
/* True for the transient 400 "Invalid Input: <token>" of a devices page. */
bool google_invalid_input(long status, const struct buf *body);
/* One run: org units, then users, then devices. ctx is a struct google_opts. */
int google_run(struct fetch_run *run, void *ctx);

#endif
