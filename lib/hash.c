/* hash: see hash.h. */
#include "hash.h"

#define FNV1A64_PRIME 1099511628211ULL

uint64_t hash_fnv1a64_byte(uint64_t h, unsigned char b)
{
    return (h ^ b) * FNV1A64_PRIME;
}

uint64_t hash_fnv1a64_str(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = hash_fnv1a64_byte(h, *p);
    return h;
}
