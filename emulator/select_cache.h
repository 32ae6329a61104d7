/* select_cache: the items of one collection as one request shape selects them (the users
 * pages' ?fields= expression and projection), serialized once and reused until the collection
 * changes. A district's data is fixed between control changes, so a resync of an unchanged
 * district is answered by concatenation instead of a JSON parse and dump of every page.
 * One shape at a time: a request of another shape starts the cache over. Not locked: the
 * district's lock guards it (district_select_cache). */
#ifndef EMU_SELECT_CACHE_H
#define EMU_SELECT_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct select_cache;

struct select_cache *select_cache_new(void);
void select_cache_free(struct select_cache *sc);

/* Make sc hold shape's selections of a collection of count items at generation gen; what it
 * held for another shape, generation or count is dropped. 0, or -1 (memory: sc is then
 * empty and select_cache_get returns NULL). */
int select_cache_use(struct select_cache *sc, const char *shape, uint64_t gen, size_t count);
/* Item i's selection, or NULL when not held. Valid until the next select_cache_use. */
const char *select_cache_get(const struct select_cache *sc, size_t i);
/* Hold text as item i's selection (taken: the cache frees it; freed at once when i is out of
 * range). */
void select_cache_put(struct select_cache *sc, size_t i, char *text);

#endif
