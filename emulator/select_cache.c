#include "select_cache.h"

#include <stdlib.h>
#include <string.h>

struct select_cache {
    char *shape; /* NULL: nothing held */
    uint64_t gen;
    size_t count;
    char **items; /* count entries, NULL where not computed yet */
};

struct select_cache *select_cache_new(void)
{
    return calloc(1, sizeof(struct select_cache));
}

static void drop(struct select_cache *sc)
{
    for (size_t i = 0; sc->items && i < sc->count; i++)
        free(sc->items[i]);
    free(sc->items);
    free(sc->shape);
    sc->items = NULL;
    sc->shape = NULL;
    sc->count = 0;
}

void select_cache_free(struct select_cache *sc)
{
    if (!sc)
        return;
    drop(sc);
    free(sc);
}

int select_cache_use(struct select_cache *sc, const char *shape, uint64_t gen, size_t count)
{
    if (sc->shape && sc->gen == gen && sc->count == count && !strcmp(sc->shape, shape))
        return 0;
    drop(sc);
    sc->items = calloc(count ? count : 1, sizeof *sc->items);
    sc->shape = strdup(shape);
    if (!sc->items || !sc->shape) {
        drop(sc);
        return -1;
    }
    sc->gen = gen;
    sc->count = count;
    return 0;
}

const char *select_cache_get(const struct select_cache *sc, size_t i)
{
    return sc->shape && i < sc->count ? sc->items[i] : NULL;
}

void select_cache_put(struct select_cache *sc, size_t i, char *text)
{
    if (!sc->shape || i >= sc->count) {
        free(text);
        return;
    }
    free(sc->items[i]);
    sc->items[i] = text;
}
