/* page_tokens: opaque, tamper-proof tokens that carry their own state (Google page tokens,
 * Graph skip/delta tokens, and the emulator's access tokens). Nothing is stored per token:
 * a token is payload + MAC under a per-process key. Expiry is by age (the provider's token
 * lifetime) or by epoch: page_tokens_expire_all() invalidates every token issued before. */
#ifndef EMU_PAGE_TOKENS_H
#define EMU_PAGE_TOKENS_H

#include <stddef.h>
#include <stdint.h>

struct page_tokens;

struct page_state {
    char kind; /* 'u' users, 'd' devices, 'g' graph users, 's' delta page, 'D' delta */
    char district[49];
    uint64_t pos;   /* next index to scan */
    uint64_t vfrom; /* delta: changes after this version ... */
    uint64_t vto;   /* ... up to this one */
    uint64_t aux;   /* free for the caller (e.g. the order or filters' hash) */
};

enum page_token_result { PAGE_TOKEN_OK = 0, PAGE_TOKEN_INVALID = 1, PAGE_TOKEN_EXPIRED = 2 };

/* ttl_s: lifetime of page tokens; delta_ttl_s: of kind 'D' tokens. NULL on failure. */
struct page_tokens *page_tokens_new(long ttl_s, long delta_ttl_s);
void page_tokens_destroy(struct page_tokens *pt);

/* A state at pos of a district's list of this kind, the delta fields zero. */
void page_state_init(struct page_state *st, char kind, const char *district, uint64_t pos);
/* Write a token for st into out (at least 256 bytes). 0 or -1. */
int page_token_make(struct page_tokens *pt, const struct page_state *st, char *out, size_t outlen)
    __attribute__((warn_unused_result));
/* Decode a token of the expected kind. */
enum page_token_result page_token_read(struct page_tokens *pt, const char *token, char kind,
                                       struct page_state *out);
/* Every token issued so far is expired from now on. */
void page_tokens_expire_all(struct page_tokens *pt);

/* Generic signed strings: out = prefix + base64url(payload) + "." + mac. */
int page_tokens_sign(struct page_tokens *pt, const char *prefix, const char *payload, char *out,
                     size_t outlen) __attribute__((warn_unused_result));
/* Verify and return the payload (into payload, NUL-terminated). 0 ok, -1 bad. */
int page_tokens_verify(struct page_tokens *pt, const char *prefix, const char *token, char *payload,
                       size_t payloadlen) __attribute__((warn_unused_result));

/* One-time use: 1 the first time token is seen (it is remembered), 0 afterwards. Remembers
 * the last PAGE_TOKENS_ONCE_MAX tokens. */
#define PAGE_TOKENS_ONCE_MAX 65536
int page_tokens_once(struct page_tokens *pt, const char *token);

#endif
