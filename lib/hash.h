/* hash: FNV-1a, 64 bits — the one loop behind the stable keys other versions of the suite
 * must compute alike (an object's partition, an address's advisory lock). Callers choose
 * their starting value, separators and finaliser; those are part of their own contracts. */
#ifndef PANEL_HASH_H
#define PANEL_HASH_H

#include <stdint.h>

/* FNV-1a's 64-bit offset basis. */
#define HASH_FNV1A64_BASIS 14695981039346656037ULL

/* h with the byte b folded in. */
uint64_t hash_fnv1a64_byte(uint64_t h, unsigned char b) __attribute__((warn_unused_result));
/* h with the bytes of the NUL-terminated s (borrowed) folded in, in order. */
uint64_t hash_fnv1a64_str(uint64_t h, const char *s) __attribute__((warn_unused_result));

#endif
