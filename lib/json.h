/* json: small helpers over jansson for reading untrusted JSON. Absent, null and wrongly
 * typed values are told apart, so a string is never silently read as a number. */
#ifndef PANEL_JSON_H
#define PANEL_JSON_H

#include "buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pjson_get { PJSON_OK = 0, PJSON_ABSENT = 1, PJSON_NULL = 2, PJSON_WRONG_TYPE = -1 };

/* Parse a buffer (not NUL-terminated necessarily). Returns a new reference or NULL with a
 * message naming line/column in err. Rejects nesting deeper than jansson's limit. */
json_t *pjson_parse(const char *data, size_t len, char *err, size_t errlen);

/* Find the string value of the top-level member name of the JSON object in data without
 * parsing the document (a cursor read before the page is parsed). 1 with *value (borrowed
 * from data, not terminated) and *value_len when the member is there once, is a string and
 * neither its name nor its value holds an escape; 0 otherwise (absent, not a string, twice,
 * escaped, or not an object): the caller then reads the parsed document. It does not
 * validate the document: pjson_parse() still has to. */
int pjson_scan_member_string(const char *data, size_t len, const char *name, const char **value,
                             size_t *value_len);
/* Borrowed string member, or NULL when absent, null or not a string. */
const char *pjson_str(const json_t *obj, const char *key);
/* Typed reads: PJSON_OK fills *out; otherwise *out is untouched. */
enum pjson_get pjson_get_str(const json_t *obj, const char *key, const char **out);
enum pjson_get pjson_get_bool(const json_t *obj, const char *key, bool *out);
enum pjson_get pjson_get_int(const json_t *obj, const char *key, int64_t *out);
/* An int64 carried as a JSON string (Google's habit), e.g. "1700000000000". */
enum pjson_get pjson_get_int_string(const json_t *obj, const char *key, int64_t *out);
/* Serialize any value compactly, as json_dumps(JSON_COMPACT | JSON_ENCODE_ANY) would, only
 * faster; NULL for NaN or infinity, nesting deeper than 2048, over 1 GiB or out of memory.
 * The caller frees the text with free(). */
char *pjson_dump_compact(const json_t *v);
/* The same appended to b (whose own cap also applies), so that one buffer can serve many
 * dumps; 0, or -1 with b as it was. A cap of PJSON_DUMP_MAX_BYTES gives the same limit. */
#define PJSON_DUMP_MAX_BYTES ((size_t)1 << 30)
int pjson_dump_compact_into(const json_t *v, struct buf *b) __attribute__((warn_unused_result));
/* Append v as PostgreSQL prints it after a cast to jsonb (jsonb::text): object keys shorter
 * first then bytewise, ", " and ": " between items, PostgreSQL's string escapes. So that a hash
 * computed here equals md5(value::jsonb::text) computed in SQL. 0, or -1 with b as it was for a
 * real number (not reproduced), a string holding NUL (jsonb refuses it) or out of memory. */
int pjson_dump_jsonb_text(const json_t *v, struct buf *b) __attribute__((warn_unused_result));

#endif
