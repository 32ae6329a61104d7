#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "json.h"

static void absent_null_and_wrong_type_differ(void **state)
{
    (void)state;
    char err[200];
    const char *doc = "{\"s\":\"x\",\"n\":null,\"i\":5,\"b\":true,\"is\":\"1700000000000\","
                      "\"bad\":\"12x\"}";
    json_t *o = pjson_parse(doc, strlen(doc), err, sizeof err);
    assert_non_null(o);
    const char *s = NULL;
    bool b = false;
    int64_t i = 0;
    assert_int_equal(pjson_get_str(o, "s", &s), PJSON_OK);
    assert_string_equal(s, "x");
    assert_int_equal(pjson_get_str(o, "missing", &s), PJSON_ABSENT);
    assert_int_equal(pjson_get_str(o, "n", &s), PJSON_NULL);
    assert_int_equal(pjson_get_str(o, "i", &s), PJSON_WRONG_TYPE);
    assert_null(pjson_str(o, "n"));
    assert_int_equal(pjson_get_bool(o, "b", &b), PJSON_OK);
    assert_true(b);
    assert_int_equal(pjson_get_bool(o, "s", &b), PJSON_WRONG_TYPE);
    /* A number sent as a string is not silently read as a number, and vice versa. */
    assert_int_equal(pjson_get_int(o, "is", &i), PJSON_WRONG_TYPE);
    assert_int_equal(pjson_get_int_string(o, "is", &i), PJSON_OK);
    assert_true(i == 1700000000000LL);
    assert_int_equal(pjson_get_int_string(o, "bad", &i), PJSON_WRONG_TYPE);
    assert_int_equal(pjson_get_int_string(o, "i", &i), PJSON_WRONG_TYPE);
    json_decref(o);
}

static void parse_errors_say_where(void **state)
{
    (void)state;
    char err[200];
    assert_null(pjson_parse("{\"a\":", 5, err, sizeof err));
    assert_non_null(strstr(err, "line 1"));
    assert_null(pjson_parse("{\"a\":1,\"a\":2}", 13, err, sizeof err));
}

static int scan(const char *doc, const char *name, char *out, size_t outlen)
{
    const char *v = NULL;
    size_t n = 0;
    int found = pjson_scan_member_string(doc, strlen(doc), name, &v, &n);
    if (found)
        snprintf(out, outlen, "%.*s", (int)n, v);
    return found;
}

/* The cursor read from the raw page is the parsed page's, or nothing (then the caller parses). */
static void scan_member_string_reads_only_the_top_level_member(void **state)
{
    (void)state;
    char v[64];
    assert_int_equal(scan("{\"users\":[{\"id\":\"1\"}],\"nextPageToken\":\"abc\"}", "nextPageToken",
                          v, sizeof v),
                     1);
    assert_string_equal(v, "abc");
    assert_int_equal(
        scan(" {\n \"nextPageToken\" : \"t-1\" , \"users\":[]}", "nextPageToken", v, sizeof v), 1);
    assert_string_equal(v, "t-1");
    /* the same name inside an object, an array or a string is not the page's member */
    assert_int_equal(
        scan("{\"users\":[{\"nextPageToken\":\"inner\"}]}", "nextPageToken", v, sizeof v), 0);
    assert_int_equal(scan("{\"a\":{\"nextPageToken\":\"x\"},\"b\":[\"nextPageToken\",\"y\"]}",
                          "nextPageToken", v, sizeof v),
                     0);
    assert_int_equal(scan("{\"a\":\"\\\"nextPageToken\\\":\\\"z\",\"nextPageToken\":\"ok\"}",
                          "nextPageToken", v, sizeof v),
                     1);
    assert_string_equal(v, "ok");
    /* a value named like the member is not a key */
    assert_int_equal(scan("{\"k\":\"nextPageToken\",\"n\":1}", "nextPageToken", v, sizeof v), 0);
    /* unsure: escaped, not a string, twice, truncated, not an object */
    assert_int_equal(scan("{\"nextPageToken\":\"a\\u0041\"}", "nextPageToken", v, sizeof v), 0);
    assert_int_equal(scan("{\"next\\u0050ageToken\":\"a\"}", "nextPageToken", v, sizeof v), 0);
    assert_int_equal(scan("{\"nextPageToken\":null}", "nextPageToken", v, sizeof v), 0);
    assert_int_equal(
        scan("{\"nextPageToken\":\"a\",\"nextPageToken\":\"b\"}", "nextPageToken", v, sizeof v), 0);
    assert_int_equal(scan("{\"nextPageToken\":\"a\"", "nextPageToken", v, sizeof v), 0);
    assert_int_equal(scan("{\"nextPageToken\":\"a", "nextPageToken", v, sizeof v), 0);
    assert_int_equal(scan("[{\"nextPageToken\":\"a\"}]", "nextPageToken", v, sizeof v), 0);
    assert_int_equal(scan("", "nextPageToken", v, sizeof v), 0);
    assert_int_equal(scan("{\"users\":[]}", "nextPageToken", v, sizeof v), 0);
}

/* pjson_dump_compact writes what json_dumps(JSON_COMPACT) writes, byte for byte. */
static void dump_compact_matches_jansson(void **state)
{
    (void)state;
    const char *docs[] = {
        "{}",
        "[]",
        "{\"b\":1,\"a\":[true,false,null],\"c\":{\"d\":\"x\"}}",
        "{\"s\":\"quote \\\" backslash \\\\ nl \\n cr \\r tab \\t ctl \\u0001 slash /\"}",
        "[\"Zo\\u00eb \\u5f20\\u4f1f \\ud83d\\ude00\",\"\"]",
        "[0,-1,9223372036854775807,-9223372036854775808]",
        "[1.0,0.1,-2.5,1e+300,123456789.125,3.0e-7]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_error_t e;
        json_t *v = json_loads(docs[i], JSON_DECODE_ANY, &e);
        assert_non_null(v);
        char *ours = pjson_dump_compact(v);
        char *theirs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        assert_non_null(ours);
        assert_string_equal(ours, theirs);
        free(ours);
        free(theirs);
        json_decref(v);
    }
    /* a bare scalar, and a string holding NUL, which reads back whole */
    json_t *v = json_stringn("a\0b", 3);
    char *text = pjson_dump_compact(v);
    assert_string_equal(text, "\"a\\u0000b\"");
    json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_true(json_equal(v, back));
    free(text);
    json_decref(back);
    json_decref(v);
}

static void dump_compact_refuses_absurd_nesting(void **state)
{
    (void)state;
    json_t *top = json_array(), *cur = top;
    for (int i = 0; i < 3000; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    assert_null(pjson_dump_compact(top));
    assert_null(pjson_dump_compact(NULL));
    json_decref(top);
}

/* The buffer form appends, obeys the buffer's cap and leaves the buffer as it was on failure,
 * so that one buffer can be reused for every statement of a batch. */
static void dump_compact_into_appends_and_fails_cleanly(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 40);
    assert_int_equal(buf_appends(&b, "x="), 0);
    json_t *v = json_pack("{s:i,s:[s,b]}", "a", 1, "b", "q\"", 1);
    assert_int_equal(pjson_dump_compact_into(v, &b), 0);
    assert_string_equal(b.data, "x={\"a\":1,\"b\":[\"q\\\"\",true]}");
    size_t len = b.len;
    json_t *big = json_string("this string does not fit in the 40-byte cap");
    assert_int_equal(pjson_dump_compact_into(big, &b), -1);
    assert_int_equal(b.len, len);
    assert_int_equal(strlen(b.data), len);
    assert_int_equal(pjson_dump_compact_into(NULL, &b), -1);
    assert_int_equal(b.len, len);
    buf_reset(&b);
    assert_int_equal(pjson_dump_compact_into(v, &b), 0);
    assert_string_equal(b.data, "{\"a\":1,\"b\":[\"q\\\"\",true]}");
    json_decref(big);
    json_decref(v);
    buf_free(&b);
}

/* PostgreSQL 15's jsonb::text of the same document (captured from psql): key order (length,
 * then bytes, so the two-byte "é" sorts among two-letter keys), separators and escapes. */
static void dump_jsonb_text_matches_postgresql(void **state)
{
    (void)state;
    const char *doc =
        "{\"b\":1,\"aa\":\"x\\\"y\\\\z\",\"a\":[1,{\"z\":null,\"y\":true}],"
        "\"c\":\"\\u00e9\\u0001\\t\\b\\f\\n\\r\\u001f/\",\"bb\":{},\"d\":[],\"n\":-12,"
        "\"big\":9223372036854775807,\"\\u00e9\":\"k\",\"ab\":false}";
    const char *pg = "{\"a\": [1, {\"y\": true, \"z\": null}], \"b\": 1, "
                     "\"c\": \"\xc3\xa9\\u0001\\t\\b\\f\\n\\r\\u001f/\", \"d\": [], \"n\": -12, "
                     "\"aa\": \"x\\\"y\\\\z\", \"ab\": false, \"bb\": {}, \"\xc3\xa9\": \"k\", "
                     "\"big\": 9223372036854775807}";
    json_t *v = json_loads(doc, 0, NULL);
    assert_non_null(v);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(pjson_dump_jsonb_text(v, &b), 0);
    assert_string_equal(b.data, pg);
    /* what the merger hashes: md5 of that text, as md5(fields::text) in SQL */
    char hex[33];
    crypto_md5_hex("", 0, hex);
    assert_string_equal(hex, "d41d8cd98f00b204e9800998ecf8427e");
    /* reals and NUL are refused, leaving the buffer as it was */
    size_t len = b.len;
    json_t *real = json_pack("{s:f}", "x", 1.5), *nul = json_stringn("a\0b", 3);
    assert_int_equal(pjson_dump_jsonb_text(real, &b), -1);
    assert_int_equal(pjson_dump_jsonb_text(nul, &b), -1);
    assert_int_equal(b.len, len);
    assert_string_equal(b.data, pg);
    json_decref(real);
    json_decref(nul);
    json_decref(v);
    buf_free(&b);
}

/* More documents, each with the text PostgreSQL 15 printed for value::jsonb::text through
 * libpq (tests/integration/test_jsonb_text.c compares thousands more with the live server):
 * every short escape and the \u00xx ones (0x7f printed as is, "\/" as "/"), keys of one
 * length in byte order (multi-byte keys after ASCII ones of equal byte length), the integers
 * at both ends, nesting and empty containers, non-BMP and non-characters, scalars. */
static void dump_jsonb_text_matches_postgresql_on_more_documents(void **state)
{
    (void)state;
    static const struct {
        const char *in, *pg;
    } docs[] = {
        {"\"\\b\\f\\n\\r\\t\\u0001\\u0007\\u000b\\u000e\\u001f\\u007f \\\" \\\\ \\/ /\"",
         "\"\\b\\f\\n\\r\\t\\u0001\\u0007\\u000b\\u000e\\u001f\x7f \\\" \\\\ / /\""},
        {"{\"\\u00e9\":1,\"ab\":2,\"\\u00e9\\u00e9\":3,\"abcd\":4,\"\\ud83d\\ude00\":5,\"z\":6,"
         "\"\":7,\"Z\":8,\"a b\":9,\"\\n\":10,\"\\u0001\":11}",
         "{\"\": 7, \"\\u0001\": 11, \"\\n\": 10, \"Z\": 8, \"z\": 6, \"ab\": 2, \"\xc3\xa9\": 1, "
         "\"a b\": 9, \"abcd\": 4, \"\xc3\xa9\xc3\xa9\": 3, \"\xf0\x9f\x98\x80\": 5}"},
        {"[0,-1,1,9223372036854775807,-9223372036854775808,1000000000000000000,-42]",
         "[0, -1, 1, 9223372036854775807, -9223372036854775808, 1000000000000000000, -42]"},
        {"{\"nested\":{\"b\":{\"bb\":1,\"a\":2},\"a\":[{\"y\":1,\"x\":2}]},\"e\":[{},[],\"\",0,"
         "false,null]}",
         "{\"e\": [{}, [], \"\", 0, false, null], \"nested\": {\"a\": [{\"x\": 2, \"y\": 1}], "
         "\"b\": {\"a\": 2, \"bb\": 1}}}"},
        {"[\"\\u00e9\",\"\\ud83d\\ude00\",\"\\u2028\\u2029\",\"\\ufeff\",\"\\u0085\\u00a0\","
         "\"\\uffff\",\"\\udbff\\udfff\"]",
         "[\"\xc3\xa9\", \"\xf0\x9f\x98\x80\", \"\xe2\x80\xa8\xe2\x80\xa9\", \"\xef\xbb\xbf\", "
         "\"\xc2\x85\xc2\xa0\", \"\xef\xbf\xbf\", \"\xf4\x8f\xbf\xbf\"]"},
        {"null", "null"},
        {"\"plain\"", "\"plain\""},
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_t *v = json_loads(docs[i].in, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(pjson_dump_jsonb_text(v, &b), 0);
        assert_string_equal(b.data, docs[i].pg);
        buf_free(&b);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(absent_null_and_wrong_type_differ),
        cmocka_unit_test(parse_errors_say_where),
        cmocka_unit_test(scan_member_string_reads_only_the_top_level_member),
        cmocka_unit_test(dump_compact_matches_jansson),
        cmocka_unit_test(dump_compact_refuses_absurd_nesting),
        cmocka_unit_test(dump_compact_into_appends_and_fails_cleanly),
        cmocka_unit_test(dump_jsonb_text_matches_postgresql),
        cmocka_unit_test(dump_jsonb_text_matches_postgresql_on_more_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
