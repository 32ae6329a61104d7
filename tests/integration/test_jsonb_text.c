/* pjson_dump_jsonb_text (lib/json.h) against the real PostgreSQL started by tests/run.py
 * (PANEL_PG_URL): for the seeds of the jsonb_text fuzz target, a list of tricky documents and
 * a few thousand generated values (escapes, control characters, every UTF-8 length, keys that
 * sort by length then bytes, nesting, the integers it accepts), its text must equal the
 * server's own value::jsonb::text byte for byte (the merger compares md5 of both). A string
 * holding NUL must be refused by both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "pg.h"

#define CORPUS_DIR "tests/fuzz/corpus/jsonb_text"
#define GENERATED  3000

static PGconn *pg;

static int setup(void **state)
{
    (void)state;
    char err[512];
    const char *url = getenv("PANEL_PG_URL");
    if (!url || !*url)
        fail_msg("PANEL_PG_URL is not set: run through tests/run.py (it starts PostgreSQL)");
    pg = pgx_connect(url, 30, err, sizeof err);
    if (!pg)
        fail_msg("%s", err);
    /* jsonb keeps non-ASCII text as is only in a UTF-8 database (the project's own) */
    PGresult *res = PQexec(pg, "SHOW server_encoding");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "UTF8");
    PQclear(res);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(pg);
    return 0;
}

/* Compare v's text with the server's for the same value (sent as jansson's compact text).
 * Returns 1 compared, 0 refused by both (NUL), fails the test on any difference. */
static int compare_with_server(const json_t *v, const char *label)
{
    struct buf ours;
    buf_init(&ours, 0);
    char *sent = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(sent);
    int rc = pjson_dump_jsonb_text(v, &ours);
    const char *p[1] = {sent};
    PGresult *res = PQexecParams(pg, "SELECT $1::jsonb::text", 1, NULL, p, NULL, NULL, 0);
    int compared = 0;
    if (rc != 0) {
        /* refused here: the server refuses it too (\u0000 is not valid in jsonb) */
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            fail_msg("%s: refused here, the server prints %s (sent %s)", label,
                     PQgetvalue(res, 0, 0), sent);
    } else {
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            fail_msg("%s: the server refused %s: %s", label, sent, PQresultErrorMessage(res));
        if (strcmp(PQgetvalue(res, 0, 0), ours.data) != 0)
            fail_msg("%s: differs for %s\n  server: %s\n  ours:   %s", label, sent,
                     PQgetvalue(res, 0, 0), ours.data);
        compared = 1;
    }
    PQclear(res);
    free(sent);
    buf_free(&ours);
    return compared;
}

static void fixed_documents_print_as_the_server_does(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"b\":1,\"aa\":\"x\\\"y\\\\z\",\"a\":[1,{\"z\":null,\"y\":true}],\"bb\":{},\"d\":[]}",
        "\"\\b\\f\\n\\r\\t\\u0001\\u0007\\u000b\\u000e\\u001f\\u007f \\\" \\\\ \\/ /\"",
        "[\"\\u00e9\",\"\\ud83d\\ude00\",\"\\u2028\\u2029\",\"\\ufeff\",\"\\u0085\\u00a0\","
        "\"\\uffff\",\"\\udbff\\udfff\",\"\xe6\x97\xa5\xe6\x9c\xac\"]",
        "{\"\\u00e9\":1,\"ab\":2,\"\\u00e9\\u00e9\":3,\"abcd\":4,\"\\ud83d\\ude00\":5,\"z\":6,"
        "\"\":7,\"Z\":8,\"a b\":9,\"\\n\":10,\"\\u0001\":11}",
        "[0,-1,1,9223372036854775807,-9223372036854775808,1000000000000000000,-42]",
        "{\"a\":[[[[[[[[[[[[[[[[[[[[{\"b\":[{\"c\":null}]}]]]]]]]]]]]]]]]]]]]]}",
        "null",
        "true",
        "\"\"",
        "{}",
        "[]",
        "[{},[],\"\",0,false,null]",
        "{\"nested\":{\"b\":{\"bb\":1,\"a\":2},\"a\":[{\"y\":1,\"x\":2}]}}",
        "\"a\\u0000b\"",
        "{\"k\":\"\\u0000\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_error_t je;
        json_t *v = json_loads(docs[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!v)
            fail_msg("document %zu does not parse: %s", i, je.text);
        char label[32];
        snprintf(label, sizeof label, "document %zu", i);
        compare_with_server(v, label);
        json_decref(v);
    }
}

static bool holds_real(const json_t *v)
{
    const char *key;
    json_t *member;
    size_t i;
    if (json_is_real(v))
        return true;
    if (json_is_array(v))
        json_array_foreach((json_t *)v, i, member) if (holds_real(member)) return true;
    if (json_is_object(v))
        json_object_foreach((json_t *)v, key, member) if (holds_real(member)) return true;
    return false;
}

static void fuzz_seeds_print_as_the_server_does(void **state)
{
    (void)state;
    DIR *d = opendir(CORPUS_DIR);
    if (!d)
        fail_msg("cannot open %s (tests run from the repository root)", CORPUS_DIR);
    int compared = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", CORPUS_DIR, e->d_name);
        json_t *v = json_load_file(path, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!v)
            continue; /* a seed may be invalid JSON on purpose */
        /* reals are refused by design (numeric's text form is not reproduced) */
        if (!holds_real(v))
            compared += compare_with_server(v, e->d_name);
        json_decref(v);
    }
    closedir(d);
    assert_true(compared >= 5);
}

/* ------------------------------------------------------------------ generated values */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A code point from one of the classes that print differently (never NUL or a surrogate). */
static uint32_t code_point(void)
{
    static const uint32_t special[] = {'"',    '\\',   '/',     '\b',     '\f',   '\n',
                                       '\r',   '\t',   0x01,    0x1f,     0x7f,   0x80,
                                       0x85,   0xa0,   0xe9,    0x2028,   0x2029, 0xfeff,
                                       0xfffd, 0xffff, 0x1f600, 0x10ffff, 0xd7ff, 0xe000};
    switch (next() % 6) {
    case 0:
        return special[next() % (sizeof special / sizeof special[0])];
    case 1:
        return 1 + (uint32_t)(next() % 0x1f); /* a control character */
    case 2: {
        uint32_t cp = 0x80 + (uint32_t)(next() % (0x10000 - 0x80));
        return cp >= 0xd800 && cp <= 0xdfff ? 0xe9 : cp;
    }
    case 3:
        return 0x10000 + (uint32_t)(next() % 0x100000);
    default:
        return 0x20 + (uint32_t)(next() % 0x5f); /* printable ASCII */
    }
}

static json_t *gen_string(size_t maxlen)
{
    char s[256];
    size_t n = 0, want = next() % (maxlen + 1);
    for (size_t i = 0; i < want && n + 4 < sizeof s; i++)
        n += put_utf8(s + n, code_point());
    return json_stringn(s, n);
}

static json_t *gen_value(int depth)
{
    static const json_int_t ints[] = {0,
                                      1,
                                      -1,
                                      9,
                                      10,
                                      -10,
                                      255,
                                      65536,
                                      2147483647,
                                      -2147483648LL,
                                      4294967296LL,
                                      9007199254740993LL,
                                      INT64_MAX,
                                      INT64_MIN};
    unsigned kind = (unsigned)(next() % (depth >= 6 ? 5 : 8));
    switch (kind) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(next() & 1);
    case 2:
        return next() & 1 ? json_integer(ints[next() % (sizeof ints / sizeof ints[0])])
                          : json_integer((json_int_t)next());
    case 3:
    case 4:
        return gen_string(12);
    case 5:
    case 6: {
        json_t *o = json_object();
        size_t n = next() % 7;
        for (size_t i = 0; i < n; i++) {
            json_t *k = gen_string(3); /* short keys: many of one length, sorted by bytes */
            json_object_set_new(o, json_string_value(k), gen_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    default: {
        json_t *a = json_array();
        size_t n = next() % 6;
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, gen_value(depth + 1));
        return a;
    }
    }
}

static void generated_values_print_as_the_server_does(void **state)
{
    (void)state;
    int compared = 0;
    for (int i = 0; i < GENERATED; i++) {
        json_t *v = gen_value(0);
        assert_non_null(v);
        char label[32];
        snprintf(label, sizeof label, "generated value %d", i);
        compared += compare_with_server(v, label);
        json_decref(v);
    }
    assert_int_equal(compared, GENERATED); /* no NUL and no real is ever generated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixed_documents_print_as_the_server_does),
        cmocka_unit_test(fuzz_seeds_print_as_the_server_does),
        cmocka_unit_test(generated_values_print_as_the_server_does),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
