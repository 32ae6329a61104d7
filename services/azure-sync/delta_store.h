/* delta_store: the per-tenant Graph delta link, kept durably in azure_delta_state so that a
 * restarted azure-sync continues where the last completed run ended. A link belongs to the
 * Entra directory it was read from: it is stored with that directory id and only handed out
 * while the tenant is still connected to that directory (after a consent for another
 * directory, or a de-authorization, the next run is a full one). */
#ifndef AZURE_SYNC_DELTA_STORE_H
#define AZURE_SYNC_DELTA_STORE_H

#include <stddef.h>
#include <stdint.h>

struct delta_store;

/* Connect (retrying up to 30 s) and check the schema version. NULL + message. */
struct delta_store *delta_store_new(const char *pg_url, char *err, size_t errlen);
void delta_store_destroy(struct delta_store *ds);
/* The tenant's delta link (caller frees) and when its last full run ended (Unix seconds).
 * 0 found; 1 none stored, or stored for another directory than the connected one; -1
 * database error (message in err). */
int delta_store_load(struct delta_store *ds, const char *tenant, char **link, int64_t *last_full_s,
                     char *err, size_t errlen) __attribute__((warn_unused_result));
/* Store the link read from directory (the provider tenant the run's token was for; "" or
 * NULL stores a link no later run follows); full = the run was a full run (last_full_at
 * becomes now). 0 or -1. */
int delta_store_save(struct delta_store *ds, const char *tenant, const char *directory,
                     const char *link, int full, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Forget the tenant's link (an expired token). 0 or -1. */
int delta_store_forget(struct delta_store *ds, const char *tenant, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
