#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

struct test_cfg {
    char *name;
    long long count;
    bool flag;
    char *secret;
};

static const struct cfg_option opts[] = {
    {"T_NAME", CFG_STRING, "dflt", 0, 10, offsetof(struct test_cfg, name), "a name"},
    {"T_COUNT", CFG_INT, "5", 1, 100, offsetof(struct test_cfg, count), "a count"},
    {"T_FLAG", CFG_BOOL, "false", 0, 0, offsetof(struct test_cfg, flag), "a flag"},
    {"T_SECRET", CFG_SECRET, "", 0, 0, offsetof(struct test_cfg, secret), "a secret"},
};

static int clear_env(void **state)
{
    (void)state;
    unsetenv("T_NAME");
    unsetenv("T_COUNT");
    unsetenv("T_FLAG");
    unsetenv("T_SECRET");
    unsetenv("T_SECRET_FILE");
    return 0;
}

static void defaults_apply(void **state)
{
    (void)state;
    struct test_cfg c = {0};
    char err[256];
    assert_int_equal(cfg_load(opts, CFG_OPTS_COUNT(opts), &c, err, sizeof err), 0);
    assert_string_equal(c.name, "dflt");
    assert_int_equal(c.count, 5);
    assert_false(c.flag);
    cfg_free(opts, CFG_OPTS_COUNT(opts), &c);
}

static void empty_counts_as_unset(void **state)
{
    (void)state;
    struct test_cfg c = {0};
    char err[256];
    setenv("T_COUNT", "", 1);
    setenv("T_FLAG", "yes", 1);
    assert_int_equal(cfg_load(opts, CFG_OPTS_COUNT(opts), &c, err, sizeof err), 0);
    assert_int_equal(c.count, 5);
    assert_true(c.flag);
    cfg_free(opts, CFG_OPTS_COUNT(opts), &c);
}

static void bad_values_name_the_variable(void **state)
{
    (void)state;
    struct test_cfg c = {0};
    char err[256];
    setenv("T_COUNT", "101", 1);
    assert_int_equal(cfg_load(opts, CFG_OPTS_COUNT(opts), &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "T_COUNT"));
    setenv("T_COUNT", "12abc", 1);
    assert_int_equal(cfg_load(opts, CFG_OPTS_COUNT(opts), &c, err, sizeof err), -1);
    setenv("T_COUNT", "7", 1);
    setenv("T_FLAG", "maybe", 1);
    assert_int_equal(cfg_load(opts, CFG_OPTS_COUNT(opts), &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "T_FLAG"));
    setenv("T_FLAG", "0", 1);
    setenv("T_NAME", "much-too-long-name", 1);
    assert_int_equal(cfg_load(opts, CFG_OPTS_COUNT(opts), &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "T_NAME"));
    cfg_free(opts, CFG_OPTS_COUNT(opts), &c);
}

static void short_secret_refused(void **state)
{
    (void)state;
    struct test_cfg c = {0};
    char err[256];
    const struct cfg_option strict[] = {
        {"T_SECRET", CFG_SECRET, NULL, 16, 64, offsetof(struct test_cfg, secret), "a secret"},
    };
    setenv("T_SECRET", "fifteen-chars-x", 1);
    assert_int_equal(cfg_load(strict, 1, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "T_SECRET is shorter than 16"));
    assert_null(strstr(err, "fifteen-chars-x"));
    setenv("T_SECRET", "sixteen-chars-xx", 1);
    assert_int_equal(cfg_load(strict, 1, &c, err, sizeof err), 0);
    assert_string_equal(c.secret, "sixteen-chars-xx");
    cfg_free(strict, 1, &c);
}

static void secret_from_file(void **state)
{
    (void)state;
    struct test_cfg c = {0};
    char err[256], path[] = "/tmp/panel-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("s3cret\n", f);
    fclose(f);
    setenv("T_SECRET_FILE", path, 1);
    assert_int_equal(cfg_load(opts, CFG_OPTS_COUNT(opts), &c, err, sizeof err), 0);
    assert_string_equal(c.secret, "s3cret");
    unlink(path);
    setenv("T_SECRET_FILE", "/nonexistent/secret", 1);
    assert_int_equal(cfg_load(opts, CFG_OPTS_COUNT(opts), &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "T_SECRET_FILE"));
    cfg_free(opts, CFG_OPTS_COUNT(opts), &c);
}

static void help_never_prints_secret_values(void **state)
{
    (void)state;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    cfg_print_table(f, opts, CFG_OPTS_COUNT(opts));
    fclose(f);
    assert_non_null(strstr(out, "T_COUNT"));
    assert_non_null(strstr(out, "1..100"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(defaults_apply, clear_env),
        cmocka_unit_test_setup(empty_counts_as_unset, clear_env),
        cmocka_unit_test_setup(bad_values_name_the_variable, clear_env),
        cmocka_unit_test_setup(short_secret_refused, clear_env),
        cmocka_unit_test_setup(secret_from_file, clear_env),
        cmocka_unit_test_setup(help_never_prints_secret_values, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
