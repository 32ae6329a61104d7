/* config: a service's configuration is one table of environment variables, read once at
 * start into the service's own struct. --help prints the same table, and the README's
 * table is checked against it by a test. An empty variable counts as unset. */
#ifndef PANEL_CONFIG_H
#define PANEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cfg_type {
    CFG_STRING, /* char * (malloc'd; freed by cfg_free); may also come from <ENV>_FILE */
    CFG_SECRET, /* char *; never printed; may also come from the file named by <ENV>_FILE */
    CFG_INT,    /* long long within [min, max] */
    CFG_BOOL,   /* bool: true/false/1/0/yes/no/on/off */
};

struct cfg_option {
    const char *env; /* variable name, e.g. "PANEL_PG_URL" */
    enum cfg_type type;
    const char *def;    /* default as text; NULL = required (an error when unset) */
    long long min, max; /* bounds for CFG_INT; for strings the min/max length when > 0 */
    size_t offset;      /* offsetof(service config struct, member) */
    const char *help;   /* one line */
};

#define CFG_OPTS_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Fill cfg from the environment. On error returns -1 with a message naming the variable
 * in err (callers exit with status 2). Strings are owned by cfg: release with cfg_free. */
int cfg_load(const struct cfg_option *opts, size_t n, void *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void cfg_free(const struct cfg_option *opts, size_t n, void *cfg);
/* Print the table (name, type, default, bounds, help) for --help. */
void cfg_print_table(FILE *out, const struct cfg_option *opts, size_t n);
/* Print the table as Markdown rows (used to keep the README in step). */
void cfg_print_markdown(FILE *out, const struct cfg_option *opts, size_t n);

/* Parse helpers shared with other modules. Return 0 or -1. */
int cfg_parse_int(const char *s, long long min, long long max, long long *out)
    __attribute__((warn_unused_result));
int cfg_parse_bool(const char *s, bool *out) __attribute__((warn_unused_result));

#endif
