#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hash.h"

/* The published FNV-1a 64 test vectors (empty, "a", "foobar"). */
static void matches_the_reference_vectors(void **state)
{
    (void)state;
    assert_true(hash_fnv1a64_str(HASH_FNV1A64_BASIS, "") == 0xcbf29ce484222325ULL);
    assert_true(hash_fnv1a64_str(HASH_FNV1A64_BASIS, "a") == 0xaf63dc4c8601ec8cULL);
    assert_true(hash_fnv1a64_str(HASH_FNV1A64_BASIS, "foobar") == 0x85944171f73967e8ULL);
}

/* Folding piece by piece is folding the whole: callers hash several fields in a row. */
static void folds_incrementally(void **state)
{
    (void)state;
    uint64_t h = hash_fnv1a64_str(HASH_FNV1A64_BASIS, "foo");
    h = hash_fnv1a64_str(h, "bar");
    assert_true(h == hash_fnv1a64_str(HASH_FNV1A64_BASIS, "foobar"));
    assert_true(hash_fnv1a64_byte(hash_fnv1a64_str(HASH_FNV1A64_BASIS, "fooba"), 'r') == h);
    assert_true(hash_fnv1a64_byte(HASH_FNV1A64_BASIS, 0) != HASH_FNV1A64_BASIS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_the_reference_vectors),
        cmocka_unit_test(folds_incrementally),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
