/* buf: a growable byte buffer with a hard cap, for anything filled from outside. */
#ifndef PANEL_BUF_H
#define PANEL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* always NUL-terminated when non-NULL; owned by the buf */
    size_t len;
    size_t cap;
    size_t max; /* appends that would grow len past max fail */
};

/* Start empty with a cap of max bytes (0 = 64 MiB). Allocates nothing yet. */
void buf_init(struct buf *b, size_t max);
/* Append n bytes; returns 0, or -1 when the cap would be exceeded or memory ran out
 * (the buffer is left unchanged). */
int buf_append(struct buf *b, const void *data, size_t n) __attribute__((warn_unused_result));
int buf_appends(struct buf *b, const char *s) __attribute__((warn_unused_result));
int buf_appendf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), warn_unused_result));
int buf_vappendf(struct buf *b, const char *fmt, va_list ap) __attribute__((warn_unused_result));
/* Append s as a JSON string literal (quotes included), escaping as RFC 8259 requires. */
int buf_append_json_string(struct buf *b, const char *s) __attribute__((warn_unused_result));
/* The same for n bytes that may hold NUL (written as \u0000). */
int buf_append_json_stringn(struct buf *b, const char *s, size_t n)
    __attribute__((warn_unused_result));
/* Append s percent-encoded for a URL query or form body (RFC 3986 unreserved kept). */
int buf_append_urlencoded(struct buf *b, const char *s) __attribute__((warn_unused_result));
/* Forget the contents, keep the memory. */
void buf_reset(struct buf *b);
/* Hand the contents to the caller (who frees them); the buf becomes empty. Never NULL
 * unless memory ran out. */
char *buf_take(struct buf *b);
void buf_free(struct buf *b);

#endif
