/* Google partial responses (?fields=). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fields.h"

#include <stdlib.h>
#include <string.h>

static char *apply(const char *doc, const char *expr)
{
    json_t *v = json_loads(doc, 0, NULL);
    assert_non_null(v);
    json_t *out = fields_apply(v, expr, strlen(expr));
    char *s = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(v);
    json_decref(out);
    return s;
}

static const char *page = "{\"kind\":\"k\",\"nextPageToken\":\"t\",\"users\":["
                          "{\"id\":\"1\",\"primaryEmail\":\"a@x\",\"name\":{\"givenName\":\"A\","
                          "\"familyName\":\"B\",\"fullName\":\"A B\"},\"suspended\":false},"
                          "{\"id\":\"2\",\"primaryEmail\":\"c@x\",\"name\":{\"givenName\":\"C\","
                          "\"familyName\":\"D\",\"fullName\":\"C D\"}}]}";

static void test_nested_selection(void **state)
{
    (void)state;
    char *s = apply(page, "nextPageToken,users(id,name/fullName)");
    assert_string_equal(s,
                        "{\"nextPageToken\":\"t\",\"users\":[{\"id\":\"1\",\"name\":{"
                        "\"fullName\":\"A B\"}},{\"id\":\"2\",\"name\":{\"fullName\":\"C D\"}}]}");
    free(s);
    s = apply(page, "users(name/givenName,name/familyName)");
    assert_string_equal(s, "{\"users\":[{\"name\":{\"familyName\":\"B\",\"givenName\":\"A\"}},"
                           "{\"name\":{\"familyName\":\"D\",\"givenName\":\"C\"}}]}");
    free(s);
    s = apply(page, "users/primaryEmail");
    assert_string_equal(s, "{\"users\":[{\"primaryEmail\":\"a@x\"},{\"primaryEmail\":\"c@x\"}]}");
    free(s);
}

static void test_missing_and_wildcard(void **state)
{
    (void)state;
    char *s = apply(page, "users(suspended)");
    /* an element without the field becomes an empty object, nothing is invented */
    assert_string_equal(s, "{\"users\":[{\"suspended\":false},{}]}");
    free(s);
    s = apply(page, "kind,nothing");
    assert_string_equal(s, "{\"kind\":\"k\"}");
    free(s);
    s = apply("{\"a\":{\"b\":1,\"c\":2}}", "a(*)");
    assert_string_equal(s, "{\"a\":{\"b\":1,\"c\":2}}");
    free(s);
}

static void test_valid(void **state)
{
    (void)state;
    assert_true(fields_valid("nextPageToken,users(id,name/fullName)"));
    assert_false(fields_valid("users(id"));
    assert_false(fields_valid("users)id("));
    assert_false(fields_valid(""));
    assert_false(fields_valid("users;drop"));
}

static void test_members(void **state)
{
    (void)state;
    struct fields_member m[4];
    const char *e = "nextPageToken, users(id,name/fullName),etag/x,";
    assert_int_equal(fields_members(e, strlen(e), m, 4), 3);
    assert_string_equal(m[0].name, "nextPageToken");
    assert_null(m[0].sub);
    assert_string_equal(m[1].name, "users");
    assert_int_equal(m[1].sublen, strlen("id,name/fullName"));
    assert_memory_equal(m[1].sub, "id,name/fullName", m[1].sublen);
    assert_string_equal(m[2].name, "etag");
    assert_memory_equal(m[2].sub, "x", m[2].sublen);
    /* what fields_apply merges or expands is left to it */
    e = "users(id),users(name)";
    assert_int_equal(fields_members(e, strlen(e), m, 4), -1);
    e = "kind,*";
    assert_int_equal(fields_members(e, strlen(e), m, 4), -1);
    e = "a,b,c,d,e";
    assert_int_equal(fields_members(e, strlen(e), m, 4), -1);
    /* a member's selection is fields_apply's selection of that member */
    json_t *v = json_loads(page, 0, NULL);
    e = "users(id,name/fullName)";
    assert_int_equal(fields_members(e, strlen(e), m, 4), 1);
    json_t *one =
        fields_apply(json_array_get(json_object_get(v, "users"), 0), m[0].sub, m[0].sublen);
    json_t *all = fields_apply(v, e, strlen(e));
    assert_true(json_equal(one, json_array_get(json_object_get(all, "users"), 0)));
    json_decref(one);
    json_decref(all);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested_selection),
        cmocka_unit_test(test_missing_and_wildcard),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
