#include "page_tokens.h"
#include "base64.h"
#include "crypto.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAC_BYTES 16

struct page_tokens {
    uint8_t key[32];
    long ttl_s, delta_ttl_s;
    _Atomic uint64_t epoch;
    pthread_mutex_t once_mu;
    uint64_t *once; /* open-addressing set of token hashes, 2x the ring */
    uint64_t *ring; /* insertion order, to forget the oldest */
    size_t ring_pos, ring_n;
};

#define ONCE_SLOTS (2 * PAGE_TOKENS_ONCE_MAX)

struct page_tokens *page_tokens_new(long ttl_s, long delta_ttl_s)
{
    struct page_tokens *pt = calloc(1, sizeof *pt);
    if (!pt)
        return NULL;
    if (crypto_random(pt->key, sizeof pt->key)) {
        free(pt);
        return NULL;
    }
    pt->ttl_s = ttl_s;
    pt->delta_ttl_s = delta_ttl_s;
    atomic_init(&pt->epoch, 1);
    pthread_mutex_init(&pt->once_mu, NULL);
    return pt;
}

void page_tokens_destroy(struct page_tokens *pt)
{
    if (!pt)
        return;
    pthread_mutex_destroy(&pt->once_mu);
    free(pt->once);
    free(pt->ring);
    free(pt);
}

static size_t once_find(const struct page_tokens *pt, uint64_t h)
{
    size_t i = (size_t)(h % ONCE_SLOTS);
    while (pt->once[i] && pt->once[i] != h)
        i = (i + 1) % ONCE_SLOTS;
    return i;
}

static void once_remove(struct page_tokens *pt, uint64_t h)
{
    size_t i = once_find(pt, h);
    if (!pt->once[i])
        return;
    pt->once[i] = 0;
    /* re-insert the rest of the cluster (linear probing deletion) */
    for (size_t j = (i + 1) % ONCE_SLOTS; pt->once[j]; j = (j + 1) % ONCE_SLOTS) {
        uint64_t v = pt->once[j];
        pt->once[j] = 0;
        pt->once[once_find(pt, v)] = v;
    }
}

int page_tokens_once(struct page_tokens *pt, const char *token)
{
    uint8_t d[32];
    uint64_t h;
    int first = 0;
    crypto_sha256(token, strlen(token), d);
    memcpy(&h, d, sizeof h);
    if (!h)
        h = 1;
    pthread_mutex_lock(&pt->once_mu);
    if (!pt->once) {
        pt->once = calloc(ONCE_SLOTS, sizeof *pt->once);
        pt->ring = calloc(PAGE_TOKENS_ONCE_MAX, sizeof *pt->ring);
        if (!pt->once || !pt->ring) {
            free(pt->once);
            free(pt->ring);
            pt->once = pt->ring = NULL;
            pthread_mutex_unlock(&pt->once_mu);
            return 0; /* cannot remember: refuse rather than allow reuse */
        }
    }
    size_t i = once_find(pt, h);
    if (!pt->once[i]) {
        if (pt->ring_n == PAGE_TOKENS_ONCE_MAX) {
            once_remove(pt, pt->ring[pt->ring_pos]);
            pt->ring_n--;
            i = once_find(pt, h);
        }
        pt->once[i] = h;
        pt->ring[pt->ring_pos] = h;
        pt->ring_pos = (pt->ring_pos + 1) % PAGE_TOKENS_ONCE_MAX;
        pt->ring_n++;
        first = 1;
    }
    pthread_mutex_unlock(&pt->once_mu);
    return first;
}

void page_tokens_expire_all(struct page_tokens *pt)
{
    atomic_fetch_add(&pt->epoch, 1);
}

static void mac(const struct page_tokens *pt, const char *prefix, const char *data, size_t n,
                uint8_t out[32])
{
    /* sha256(key | prefix | 0 | data): enough for an emulator's opaque tokens */
    size_t pl = strlen(prefix);
    size_t total = sizeof pt->key + pl + 1 + n;
    uint8_t stackbuf[1024];
    uint8_t *b = total <= sizeof stackbuf ? stackbuf : malloc(total);
    if (!b) {
        memset(out, 0, 32);
        return;
    }
    memcpy(b, pt->key, sizeof pt->key);
    memcpy(b + sizeof pt->key, prefix, pl);
    b[sizeof pt->key + pl] = 0;
    memcpy(b + sizeof pt->key + pl + 1, data, n);
    crypto_sha256(b, total, out);
    if (b != stackbuf)
        free(b);
}

int page_tokens_sign(struct page_tokens *pt, const char *prefix, const char *payload, char *out,
                     size_t outlen)
{
    uint8_t m[32];
    char enc[768], menc[32];
    size_t n = strlen(payload);
    if (n > 500)
        return -1;
    if (base64_encode(BASE64_URL, payload, n, enc, sizeof enc) < 0)
        return -1;
    mac(pt, prefix, payload, n, m);
    if (base64_encode(BASE64_URL, m, MAC_BYTES, menc, sizeof menc) < 0)
        return -1;
    int w = snprintf(out, outlen, "%s%s.%s", prefix, enc, menc);
    return (w < 0 || (size_t)w >= outlen) ? -1 : 0;
}

int page_tokens_verify(struct page_tokens *pt, const char *prefix, const char *token, char *payload,
                       size_t payloadlen)
{
    size_t pl = strlen(prefix);
    uint8_t m[32], got[64];
    char enc[768];
    if (!token || strncmp(token, prefix, pl))
        return -1;
    const char *body = token + pl;
    const char *dot = strrchr(body, '.');
    if (!dot || (size_t)(dot - body) >= sizeof enc)
        return -1;
    memcpy(enc, body, (size_t)(dot - body));
    enc[dot - body] = '\0';
    long n = base64_decode(BASE64_URL, enc, strlen(enc), (uint8_t *)payload, payloadlen - 1);
    if (n < 0)
        return -1;
    payload[n] = '\0';
    if (memchr(payload, '\0', (size_t)n))
        return -1;
    mac(pt, prefix, payload, (size_t)n, m);
    if (base64_decode(BASE64_URL, dot + 1, strlen(dot + 1), got, sizeof got) != MAC_BYTES)
        return -1;
    uint8_t diff = 0;
    for (int i = 0; i < MAC_BYTES; i++)
        diff |= (uint8_t)(got[i] ^ m[i]);
    return diff ? -1 : 0;
}

void page_state_init(struct page_state *st, char kind, const char *district, uint64_t pos)
{
    memset(st, 0, sizeof *st);
    st->kind = kind;
    snprintf(st->district, sizeof st->district, "%s", district);
    st->pos = pos;
}

int page_token_make(struct page_tokens *pt, const struct page_state *st, char *out, size_t outlen)
{
    char payload[256];
    int w = snprintf(payload, sizeof payload,
                     "%c|%s|%" PRIu64 "|%" PRIu64 "|%" PRIu64 "|%" PRIu64 "|%" PRIu64 "|%lld",
                     st->kind, st->district, st->pos, st->vfrom, st->vto, st->aux,
                     atomic_load(&pt->epoch), (long long)time(NULL));
    if (w < 0 || (size_t)w >= sizeof payload)
        return -1;
    return page_tokens_sign(pt, "", payload, out, outlen);
}

enum page_token_result page_token_read(struct page_tokens *pt, const char *token, char kind,
                                       struct page_state *out)
{
    char payload[512];
    struct page_state st;
    unsigned long long pos, vfrom, vto, aux, epoch;
    long long issued;
    char district[49];
    if (page_tokens_verify(pt, "", token, payload, sizeof payload))
        return PAGE_TOKEN_INVALID;
    memset(&st, 0, sizeof st);
    if (payload[0] != kind || payload[1] != '|')
        return PAGE_TOKEN_INVALID;
    if (sscanf(payload + 2, "%48[^|]|%llu|%llu|%llu|%llu|%llu|%lld", district, &pos, &vfrom, &vto,
               &aux, &epoch, &issued) != 7)
        return PAGE_TOKEN_INVALID;
    long ttl = kind == 'D' ? pt->delta_ttl_s : pt->ttl_s;
    if (epoch != atomic_load(&pt->epoch) || (long long)time(NULL) - issued > ttl)
        return PAGE_TOKEN_EXPIRED;
    st.kind = kind;
    snprintf(st.district, sizeof st.district, "%s", district);
    st.pos = pos;
    st.vfrom = vfrom;
    st.vto = vto;
    st.aux = aux;
    *out = st;
    return PAGE_TOKEN_OK;
}
