#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "ids.h"

static void tenant_ids(void **state)
{
    (void)state;
    char longest[IDS_TENANT_MAX + 2];
    assert_true(ids_tenant_valid("district-a"));
    assert_true(ids_tenant_valid("d1.k12_x-y"));
    assert_true(ids_tenant_valid("7"));
    assert_false(ids_tenant_valid(NULL));
    assert_false(ids_tenant_valid(""));
    assert_false(ids_tenant_valid("-a"));
    assert_false(ids_tenant_valid(".a"));
    assert_false(ids_tenant_valid("a b"));
    assert_false(ids_tenant_valid("a/b"));
    assert_false(ids_tenant_valid("a%2f"));
    assert_false(ids_tenant_valid("a'b"));
    assert_false(ids_tenant_valid("\xc3\xa9t\xc3\xa9"));
    memset(longest, 'a', IDS_TENANT_MAX);
    longest[IDS_TENANT_MAX] = '\0';
    assert_true(ids_tenant_valid(longest));
    longest[IDS_TENANT_MAX] = 'a';
    longest[IDS_TENANT_MAX + 1] = '\0';
    assert_false(ids_tenant_valid(longest));
}

static void letters_digits_and_hex_digits_of_n_bytes(void **state)
{
    (void)state;
    assert_true(ids_chars_alnum("Grade_7-b", 9, "_-"));
    assert_true(ids_chars_alnum("", 0, ""));
    assert_true(ids_chars_alnum("ab-", 2, "")); /* only the n bytes are read */
    assert_false(ids_chars_alnum("Grade_7-b", 9, "_"));
    assert_false(ids_chars_alnum("a b", 3, "_-"));
    assert_false(ids_chars_alnum("a\0b", 3, "_-")); /* NUL is in every string's set */
    assert_false(ids_chars_alnum("\xc3\xa9", 2, "_"));
    assert_true(ids_chars_hex("09afAF", 6));
    assert_false(ids_chars_hex("0g", 2));
    assert_false(ids_chars_hex("a-", 2));
}

static void directory_ids(void **state)
{
    (void)state;
    char longest[IDS_DIRECTORY_MAX + 2];
    assert_true(ids_directory_valid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
    assert_true(ids_directory_valid("contoso.onmicrosoft.com"));
    assert_false(ids_directory_valid(NULL));
    assert_false(ids_directory_valid(""));
    assert_false(ids_directory_valid(".."));
    assert_false(ids_directory_valid("../common"));
    assert_false(ids_directory_valid("a..b"));
    assert_false(ids_directory_valid("-a"));
    assert_false(ids_directory_valid("a/b"));
    assert_false(ids_directory_valid("a_b"));
    assert_false(ids_directory_valid("a?x=1"));
    memset(longest, 'a', IDS_DIRECTORY_MAX);
    longest[IDS_DIRECTORY_MAX] = '\0';
    assert_true(ids_directory_valid(longest));
    longest[IDS_DIRECTORY_MAX] = 'a';
    longest[IDS_DIRECTORY_MAX + 1] = '\0';
    assert_false(ids_directory_valid(longest));
}

static void uuids(void **state)
{
    (void)state;
    assert_true(ids_uuid_valid("123e4567-e89b-12d3-a456-426614174000"));
    assert_true(ids_uuid_valid("123E4567-E89B-12D3-A456-426614174000"));
    assert_false(ids_uuid_valid(NULL));
    assert_false(ids_uuid_valid(""));
    assert_false(ids_uuid_valid("123e4567e89b12d3a456426614174000"));
    assert_false(ids_uuid_valid("123e4567-e89b-12d3-a456-42661417400"));
    assert_false(ids_uuid_valid("123e4567-e89b-12d3-a456-4266141740000"));
    assert_false(ids_uuid_valid("123e4567-e89b-12d3-a456-42661417400g"));
    assert_false(ids_uuid_valid("123e4567-e89b-12d3-a456+426614174000"));
    assert_false(ids_uuid_valid("123e4567-e89b-12d3-a4566-26614174000"));
}

static void utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        bool ok;
    } cases[] = {
        {"plain ascii", 11, true},
        {"\xc3\xa9", 2, true},              /* é */
        {"\xe2\x82\xac", 3, true},          /* € */
        {"\xf0\x9f\x98\x80", 4, true},      /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, true},      /* U+10FFFF, the last code point */
        {"\xc3", 1, false},                 /* cut short */
        {"\xe2\x82", 2, false},             /* cut short */
        {"\xc0\xaf", 2, false},             /* overlong '/' */
        {"\xe0\x80\xaf", 3, false},         /* overlong '/' */
        {"\xf0\x80\x80\xaf", 4, false},     /* overlong '/' */
        {"\xed\xa0\x80", 3, false},         /* a surrogate */
        {"\xf4\x90\x80\x80", 4, false},     /* past U+10FFFF */
        {"\xf8\x88\x80\x80\x80", 5, false}, /* five-byte form */
        {"\x80", 1, false},                 /* a lone continuation byte */
        {"\xc3\x28", 2, false},             /* a lead byte without its continuation */
        {"a\0b", 3, false},                 /* NUL inside */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(ids_utf8_valid(cases[i].s, cases[i].n), cases[i].ok);
    assert_true(ids_utf8_valid("", 0));
    /* Only the n bytes given are read. */
    assert_true(ids_utf8_valid("ab\xc3", 2));
    assert_false(ids_utf8_valid(NULL, 0));
}

static void email_normalization(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(
        ids_email_normalize("  Ada.Lovelace@District.K12.EXAMPLE\r\n", out, sizeof out), 0);
    assert_string_equal(out, "ada.lovelace@district.k12.example");
    assert_int_equal(ids_email_normalize("\t\vX@Y\f", out, sizeof out), 0);
    assert_string_equal(out, "x@y");
    /* Only ASCII letters are lowered: the bytes of "É" stay as they are. */
    assert_int_equal(ids_email_normalize("\xc3\x89MILE@x.example", out, sizeof out), 0);
    assert_string_equal(out, "\xc3\x89mile@x.example");
    assert_int_equal(ids_email_normalize("   ", out, sizeof out), -1);
    assert_int_equal(ids_email_normalize("", out, sizeof out), -1);
    assert_int_equal(ids_email_normalize(NULL, out, sizeof out), -1);
    assert_int_equal(ids_email_normalize("abcd", out, 4), -1);
    assert_int_equal(ids_email_normalize(" abc ", out, 4), 0);
    assert_string_equal(out, "abc");
}

static void email_validity(void **state)
{
    (void)state;
    char longest[IDS_EMAIL_MAX + 2];
    assert_true(ids_email_valid("admin@demo.k12.example"));
    assert_true(ids_email_valid("a@b"));
    assert_false(ids_email_valid(NULL));
    assert_false(ids_email_valid("admin"));
    assert_false(ids_email_valid("@x"));
    assert_false(ids_email_valid("a@"));
    assert_false(ids_email_valid("a@b@c"));
    assert_false(ids_email_valid("a b@c"));
    assert_false(ids_email_valid("a\n@c"));
    assert_false(ids_email_valid("\"a\"@c"));
    assert_false(ids_email_valid("a\\b@c"));
    assert_false(ids_email_valid("a\x7f@c"));
    memset(longest, 'a', IDS_EMAIL_MAX);
    longest[1] = '@';
    longest[IDS_EMAIL_MAX] = '\0';
    assert_true(ids_email_valid(longest));
    longest[IDS_EMAIL_MAX] = 'a';
    longest[IDS_EMAIL_MAX + 1] = '\0';
    assert_false(ids_email_valid(longest));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tenant_ids),
        cmocka_unit_test(letters_digits_and_hex_digits_of_n_bytes),
        cmocka_unit_test(directory_ids),
        cmocka_unit_test(uuids),
        cmocka_unit_test(utf8),
        cmocka_unit_test(email_normalization),
        cmocka_unit_test(email_validity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
