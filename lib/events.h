/* events: building, packing, publishing and decoding panel.v1 Envelopes. */
#ifndef PANEL_EVENTS_H
#define PANEL_EVENTS_H

#include "buf.h"
#include "kafka.h"
#include "panel/v1/pb_short_names.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define EVENTS_SCHEMA_VERSION 1
#define EVENTS_ID_LEN         37

typedef Panel__V1__Envelope Envelope;

/* Milliseconds since the Unix epoch. */
int64_t events_now_ms(void);
/* Initialise env and fill its header: a fresh event id (stored in id_buf, which must outlive
 * env), tenant, source, run id (may be NULL), now, schema version. Strings are borrowed. */
int events_envelope_init(Envelope *env, char id_buf[EVENTS_ID_LEN], const char *tenant,
                         Panel__V1__Source source, const char *run_id)
    __attribute__((warn_unused_result));
/* Serialise into a malloc'd buffer (caller frees); NULL when out of memory. */
uint8_t *events_pack(const Envelope *env, size_t *len);
/* Pack and queue on topic with key (NUL-terminated). 0 or -1 with a message. */
int events_publish(struct kafka_producer *p, const char *topic, const char *key,
                   const Envelope *env, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The same with its delivery result counted in d (NULL: as events_publish). */
int events_publish_tracked(struct kafka_producer *p, const char *topic, const char *key,
                           const Envelope *env, struct kafka_delivery *d, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* events_publish on an explicit partition of topic (kafka_produce_partition; its delivery
 * counted in the producer's, see kafka_producer_flush). 0 or -1 with a message. */
int events_publish_partition(struct kafka_producer *p, const char *topic, int32_t partition,
                             const char *key, const Envelope *env, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Decode and validate untrusted bytes: size cap, known schema version, event id and tenant
 * present, a payload set. Returns an envelope (free with events_free) or NULL + message. */
Envelope *events_decode(const void *data, size_t len, char *err, size_t errlen);
void events_free(Envelope *env);
/* Append any protobuf-c message as JSON (field names as in the .proto; enums by name;
 * int64 as numbers). 0 or -1. */
int events_to_json(const ProtobufCMessage *msg, struct buf *out)
    __attribute__((warn_unused_result));
/* The same as a new jansson object, without the text: equal (json_equal) to what json_loads
 * reads from events_to_json's output. NULL when out of memory or when a string is not UTF-8 or
 * a uint64 is above INT64_MAX (neither reads back from the text either). */
json_t *events_to_json_value(const ProtobufCMessage *msg);
/* The inverse of events_to_json: build a message of descriptor d from a JSON object (field
 * names as in the .proto, enums by name or number, int64 as numbers or decimal strings, bytes
 * as base64). Unknown fields and wrong types are errors. Returns a message to free with
 * protobuf_c_message_free_unpacked(msg, NULL), or NULL with a message in err. */
ProtobufCMessage *events_from_json(const ProtobufCMessageDescriptor *d, const char *json,
                                   size_t len, char *err, size_t errlen);
/* The same from an already parsed object (borrowed), without a text round trip. */
ProtobufCMessage *events_from_json_value(const ProtobufCMessageDescriptor *d, const json_t *obj,
                                         char *err, size_t errlen);
/* The strings of a JSON array (borrowed; NULL = empty) as a repeated string field takes them:
 * a new array (the caller frees it, not the strings, which stay the array's) of *n borrowed
 * pointers, one per element (NULL for an element that is not a string). NULL when out of
 * memory. */
char **events_strings_from_json(const json_t *strings, size_t *n);
const char *events_source_str(Panel__V1__Source s); /* "google", "azure", "panel", "unspecified" */
/* The inverse, through the .proto's enum descriptor: "google", "azure", "panel" (lower case,
 * as events_source_str writes them) to the enum; UNSPECIFIED for anything else or NULL. */
Panel__V1__Source events_source_from_str(const char *s);

#endif
