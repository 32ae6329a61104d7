/* reference: the providers' reply shapes kept in tests/reference, read by the C tests. Every
 * helper fails the running cmocka test when a file cannot be read. */
#ifndef TESTS_REFERENCE_H
#define TESTS_REFERENCE_H

#include "buf.h"
#include "fetch_map.h"

#include <jansson.h>
#include <stddef.h>

/* The JSON document at path (relative to the repository root); the caller json_decref()s. */
json_t *ref_load(const char *path);

/* The member name of the JSON object at path, as a response body (compact JSON); the caller
 * buf_free()s. For the error files, one named reply each. */
struct buf ref_body(const char *path, const char *name);

/* Item i of the array key of the page at path, mapped by spec with flags; NULL with why (256
 * bytes) when the mapping refuses it. st may be NULL. */
ProtobufCMessage *ref_map_nth(const struct fmap_spec *spec, const char *path, const char *key,
                              size_t i, int flags, struct fmap_stats *st, char *why);

#endif
