/* Fuzz target: events_to_json_value on any Envelope protobuf-c can unpack (no header checks,
 * so every payload and field shape is reached). The value must equal (json_equal) what
 * json_loads reads from events_to_json's text, and be NULL exactly when that text does not
 * read back (a string that is not UTF-8, a uint64 past INT64_MAX); a value read back with
 * events_from_json_value must render to the same value again (panelctl consume | publish). */
#include "fuzz_common.h"

#include <jansson.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int inited;
    if (!inited) {
        log_init("fuzz", LOG_ERROR + 1);
        inited = 1;
    }
    char err[512];
    ProtobufCMessage *m =
        protobuf_c_message_unpack(&panel__v1__envelope__descriptor, NULL, size, data);
    if (!m)
        return 0;
    struct buf text;
    buf_init(&text, 0);
    json_t *value = events_to_json_value(m), *parsed = NULL, *again = NULL;
    ProtobufCMessage *back = NULL;
    if (events_to_json(m, &text) == 0 && text.data)
        parsed = json_loadb(text.data, text.len, 0, NULL);
    if ((value == NULL) != (parsed == NULL))
        abort(); /* the value and the text disagree on whether the message renders */
    if (value && !json_equal(value, parsed))
        abort();
    if (value) {
        back = events_from_json_value(&panel__v1__envelope__descriptor, value, err, sizeof err);
        if (!back)
            abort(); /* what events_to_json_value renders, events_from_json_value reads */
        again = events_to_json_value(back);
        if (!again || !json_equal(value, again))
            abort();
    }
    json_decref(value);
    json_decref(parsed);
    json_decref(again);
    if (back)
        protobuf_c_message_free_unpacked(back, NULL);
    buf_free(&text);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
