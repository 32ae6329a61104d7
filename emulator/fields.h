/* fields: Google's partial-response selector (?fields=nextPageToken,users(id,name/fullName)). */
#ifndef EMU_FIELDS_H
#define EMU_FIELDS_H

#include <jansson.h>
#include <stddef.h>

/* Whether expr is well formed (balanced parentheses, names of [A-Za-z0-9_@#$*]). */
int fields_valid(const char *expr);
/* A new value holding only the selected parts of v (arrays are filtered element-wise).
 * NULL when nothing is selected or memory ran out. */
json_t *fields_apply(const json_t *v, const char *expr, size_t len);

/* One top-level member of an expression: its name and what it selects below (sub NULL: the
 * whole value). sub points into the expression. */
struct fields_member {
    char name[128];
    const char *sub;
    size_t sublen;
};
/* The top-level members of expr in order (unusable names skipped as fields_apply skips them),
 * or -1 when they are not distinct plain names (a '*', a name twice: fields_apply merges
 * those) or more than max: the caller then filters the whole value with fields_apply. Lets
 * a page be filtered member by member, its items one at a time. */
int fields_members(const char *expr, size_t len, struct fields_member *out, int max);

#endif
