/* base64: the one encoder and strict decoder of RFC 4648 base64, in its standard (§4) and
 * URL-safe (§5) alphabets. Nothing else in the project encodes or decodes base64 by hand. */
#ifndef PANEL_BASE64_H
#define PANEL_BASE64_H

#include <stddef.h>
#include <stdint.h>

enum base64_alphabet {
    BASE64_STD, /* A-Z a-z 0-9 + /, padded with '=' to a multiple of 4 (MIME, HTTP Basic) */
    BASE64_URL, /* A-Z a-z 0-9 - _, never padded (JWT, tokens, cursors) */
    /* Decoding only: either alphabet, padding optional. For inputs whose writers may use
     * either (protobuf's JSON mapping of bytes, an operator's key); still strict otherwise. */
    BASE64_ANY,
};

/* The characters base64_encode writes for n bytes, without the NUL. */
#define BASE64_STD_LEN(n) ((((n) + 2) / 3) * 4)
#define BASE64_URL_LEN(n) (((n)*4 + 2) / 3)

/* Encodes n bytes of data into out (NUL-terminated; BASE64_ANY encodes as BASE64_STD). Returns
 * the characters written without the NUL, or -1 when outlen is too small. */
long base64_encode(enum base64_alphabet a, const void *data, size_t n, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* Decodes the n characters at in into out. Strict: every character is of the alphabet, '='
 * stands only as the padding a BASE64_STD (or BASE64_ANY) text ends with, the length is one
 * an encoder writes and the unused low bits of the last character are zero, so each byte
 * string has exactly one accepted text. Returns the bytes written, or -1 when the text is
 * malformed or out (outlen bytes) is too small. */
long base64_decode(enum base64_alphabet a, const char *in, size_t n, uint8_t *out, size_t outlen)
    __attribute__((warn_unused_result));

#endif
