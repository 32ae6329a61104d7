/* fuzz_common: small helpers shared by the fuzz targets (header-only; each target is one
 * translation unit). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include "buf.h"
#include "events.h"
#include "log.h"

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* True on a target's first call only, when the logs are also quieted (the fuzzer judges by
 * crashes, not messages): the place for a target's one-time setup. */
static inline int fuzz_first_call(void)
{
    static int inited;
    if (inited)
        return 0;
    log_init("fuzz", LOG_ERROR + 1);
    inited = 1;
    return 1;
}

/* The input as a NUL-terminated string for the caller to free; NULL when out of memory. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

/* One of the statuses a provider's list answers with, picked by an input byte. */
static inline long fuzz_status(unsigned pick)
{
    static const long statuses[] = {200, 400, 401, 403, 404, 410, 429, 500, 503};
    return statuses[pick % (sizeof statuses / sizeof statuses[0])];
}

/* A buf holding a copy of data (NUL-terminated, as the HTTP client leaves a body). */
static inline int fuzz_buf(struct buf *b, const uint8_t *data, size_t size)
{
    buf_init(b, 0);
    if (buf_append(b, data, size))
        return -1;
    if (!b->data) /* empty input: the client leaves data NULL */
        return 0;
    return 0;
}

/* Pack and re-encode a mapped message as the publisher would, then free it. */
static inline void fuzz_consume_message(ProtobufCMessage *m)
{
    if (!m)
        return;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *out = malloc(n ? n : 1);
    if (out) {
        protobuf_c_message_pack(m, out);
        ProtobufCMessage *back = protobuf_c_message_unpack(m->descriptor, NULL, n, out);
        if (!back)
            abort(); /* what we packed must unpack */
        protobuf_c_message_free_unpacked(back, NULL);
        free(out);
    }
    struct buf js;
    buf_init(&js, 0);
    if (events_to_json(m, &js) == 0 && js.data)
        (void)strlen(js.data);
    buf_free(&js);
    protobuf_c_message_free_unpacked(m, NULL);
}

#endif
