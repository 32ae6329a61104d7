/* district: one generated school district = one Google customer + one Azure tenant. The
 * generator is deterministic (same spec, same objects). Objects are kept serialized in the
 * provider's wire shape, with a few extracted keys for filtering and ordering, so pages are
 * assembled by concatenation and a 200k-user district costs little memory.
 * Every access to a district's collections happens between district_lock/district_unlock. */
#ifndef EMU_DISTRICT_H
#define EMU_DISTRICT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DISTRICT_ID_MAX      48
#define DISTRICT_MAX_PEOPLE  2000000L
#define DISTRICT_MAX_DEVICES 1000000L
#define DISTRICT_MAX_OUS     40000L

struct district_spec {
    char id[DISTRICT_ID_MAX + 1];
    long people;       /* visible Google users */
    long azure_people; /* Azure users */
    long shared;       /* people present in both clouds with the same email */
    long proxy_joined; /* of the shared: Entra mail on another domain, the Google address only
                        * as an smtp: proxy address */
    long devices;      /* Chromebooks */
    long ous;          /* organizational units (without the root) */
    uint64_t seed;
};

/* "id:people=3000,azure_people=2000,shared=1500,devices=400,ous=60,seed=7" (and
 * proxy_joined=N, default 0) */
int district_spec_parse(const char *text, struct district_spec *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* {"id","people",...} as POSTed to /control/districts. */
int district_spec_from_json(const json_t *obj, struct district_spec *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

enum dcoll { DC_GUSERS = 0, DC_OUS = 1, DC_DEVICES = 2, DC_AUSERS = 3, DC_COUNT = 4 };

#define DITEM_DELETED 1u /* Google: deleted user (showDeleted); Azure: soft-deleted */
#define DITEM_GONE    2u /* removed for good: never listed again */

struct ditem {
    char *json;   /* the full wire object, compact */
    char *id;     /* id / deviceId / orgUnitId (with "id:") */
    char *key;    /* lower-case primaryEmail / orgUnitPath / serialNumber / lower-case UPN */
    char *ou;     /* orgUnitPath (users, devices) or NULL */
    char *family; /* Google familyName / Azure displayName, may be NULL */
    char *given;  /* Google givenName / Azure mail, may be NULL */
    unsigned flags;
};

struct district;

/* Generate a district (seconds for 200k people). NULL with a message in err. */
struct district *district_generate(const struct district_spec *spec, char *err, size_t errlen);
void district_destroy(struct district *d);

void district_lock(struct district *d);
void district_unlock(struct district *d);

/* Identity (constant after generation; no lock needed). */
const char *district_id(const struct district *d);
const char *district_domain(const struct district *d);
const char *district_customer_id(const struct district *d);
const char *district_tenant_id(const struct district *d);
const char *district_admin_email(const struct district *d);
const struct district_spec *district_spec(const struct district *d);

/* Collections (under the lock). Items are only appended; an index stays valid. */
size_t district_count(const struct district *d, enum dcoll c);
const struct ditem *district_item(const struct district *d, enum dcoll c, size_t i);
/* Index of the item with this id (devices and Azure users also by key), or -1. */
long district_find(struct district *d, enum dcoll c, const char *id);
/* Number of listed items (not deleted/gone). */
size_t district_live_count(const struct district *d, enum dcoll c);
/* Bumped by every mutation of collection c. */
uint64_t district_generation(const struct district *d, enum dcoll c);
/* Collection c's cache of serialized selections (select_cache.h; keyed by the generation
 * above, so every mutation invalidates it), owned by d; NULL when out of memory. */
struct select_cache *district_select_cache(struct district *d, enum dcoll c);

/* Mutations (under the lock). obj/patch are borrowed. *out gets a new reference to the
 * resulting wire object. Return 0, -1 bad input (message in err), -2 not found, -3 conflict. */
int district_add(struct district *d, enum dcoll c, json_t *obj, json_t **out, char *err,
                 size_t errlen) __attribute__((warn_unused_result));
int district_patch(struct district *d, enum dcoll c, const char *id, json_t *patch, json_t **out,
                   char *err, size_t errlen) __attribute__((warn_unused_result));
/* Google users: marked deleted (listed with showDeleted); OUs/devices: gone; Azure users:
 * soft-deleted unless permanent. */
int district_delete(struct district *d, enum dcoll c, const char *id, bool permanent)
    __attribute__((warn_unused_result));

/* Restore a soft-deleted Azure user (Graph's deletedItems restore: listed again, and whole in
 * the next delta round) or a deleted Google user (users.undelete: the same id, listed again
 * without deletionTime). 0, -2 not found or not deleted, -1 memory. */
int district_restore(struct district *d, enum dcoll c, const char *id)
    __attribute__((warn_unused_result));

/* Azure change log for delta queries. Versions start at 1 after generation. */
uint64_t district_azure_version(const struct district *d);
enum dchange {
    DCHANGE_UPDATED = 0,
    DCHANGE_CREATED = 1,
    DCHANGE_SOFT = 2,
    DCHANGE_HARD = 3,
    DCHANGE_RESTORED = 4
};
struct dchange_sum {
    size_t item;       /* index into DC_AUSERS */
    enum dchange kind; /* the net effect */
    char props[512];   /* ",a,b," changed property names (DCHANGE_UPDATED) */
};
/* Graph may list one object more than once in a round. With repeats on, every change is its
 * own entry (two PATCHes between rounds: two entries); off (the default), one net entry per
 * user. */
void district_set_delta_repeats(struct district *d, bool repeats);
/* orgunits.list promises no order: with children_first on, the OUs are listed in the reverse
 * of their creation order, so every child OU comes before its parent. */
void district_set_ous_children_first(struct district *d, bool children_first);
bool district_ous_children_first(const struct district *d);
/* The changes with from < version <= to: one net entry per user in first-change order, or
 * one per change with repeats on. Caller frees *out. Returns the count, or -1 (out of
 * memory). */
long district_azure_changes(const struct district *d, uint64_t from, uint64_t to,
                            struct dchange_sum **out);

/* Consent / grant state, under the lock. */
struct district_auth {
    bool azure_consented; /* admin consent given for the app */
    bool azure_ever_consented;
    bool azure_permission; /* User.Read.All still granted */
    uint64_t azure_epoch;  /* bumped on consent removal: older tokens are refused */
    uint64_t google_epoch; /* bumped on revoke of every Google grant */
};
struct district_auth *district_auth(struct district *d);

#endif
