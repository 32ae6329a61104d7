/* fetch_map: turns one provider object (JSON) into one panel.v1 message (Person, OrgUnit,
 * Device) by a field-mapping table. The fetchers differ in their tables, not in this code:
 * the table names the JSON member and the .proto field, and the field is set through
 * protobuf-c's descriptors. Strings are truncated to the table's limit (at a UTF-8
 * boundary), emails are kept as given and normalized (trimmed, ASCII lower-case). */
#ifndef PANEL_FETCH_MAP_H
#define PANEL_FETCH_MAP_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

/* Limits for text coming from a provider (bytes). */
#define FMAP_MAX_ID    256
#define FMAP_MAX_EMAIL 320
#define FMAP_MAX_NAME  256
#define FMAP_MAX_TEXT  1024
#define FMAP_MAX_URL   2048
#define FMAP_MAX_NOTES 4096
#define FMAP_MAX_LIST  100 /* entries kept of a list (aliases, recentUsers, ...) */

enum fmap_type {
    FMAP_STR,          /* JSON string -> string field */
    FMAP_BOOL,         /* JSON true/false -> bool field */
    FMAP_BOOL_NOT,     /* JSON true/false -> bool field, inverted (accountEnabled -> suspended) */
    FMAP_INT_STRING,   /* int64 as a JSON string (or a number) -> int64 field */
    FMAP_STR_LIST,     /* array of strings -> StringList message field */
    FMAP_TIME,         /* RFC 3339 string; Google's "never" (1970-01-01T00:00:00...) = absent */
    FMAP_EXTERNAL_ID,  /* Google externalIds[]: value of the first entry whose type is arg */
    FMAP_RECENT_USERS, /* Google recentUsers[]{type,email} -> repeated RecentUser; also sets
                          the bool field named by arg when the member was present */
    FMAP_YEAR,         /* a year FMAP_YEAR_MIN..FMAP_YEAR_MAX as a JSON integer or a string of
                          decimal digits (or Google's multi-valued [{"value":...}], the first)
                          -> int32 field; anything else is left out and counted as ignored */
};

#define FMAP_YEAR_MIN 1900
#define FMAP_YEAR_MAX 2200

struct fmap_field {
    const char *json; /* member name; "a.b.c" reads member c of object b of object a */
    enum fmap_type type;
    const char *proto; /* field name in the message, as in the .proto */
    size_t max;        /* strings: truncation limit in bytes (0 = FMAP_MAX_TEXT) */
    const char *arg;   /* see the types */
};

struct fmap_spec {
    const ProtobufCMessageDescriptor *desc; /* e.g. &panel__v1__person__descriptor */
    const struct fmap_field *fields;
    size_t nfields;
    const char *id_json;           /* the key member (required) */
    const char *id_proto;          /* field that receives it */
    const char *const *email_from; /* NULL-terminated members tried in order for `email`
                                      (Person only), or NULL */
    bool nulls_clear;              /* a JSON null is recorded in `cleared_fields` (Azure) */
    /* Fields whose member the district names in configuration (a Google custom schema field,
     * an Entra extension attribute), mapped like `fields`; an entry whose json is NULL is not
     * configured and skipped. Borrowed. */
    const struct fmap_field *configured;
    size_t nconfigured;
};

/* Mapping options per call. */
enum fmap_flags {
    FMAP_FULL = 0,    /* a complete object: an email (when email_from is set) is required */
    FMAP_PARTIAL = 1, /* a delta object: only the id is required; `email` is chosen only
                         from members that were sent (an absent one means unchanged) */
};

struct fmap_stats {
    unsigned truncated; /* string fields and lists cut to their limit */
    unsigned ignored;   /* values of the wrong type, left out rather than coerced */
};

/* Map obj by spec into a new message (caller frees with protobuf_c_message_free_unpacked(m,
 * NULL)). Returns NULL when the object must be skipped (not an object, no id, no email, a
 * member of the wrong type for its key) with the reason in reason. */
ProtobufCMessage *fmap_map(const struct fmap_spec *spec, const json_t *obj, int flags,
                           struct fmap_stats *stats, char *reason, size_t reasonlen);

/* A provider's spec with its configured fields: *out is *base, with the n entries of
 * configured copied into fields (the caller's storage, n long, which out borrows) so that
 * each entry's json can be set from the district's configuration. */
void fmap_spec_configure(struct fmap_spec *out, const struct fmap_spec *base,
                         struct fmap_field *fields, const struct fmap_field *configured, size_t n);

/* Trim ASCII white space and lower-case ASCII letters of email into a new string (caller
 * frees); NULL when out of memory. */
char *fmap_normalize_email(const char *email);
/* Copy s, truncated to at most max bytes without splitting a UTF-8 sequence; *cut is set to
 * true when something was cut. Caller frees; NULL when out of memory. */
char *fmap_strndup_utf8(const char *s, size_t max, bool *cut);

#endif
