/* reference: see reference.h. */
#include "reference.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>

json_t *ref_load(const char *path)
{
    json_error_t e;
    json_t *v = json_load_file(path, 0, &e);
    if (!v)
        fail_msg("%s: %s", path, e.text);
    return v;
}

struct buf ref_body(const char *path, const char *name)
{
    json_t *all = ref_load(path);
    char *text = json_dumps(json_object_get(all, name), JSON_COMPACT);
    struct buf b;
    buf_init(&b, 0);
    if (!text || buf_appends(&b, text))
        fail_msg("%s: no reply named %s", path, name);
    free(text);
    json_decref(all);
    return b;
}

ProtobufCMessage *ref_map_nth(const struct fmap_spec *spec, const char *path, const char *key,
                              size_t i, int flags, struct fmap_stats *st, char *why)
{
    json_t *page = ref_load(path);
    ProtobufCMessage *m =
        fmap_map(spec, json_array_get(json_object_get(page, key), i), flags, st, why, 256);
    json_decref(page);
    return m;
}
