#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG_SECRET_FILE_MAX 8192

int cfg_parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end = NULL;
    if (!s || !*s)
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Read a secret from a mounted file (Kubernetes Secret volume); trailing newlines dropped. */
static char *read_secret_file(const char *path, char *err, size_t errlen, const char *env)
{
    char *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s_FILE: cannot open %s: %s", env, path, strerror(errno));
        return NULL;
    }
    data = calloc(1, CFG_SECRET_FILE_MAX + 1);
    if (!data)
        goto out;
    size_t n = fread(data, 1, CFG_SECRET_FILE_MAX + 1, f);
    if (n > CFG_SECRET_FILE_MAX) {
        snprintf(err, errlen, "%s_FILE: %s is larger than %d bytes", env, path,
                 CFG_SECRET_FILE_MAX);
        free(data);
        data = NULL;
        goto out;
    }
    data[n] = '\0';
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
        data[--n] = '\0';
out:
    fclose(f);
    return data;
}

int cfg_load(const struct cfg_option *opts, size_t n, void *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const struct cfg_option *o = &opts[i];
        char *field = (char *)cfg + o->offset;
        const char *val = getenv(o->env);
        char *from_file = NULL;
        if (val && !*val)
            val = NULL;
        /* Strings may come from a mounted file (Kubernetes Secrets, Docker secrets). */
        if (!val && (o->type == CFG_SECRET || o->type == CFG_STRING)) {
            char fname[160];
            snprintf(fname, sizeof fname, "%s_FILE", o->env);
            const char *path = getenv(fname);
            if (path && *path) {
                from_file = read_secret_file(path, err, errlen, o->env);
                if (!from_file)
                    return -1;
                val = from_file;
            }
        }
        if (!val)
            val = o->def;
        if (!val) {
            snprintf(err, errlen, "%s is required (%s)", o->env, o->help);
            return -1;
        }
        switch (o->type) {
        case CFG_STRING:
        case CFG_SECRET: {
            if (o->max > 0 && strlen(val) > (size_t)o->max) {
                snprintf(err, errlen, "%s is longer than %lld characters", o->env, o->max);
                free(from_file);
                return -1;
            }
            /* A set value that is too short (a guessable secret) is refused; the value itself
             * is never printed. */
            if (o->min > 0 && strlen(val) < (size_t)o->min) {
                snprintf(err, errlen, "%s is shorter than %lld characters", o->env, o->min);
                free(from_file);
                return -1;
            }
            char *copy = from_file ? from_file : strdup(val);
            if (!copy) {
                snprintf(err, errlen, "%s: out of memory", o->env);
                return -1;
            }
            char **slot = (char **)(void *)field;
            free(*slot);
            *slot = copy;
            break;
        }
        case CFG_INT: {
            long long v;
            if (cfg_parse_int(val, o->min, o->max, &v) != 0) {
                snprintf(err, errlen, "%s=%s is not a whole number from %lld to %lld", o->env, val,
                         o->min, o->max);
                return -1;
            }
            memcpy(field, &v, sizeof v);
            break;
        }
        case CFG_BOOL: {
            bool b;
            if (cfg_parse_bool(val, &b) != 0) {
                snprintf(err, errlen, "%s=%s is not a boolean (true/false)", o->env, val);
                return -1;
            }
            memcpy(field, &b, sizeof b);
            break;
        }
        }
    }
    return 0;
}

void cfg_free(const struct cfg_option *opts, size_t n, void *cfg)
{
    for (size_t i = 0; i < n; i++) {
        if (opts[i].type == CFG_STRING || opts[i].type == CFG_SECRET) {
            char **slot = (char **)(void *)((char *)cfg + opts[i].offset);
            free(*slot);
            *slot = NULL;
        }
    }
}

static const char *type_name(enum cfg_type t)
{
    switch (t) {
    case CFG_STRING:
        return "string";
    case CFG_SECRET:
        return "secret";
    case CFG_INT:
        return "integer";
    case CFG_BOOL:
        return "boolean";
    }
    return "?";
}

void cfg_print_table(FILE *out, const struct cfg_option *opts, size_t n)
{
    fprintf(out, "Environment variables (an empty value counts as unset):\n");
    for (size_t i = 0; i < n; i++) {
        const struct cfg_option *o = &opts[i];
        fprintf(out, "  %-34s %-8s default: %s", o->env, type_name(o->type),
                o->def ? (*o->def ? o->def : "(empty)") : "(required)");
        if (o->type == CFG_INT)
            fprintf(out, "  range: %lld..%lld", o->min, o->max);
        fprintf(out, "\n      %s%s\n", o->help,
                o->type == CFG_SECRET ? " (or a file named by <NAME>_FILE)" : "");
    }
}

void cfg_print_markdown(FILE *out, const struct cfg_option *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct cfg_option *o = &opts[i];
        fprintf(out, "| `%s` | %s | %s | %s |\n", o->env, type_name(o->type),
                o->def ? (*o->def ? o->def : "(empty)") : "(required)", o->help);
    }
}
