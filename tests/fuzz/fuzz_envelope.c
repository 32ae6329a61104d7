/* Fuzz target: bytes from panel.source.events as the merger receives them — events_decode
 * (size cap, schema version, header, payload), then the merger's apply-side validation
 * (apply_validate), the re-packed bytes (byte-equal after a second decode and pack) and the
 * JSON rendering the DLQ and panelctl use. */
#include "apply.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fuzz_first_call();
    char err[512];
    Envelope *env = events_decode(data, size, err, sizeof err);
    if (!env)
        return 0;
    (void)apply_validate(env, 16, err, sizeof err);
    /* What was decoded packs to canonical bytes: decode -> pack -> decode -> pack gives the
     * same bytes again (the outbox and the DLQ store packed envelopes and re-read them). */
    size_t n1 = 0, n2 = 0;
    uint8_t *packed = events_pack(env, &n1), *repacked = NULL;
    if (packed) {
        Envelope *again = events_decode(packed, n1, err, sizeof err);
        if (!again)
            abort(); /* what we packed must decode */
        repacked = events_pack(again, &n2);
        if (repacked && (n1 != n2 || memcmp(packed, repacked, n1) != 0))
            abort();
        events_free(again);
    }
    free(packed);
    free(repacked);
    struct buf js;
    buf_init(&js, 0);
    if (events_to_json(&env->base, &js) == 0 && js.data) {
        /* What panelctl consume prints, panelctl publish reads back. */
        ProtobufCMessage *back =
            events_from_json(&panel__v1__envelope__descriptor, js.data, js.len, err, sizeof err);
        if (back)
            protobuf_c_message_free_unpacked(back, NULL);
    }
    buf_free(&js);
    events_free(env);
    return 0;
}
