/* lib/pg's binary COPY rows (pgx_copy): the exact bytes PostgreSQL's binary COPY format
 * expects, bytes no text format could carry unescaped passed as they are, uuids as 16 bytes,
 * and every malformed use refused before anything reaches a database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

static const unsigned char header[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n',
                                         0,   0,   0,   0,   0,   0,   0,    0,    0};

static void rows_are_length_prefixed_bytes_after_the_header(void **state)
{
    (void)state;
    struct pgx_copy c;
    pgx_copy_init(&c, 0);
    /* tab, newline, backslash, carriage return and a NUL: delimiters and escapes of the text
     * format, here plain bytes */
    const char text[] = "a\tb\nc\\d\re";
    const unsigned char bytea[] = {0x00, 0xff, '\\', 'x', '\t', 0x0a};
    assert_int_equal(pgx_copy_row(&c, 3), 0);
    assert_int_equal(pgx_copy_text(&c, text), 0);
    assert_int_equal(pgx_copy_bytes(&c, bytea, sizeof bytea), 0);
    assert_int_equal(pgx_copy_text(&c, NULL), 0);
    assert_int_equal(pgx_copy_row(&c, 1), 0);
    assert_int_equal(pgx_copy_text(&c, ""), 0);
    assert_int_equal(c.rows, 2);

    unsigned char want[128];
    size_t n = 0;
    memcpy(want, header, sizeof header);
    n += sizeof header;
    want[n++] = 0, want[n++] = 3; /* 3 fields */
    want[n++] = 0, want[n++] = 0, want[n++] = 0, want[n++] = (unsigned char)strlen(text);
    memcpy(want + n, text, strlen(text));
    n += strlen(text);
    want[n++] = 0, want[n++] = 0, want[n++] = 0, want[n++] = sizeof bytea;
    memcpy(want + n, bytea, sizeof bytea);
    n += sizeof bytea;
    memset(want + n, 0xff, 4); /* NULL: length -1 */
    n += 4;
    want[n++] = 0, want[n++] = 1;                               /* 1 field */
    want[n++] = 0, want[n++] = 0, want[n++] = 0, want[n++] = 0; /* empty, not NULL */
    assert_int_equal(c.data.len, n);
    assert_memory_equal(c.data.data, want, n);
    pgx_copy_free(&c);
}

static void a_uuid_is_its_16_bytes(void **state)
{
    (void)state;
    static const unsigned char want[16] = {0x6f, 0x1c, 0x2e, 0x8a, 0x01, 0x23, 0x45, 0x67,
                                           0x89, 0xab, 0xcd, 0xef, 0xAB, 0xCD, 0xEF, 0x09};
    const char *forms[] = {"6f1c2e8a-0123-4567-89ab-cdefabcdef09",
                           "6F1C2E8A-0123-4567-89AB-CDEFABCDEF09",
                           "6f1c2e8a0123456789abcdefabcdef09"};
    for (int i = 0; i < 3; i++) {
        struct pgx_copy c;
        pgx_copy_init(&c, 0);
        const char *s = forms[i];
        assert_int_equal(pgx_copy_row(&c, 1), 0);
        assert_int_equal(pgx_copy_uuid(&c, s), 0);
        size_t at = sizeof header + 2;
        assert_int_equal(c.data.len, at + 4 + 16);
        assert_int_equal((unsigned char)c.data.data[at + 3], 16);
        assert_memory_equal(c.data.data + at + 4, want, 16);
        pgx_copy_free(&c);
    }
}

static void malformed_fields_are_refused_and_the_rows_not_sent(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "6f1c2e8a-0123-4567-89ab-cdefabcdef0",   /* short */
                         "6f1c2e8a-0123-4567-89ab-cdefabcdef091", /* long */
                         "6f1c2e8a_0123-4567-89ab-cdefabcdef09",  /* not a hyphen */
                         "6f1c2e8a-0123-4567-89ab-cdefabcdef0g",  /* not hex */
                         "6f1c2e8a-0123-4567-89ab\t-defabcdef09",
                         NULL};
    char err[256];
    for (int i = 0; i < 7; i++) {
        struct pgx_copy c;
        pgx_copy_init(&c, 0);
        assert_int_equal(pgx_copy_row(&c, 1), 0);
        assert_int_equal(pgx_copy_uuid(&c, bad[i]), -1);
        /* refused before the database: a NULL connection is never used */
        assert_int_equal(pgx_copy_send(NULL, "COPY x FROM STDIN", &c, NULL, err, sizeof err), -1);
        assert_non_null(strstr(err, "refused"));
        pgx_copy_free(&c);
    }

    struct pgx_copy c;
    pgx_copy_init(&c, 0);
    assert_int_equal(pgx_copy_bytes(&c, "x", 1), -1); /* a field before any row */
    pgx_copy_reset(&c);
    assert_int_equal(pgx_copy_row(&c, 2), 0);
    assert_int_equal(pgx_copy_text(&c, "one"), 0);
    /* an incomplete row: neither a new row nor sending */
    assert_int_equal(pgx_copy_send(NULL, "COPY x FROM STDIN", &c, NULL, err, sizeof err), -1);
    assert_int_equal(pgx_copy_row(&c, 1), -1);
    pgx_copy_reset(&c);
    assert_int_equal(pgx_copy_row(&c, 0), -1);
    pgx_copy_reset(&c);
    assert_int_equal(pgx_copy_row(&c, 1665), -1);
    pgx_copy_reset(&c);
    assert_int_equal(pgx_copy_row(&c, 1), 0);
    assert_int_equal(pgx_copy_text(&c, "x"), 0);
    assert_int_equal(pgx_copy_text(&c, "y"), -1); /* more fields than the row has */
    pgx_copy_free(&c);

    /* no rows: nothing to send, nothing sent */
    pgx_copy_init(&c, 0);
    assert_int_equal(pgx_copy_send(NULL, "COPY x FROM STDIN", &c, NULL, err, sizeof err), 0);
    pgx_copy_free(&c);
}

static void the_bound_holds(void **state)
{
    (void)state;
    struct pgx_copy c;
    char big[64];
    memset(big, 'z', sizeof big);
    pgx_copy_init(&c, sizeof header + 2 + 4 + 32);
    assert_int_equal(pgx_copy_row(&c, 1), 0);
    assert_int_equal(pgx_copy_bytes(&c, big, sizeof big), -1);
    assert_true(c.failed);
    pgx_copy_free(&c);

    pgx_copy_init(&c, sizeof header + 2 + 4 + 32);
    assert_int_equal(pgx_copy_row(&c, 1), 0);
    assert_int_equal(pgx_copy_bytes(&c, big, 32), 0); /* exactly at the bound */
    assert_int_equal(c.data.len, sizeof header + 2 + 4 + 32);
    pgx_copy_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rows_are_length_prefixed_bytes_after_the_header),
        cmocka_unit_test(a_uuid_is_its_16_bytes),
        cmocka_unit_test(malformed_fields_are_refused_and_the_rows_not_sent),
        cmocka_unit_test(the_bound_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
