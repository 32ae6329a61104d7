/* params: strict validation of what clients send — query parameters, path ids, dates,
 * limits, UTF-8, and opaque keyset cursors (base64url of the keyset values, signed with
 * HMAC-SHA256 so a client cannot forge or edit one). Every function returns 0 on success or
 * -1 with a client-facing message in msg. */
#ifndef API_PARAMS_H
#define API_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#define PARAMS_MAX_VALUE   512
#define PARAMS_CURSOR_MAX  1024
#define PARAMS_CURSOR_KEYS 3

/* Every parameter name in query must be in allowed (NULL-terminated); each name at most
 * once; each value valid UTF-8 after decoding. */
int params_check(const char *query, const char *const *allowed, char *msg, size_t msglen)
    __attribute__((warn_unused_result));
/* 0 found (out filled), 1 absent, -1 invalid (msg). Empty values count as absent. */
int params_str(const char *query, const char *name, char *out, size_t outlen, char *msg,
               size_t msglen) __attribute__((warn_unused_result));
/* limit: absent -> def; otherwise an integer in [1, max]. */
int params_limit(const char *query, long def, long max, long *out, char *msg, size_t msglen)
    __attribute__((warn_unused_result));
/* 0 found, 1 absent, -1 invalid: "true"/"false". */
int params_bool(const char *query, const char *name, bool *out, char *msg, size_t msglen)
    __attribute__((warn_unused_result));
/* 0 found, 1 absent, -1 invalid: a calendar date YYYY-MM-DD (copied to out[11]). */
int params_date(const char *query, const char *name, char out[11], char *msg, size_t msglen)
    __attribute__((warn_unused_result));
/* One of the NULL-terminated choices. 0 found, 1 absent, -1 invalid. */
int params_enum(const char *query, const char *name, const char *const *choices, char *out,
                size_t outlen, char *msg, size_t msglen) __attribute__((warn_unused_result));

/* A real calendar date in the strict form YYYY-MM-DD. */
bool params_is_date(const char *s);
/* An RFC 3339 timestamp: YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm). */
bool params_is_timestamp(const char *s);

/* The process's cursor signing key (32 bytes, copied). Call once before serving. */
void params_cursor_key(const unsigned char key[32]);
/* Encode nkeys values (no 0x1f bytes) for route scope into out. 0 or -1. */
int params_cursor_encode(const char *scope, const char *const *keys, int nkeys, char *out,
                         size_t outlen) __attribute__((warn_unused_result));
/* Decode a cursor issued for scope with exactly nkeys values into vals[i] (each
 * PARAMS_CURSOR_MAX bytes). -1 + msg for anything forged, truncated or for another scope. */
int params_cursor_decode(const char *scope, const char *cursor, int nkeys,
                         char vals[][PARAMS_CURSOR_MAX], char *msg, size_t msglen)
    __attribute__((warn_unused_result));

#endif
