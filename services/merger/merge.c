#include "merge.h"

#include "fetch_map.h"
#include "hash.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void merge_person_clear(struct merge_person *p)
{
    json_decref(p->fields);
    json_decref(p->provenance);
    json_decref(p->sources);
    memset(p, 0, sizeof *p);
}

/* Copy every member of src over dst and note where it came from. */
static int overlay(json_t *dst, json_t *prov, const json_t *src, const char *source)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)src, key, v)
    {
        if (json_object_set(dst, key, v) || json_object_set_new(prov, key, json_string(source)))
            return -1;
    }
    return 0;
}

int merge_person_compute(const json_t *google, const json_t *azure, struct merge_person *out)
{
    int rc = -1;
    memset(out, 0, sizeof *out);
    out->fields = json_object();
    out->provenance = json_object();
    out->sources = json_array();
    if (!out->fields || !out->provenance || !out->sources)
        goto out;
    if (google && json_is_object(google)) {
        if (overlay(out->fields, out->provenance, google, "google") ||
            json_array_append_new(out->sources, json_string("google")))
            goto out;
    }
    if (azure && json_is_object(azure)) {
        if (overlay(out->fields, out->provenance, azure, "azure") ||
            json_array_append_new(out->sources, json_string("azure")))
            goto out;
    }
    out->removed = json_array_size(out->sources) == 0;
    rc = 0;
out:
    if (rc)
        merge_person_clear(out);
    return rc;
}

int merge_source_suspended(json_t *fields)
{
    if (!fields)
        return 0;
    return json_object_set_new(fields, "suspended", json_true());
}

int merge_person_drop_invalid(json_t *fields)
{
    json_t *year = json_object_get(fields, "graduation_year");
    if (!year || (json_is_integer(year) && json_integer_value(year) >= FMAP_YEAR_MIN &&
                  json_integer_value(year) <= FMAP_YEAR_MAX))
        return 0;
    json_object_del(fields, "graduation_year");
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *merge_changed_fields(const json_t *old_fields, const json_t *new_fields)
{
    json_t *out = json_array();
    const char **names = NULL;
    size_t n = 0, cap = json_object_size(old_fields) + json_object_size(new_fields);
    const char *key;
    json_t *v;
    if (!out)
        return NULL;
    names = calloc(cap ? cap : 1, sizeof *names);
    if (!names)
        goto fail;
    json_object_foreach((json_t *)new_fields, key, v)
    {
        if (!json_equal(v, json_object_get(old_fields, key)))
            names[n++] = key;
    }
    json_object_foreach((json_t *)old_fields, key, v)
    {
        (void)v;
        if (!json_object_get(new_fields, key))
            names[n++] = key;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(out, json_string(names[i])))
            goto fail;
    free(names);
    return out;
fail:
    free(names);
    json_decref(out);
    return NULL;
}

bool merge_threshold_exceeded(long removals, long total, long max_count, int max_percent)
{
    if (removals <= 0)
        return false;
    if (removals > max_count)
        return true;
    /* removals / total > max_percent / 100, in integers */
    return total <= 0 || removals * 100 > (long)max_percent * total;
}

int merge_delta_combine(json_t *fields, json_t *cleared, const json_t *later_fields,
                        const json_t *later_cleared)
{
    const char *key;
    json_t *v;
    size_t i;
    if (json_object_update(fields, (json_t *)later_fields))
        return -1;
    /* set again later: no longer cleared (iterate backwards: removal shifts the rest) */
    for (i = json_array_size(cleared); i-- > 0;)
        if (json_string_value(json_array_get(cleared, i)) &&
            json_object_get(later_fields, json_string_value(json_array_get(cleared, i))) &&
            json_array_remove(cleared, i))
            return -1;
    json_array_foreach((json_t *)later_cleared, i, v)
    {
        key = json_string_value(v);
        if (!key)
            continue;
        json_object_del(fields, key);
        bool have = false;
        for (size_t k = 0; k < json_array_size(cleared) && !have; k++) {
            const char *ck = json_string_value(json_array_get(cleared, k));
            have = ck && strcmp(ck, key) == 0;
        }
        if (!have && json_array_append(cleared, v))
            return -1;
    }
    return 0;
}

bool merge_run_incomplete(long reported, long received, long skipped, long invalid)
{
    return skipped > 0 || invalid > 0 || received < reported;
}

long long merge_address_lock_key(const char *tenant, const char *address)
{
    /* FNV-1a, 64 bits, from this start value (one digit short of FNV's basis: pinned, the
     * keys must not change). The newline: "a" + "bc" and "ab" + "c" differ. */
    uint64_t h = hash_fnv1a64_str(1469598103934665603ULL, tenant);
    h = hash_fnv1a64_str(hash_fnv1a64_byte(h, '\n'), address);
    long long k;
    memcpy(&k, &h, sizeof k); /* PostgreSQL's bigint: the same 64 bits, signed */
    return k;
}

const char *merge_smtp_address(const char *proxy)
{
    return proxy && strncasecmp(proxy, "smtp:", 5) == 0 ? proxy + 5 : NULL;
}

static bool address_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Append s to out normalised, when it is an address (merge_person_addresses). -1 when out of
 * memory. */
static int address_add(json_t *out, const char *s)
{
    if (!s)
        return 0;
    while (address_blank(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && address_blank(s[n - 1]))
        n--;
    /* an '@' after the first byte and before the last: UTF-8 never has '@' inside a
     * character, so this is LIKE '_%@_%' counted in characters */
    if (n < 3 || !memchr(s + 1, '@', n - 2))
        return 0;
    char *a = malloc(n + 1);
    if (!a)
        return -1;
    for (size_t i = 0; i < n; i++)
        a[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    a[n] = '\0';
    int rc = json_array_append_new(out, json_stringn(a, n));
    free(a);
    return rc;
}

static int cmp_json_string(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

json_t *merge_person_addresses(const json_t *fields)
{
    json_t *all = json_array(), *out = NULL, **sorted = NULL;
    if (!all)
        return NULL;
    const json_t *aliases = json_object_get(json_object_get(fields, "aliases"), "values");
    const json_t *proxies = json_object_get(json_object_get(fields, "proxy_addresses"), "values");
    int bad = address_add(all, json_string_value(json_object_get(fields, "email_normalized"))) ||
              address_add(all, json_string_value(json_object_get(fields, "mail")));
    for (size_t i = 0; !bad && i < json_array_size(aliases); i++)
        bad = address_add(all, json_string_value(json_array_get(aliases, i)));
    for (size_t i = 0; !bad && i < json_array_size(proxies); i++)
        bad = address_add(all, merge_smtp_address(json_string_value(json_array_get(proxies, i))));
    size_t n = json_array_size(all);
    sorted = malloc((n ? n : 1) * sizeof *sorted);
    out = json_array();
    if (bad || !sorted || !out)
        goto fail;
    for (size_t i = 0; i < n; i++)
        sorted[i] = json_array_get(all, i);
    qsort(sorted, n, sizeof *sorted, cmp_json_string);
    for (size_t i = 0; i < n; i++)
        if ((i == 0 || cmp_json_string(&sorted[i - 1], &sorted[i]) != 0) &&
            json_array_append(out, sorted[i]))
            goto fail;
    free(sorted);
    json_decref(all);
    return out;
fail:
    free(sorted);
    json_decref(all);
    json_decref(out);
    return NULL;
}
