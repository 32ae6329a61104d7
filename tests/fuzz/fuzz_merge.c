/* Fuzz target: the merger's merge function. The input is JSON: [google, azure, old] where
 * google/azure are a Person's source rows (objects, or null when that cloud has no row) and
 * old is the previously shown fields. Checks the promises of merge.h: Azure's fields win,
 * Google-only fields stay, the result does not depend on anything else; plus e-mail
 * normalisation of every string. */
#include "fuzz_common.h"
#include "ids.h"
#include "json.h"
#include "merge.h"

static void check_email(const json_t *v)
{
    char out[320];
    if (json_is_string(v))
        (void)ids_email_normalize(json_string_value(v), out, sizeof out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fuzz_first_call();
    json_t *root = pjson_parse((const char *)data, size, NULL, 0);
    if (!json_is_array(root)) {
        json_decref(root);
        return 0;
    }
    json_t *g = json_array_get(root, 0), *a = json_array_get(root, 1),
           *old = json_array_get(root, 2);
    if (g && !json_is_object(g))
        g = NULL;
    if (a && !json_is_object(a))
        a = NULL;
    if (old && !json_is_object(old))
        old = NULL;
    struct merge_person p = {0};
    if (merge_person_compute(g, a, &p) == 0) {
        if (p.removed != (!g && !a))
            abort();
        const char *k;
        json_t *v;
        if (a)
            json_object_foreach(a, k, v)
            {
                if (!json_equal(json_object_get(p.fields, k), v))
                    abort(); /* Azure's value must win */
            }
        if (g)
            json_object_foreach(g, k, v)
            {
                if (!(a && json_object_get(a, k)) && !json_equal(json_object_get(p.fields, k), v))
                    abort(); /* a field only Google has stays Google's */
            }
        json_t *changed = merge_changed_fields(old, p.fields);
        json_t *same = merge_changed_fields(p.fields, p.fields);
        if (same && json_array_size(same) != 0)
            abort();
        json_decref(changed);
        json_decref(same);
        check_email(json_object_get(p.fields, "email"));
    }
    merge_person_clear(&p);
    size_t i;
    json_t *v;
    json_array_foreach(root, i, v) check_email(v);
    (void)merge_threshold_exceeded((long)size * 7 - 1000, (long)size, 500, 10);
    json_decref(root);
    return 0;
}
