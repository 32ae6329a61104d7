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

static json_t *apply_object(const json_t *v, const char *expr, size_t len)
{
    json_t *out = json_object();
    size_t i = 0;
    if (!out)
        return NULL;
    while (i < len) {
        /* one top-level item: up to a comma at depth 0 */
        size_t start = i;
        int depth = 0;
        while (i < len && !(expr[i] == ',' && depth == 0)) {
            if (expr[i] == '(')
                depth++;
            else if (expr[i] == ')')
                depth--;
            i++;
        }
        size_t end = i;
        i++; /* skip the comma */
        while (start < end && expr[start] == ' ')
            start++;
        size_t nend = start;
        while (nend < end && expr[nend] != '/' && expr[nend] != '(')
            nend++;
        char name[128];
        size_t nl = nend - start;
        while (nl && expr[start + nl - 1] == ' ')
            nl--;
        if (!nl || nl >= sizeof name)
            continue;
        memcpy(name, expr + start, nl);
        name[nl] = '\0';
        const char *sub = NULL;
        size_t sublen = 0;
        if (nend < end && expr[nend] == '/') {
            sub = expr + nend + 1;
            sublen = end - nend - 1;
        } else if (nend < end && expr[nend] == '(') {
            sub = expr + nend + 1;
            sublen = end - nend - 1;
            if (sublen && sub[sublen - 1] == ')')
                sublen--;
        }
        if (!strcmp(name, "*")) {
            const char *k;
            json_t *child;
            json_object_foreach((json_t *)v, k, child)
            {
                json_t *sel = sub ? fields_apply(child, sub, sublen) : json_deep_copy(child);
                if (sel)
                    merge(out, k, sel);
            }
            continue;
        }
        json_t *child = json_object_get(v, name);
        if (!child)
            continue;
        json_t *sel = sub ? fields_apply(child, sub, sublen) : json_deep_copy(child);
        if (sel)
            merge(out, name, sel);
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
