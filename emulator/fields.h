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

#endif
