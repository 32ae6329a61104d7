/* http_client: one keep-alive HTTP connection cache (libcurl easy handle) with gzip, timeouts,
 * a cap on response size, and retries with exponential backoff and jitter that honour
 * Retry-After. Not thread-safe: one client per thread. */
#ifndef PANEL_HTTP_CLIENT_H
#define PANEL_HTTP_CLIENT_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

struct http_client;

struct http_client_opts {
    long connect_timeout_ms; /* 0 = 5000 */
    long timeout_ms;         /* per attempt; 0 = 60000 */
    size_t max_body;         /* 0 = 32 MiB; larger responses fail with HTTP_RESULT_TOO_LARGE */
    int max_attempts;        /* 0 = 6 (1 try + 5 retries) */
    long backoff_base_ms;    /* 0 = 500; doubles per retry, with jitter */
    long backoff_max_ms;     /* 0 = 30000: the longest wait of our own backoff */
    /* 0 = 600000: the longest Retry-After honoured (providers ask for seconds to minutes);
     * a longer one fails the attempt with HTTP_RESULT_RETRY_AFTER_TOO_LONG */
    long retry_after_max_ms;
    const char *user_agent; /* NULL = "k12-panel" */
    /* Polled while waiting between attempts; non-zero aborts with HTTP_RESULT_STOPPED. */
    int (*cancelled)(void *ctx);
    void *cancelled_ctx;
};

enum http_retry { HTTP_RETRY_NO = 0, HTTP_RETRY_YES = 1, HTTP_RETRY_THROTTLED = 2 };
/* The classification of a request without its own: 429 is throttled, 500/502/503/504 are
 * retried, everything else is final. Microsoft Graph follows exactly this rule. */
enum http_retry http_classify_default(long status, const struct buf *body, void *ctx);

struct http_request {
    const char *method; /* NULL = GET */
    const char *url;
    const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
    const char *body;           /* request body or NULL */
    size_t body_len;
    int64_t deadline_ms; /* http_now_ms() value after which no retry starts; 0 = none */
    /* Classify a complete response. NULL = retry 429 (throttled) and 500/502/503/504. */
    enum http_retry (*classify)(long status, const struct buf *body, void *ctx);
    void *classify_ctx;
};

struct http_response {
    long status;          /* of the last attempt; 0 when no response was received */
    struct buf body;      /* of the last attempt; owned, see http_response_free */
    double retry_after_s; /* Retry-After of the last response in seconds; -1 if none */
    char location[2048];  /* Location header of the last response, or "" */
    char content_type[128];
    int attempts;       /* requests sent */
    int throttled;      /* responses classified as throttling */
    int retried_errors; /* transport errors and 5xx that were retried */
};

enum http_result {
    HTTP_RESULT_OK = 0,        /* a response arrived: look at status (may be a final 4xx/5xx) */
    HTTP_RESULT_TRANSPORT = 1, /* no usable response after every attempt */
    HTTP_RESULT_TOO_LARGE = 2, /* the body exceeded max_body */
    HTTP_RESULT_DEADLINE = 3,  /* the next retry would start after the deadline */
    HTTP_RESULT_STOPPED = 4,   /* cancelled() said stop */
    /* The server asked (Retry-After) for a longer wait than retry_after_max_ms: the attempt
     * fails now rather than park the thread (a day-long Retry-After would park it a day). */
    HTTP_RESULT_RETRY_AFTER_TOO_LONG = 5,
};
const char *http_result_str(enum http_result r);

struct http_client *http_client_new(const struct http_client_opts *opts, char *err, size_t errlen);
void http_client_destroy(struct http_client *c);
void http_response_init(struct http_response *r);
void http_response_free(struct http_response *r);
/* Send the request, retrying as configured. resp must be initialised; it is reset first.
 * err describes the last failure for non-OK results. */
enum http_result http_client_do(struct http_client *c, const struct http_request *req,
                                struct http_response *resp, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Monotonic clock in milliseconds, for deadlines. */
int64_t http_now_ms(void);
/* Parse a Retry-After value (delta seconds, possibly fractional, or an HTTP date) into
 * seconds from now; -1 when it cannot be parsed. */
double http_parse_retry_after(const char *value);
/* The wait before retry number `retry` (1-based): exponential with jitter, at least
 * retry_after_s when that is >= 0. */
long http_backoff_ms(const struct http_client_opts *opts, int retry, double retry_after_s);

#endif
