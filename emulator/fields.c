#include "fields.h"

#include <string.h>

int fields_valid(const char *expr)
{
    int depth = 0;
    size_t n = strlen(expr);
    if (!n || n > 2048)
        return 0;
    for (const char *p = expr; *p; p++) {
        char c = *p;
        if (c == '(')
            depth++;
        else if (c == ')') {
            if (--depth < 0)
                return 0;
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '/' || c == ',' || c == '*' || c == '@' || c == '#' ||
                     c == ' ' || c == '$' || c == '.' || c == '-'))
            return 0;
    }
    return depth == 0;
}

static void merge(json_t *into, const char *key, json_t *val)
{
    json_t *cur = json_object_get(into, key);
    if (cur && json_is_object(cur) && json_is_object(val)) {
        json_object_update_recursive(cur, val);
        json_decref(val);
    } else if (cur && json_is_array(cur) && json_is_array(val) &&
               json_array_size(cur) == json_array_size(val)) {
        for (size_t i = 0; i < json_array_size(cur); i++) {
            json_t *a = json_array_get(cur, i), *b = json_array_get(val, i);
            if (json_is_object(a) && json_is_object(b))
                json_object_update_recursive(a, b);
        }
        json_decref(val);
    } else {
        json_object_set_new(into, key, val);
    }
}

/* The top-level member of expr that starts at *i (up to a comma at depth 0), *i moved past it.
 * 1 with m filled, 0 for an item without a usable name (skipped), -1 at the end. */
static int next_member(const char *expr, size_t len, size_t *i, struct fields_member *m)
{
    if (*i >= len)
        return -1;
    size_t start = *i;
    int depth = 0;
    while (*i < len && !(expr[*i] == ',' && depth == 0)) {
        if (expr[*i] == '(')
            depth++;
        else if (expr[*i] == ')')
            depth--;
        (*i)++;
    }
    size_t end = *i;
    (*i)++; /* skip the comma */
    while (start < end && expr[start] == ' ')
        start++;
    size_t nend = start;
    while (nend < end && expr[nend] != '/' && expr[nend] != '(')
        nend++;
    size_t nl = nend - start;
    while (nl && expr[start + nl - 1] == ' ')
        nl--;
    if (!nl || nl >= sizeof m->name)
        return 0;
    memcpy(m->name, expr + start, nl);
    m->name[nl] = '\0';
    m->sub = NULL;
    m->sublen = 0;
    if (nend < end && expr[nend] == '/') {
        m->sub = expr + nend + 1;
        m->sublen = end - nend - 1;
    } else if (nend < end && expr[nend] == '(') {
        m->sub = expr + nend + 1;
        m->sublen = end - nend - 1;
        if (m->sublen && m->sub[m->sublen - 1] == ')')
            m->sublen--;
    }
    return 1;
}

int fields_members(const char *expr, size_t len, struct fields_member *out, int max)
{
    size_t i = 0;
    int n = 0, got;
    struct fields_member m;
    while ((got = next_member(expr, len, &i, &m)) >= 0) {
        if (!got)
            continue;
        if (!strcmp(m.name, "*") || n == max)
            return -1;
        for (int k = 0; k < n; k++)
            if (!strcmp(out[k].name, m.name))
                return -1; /* fields_apply merges the two selections */
        out[n++] = m;
    }
    return n;
}

static json_t *apply_object(const json_t *v, const char *expr, size_t len)
{
    json_t *out = json_object();
    size_t i = 0;
    int got;
    struct fields_member m;
    if (!out)
        return NULL;
    while ((got = next_member(expr, len, &i, &m)) >= 0) {
        if (!got)
            continue;
        if (!strcmp(m.name, "*")) {
            const char *k;
            json_t *child;
            json_object_foreach((json_t *)v, k, child)
            {
                json_t *sel = m.sub ? fields_apply(child, m.sub, m.sublen) : json_deep_copy(child);
                if (sel)
                    merge(out, k, sel);
            }
            continue;
        }
        json_t *child = json_object_get(v, m.name);
        if (!child)
            continue;
        json_t *sel = m.sub ? fields_apply(child, m.sub, m.sublen) : json_deep_copy(child);
        if (sel)
            merge(out, m.name, sel);
    }
    return out;
}

json_t *fields_apply(const json_t *v, const char *expr, size_t len)
{
    if (json_is_array(v)) {
        json_t *out = json_array();
        for (size_t i = 0; out && i < json_array_size(v); i++) {
            json_t *sel = fields_apply(json_array_get(v, i), expr, len);
            json_array_append_new(out, sel ? sel : json_object());
        }
        return out;
    }
    if (json_is_object(v))
        return apply_object(v, expr, len);
    return json_deep_copy(v);
}
