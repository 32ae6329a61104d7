/* ids: the syntax of the identifiers and addresses that cross the services' borders, checked
 * the same way everywhere: tenant ids, Microsoft directory ids, UUIDs, UTF-8 text, e-mail
 * addresses. Pure functions over caller-owned strings; a NULL string is never valid. */
#ifndef PANEL_IDS_H
#define PANEL_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define IDS_TENANT_MAX    64  /* a Panel tenant id (tenants.tenant_id) */
#define IDS_DIRECTORY_MAX 128 /* a Microsoft directory: a GUID or a domain */
#define IDS_UUID_LEN      36
#define IDS_EMAIL_MAX     254 /* RFC 5321's limit on a forward path, less the brackets */

/* A Panel tenant id: 1..64 of A-Z a-z 0-9 _ . -, starting with a letter or a digit. */
bool ids_tenant_valid(const char *s);

/* A Microsoft directory (Entra tenant) that may be put into a login URL's path: a GUID or a
 * domain, 1..128 of A-Z a-z 0-9 . -, starting with a letter or digit, no "..". */
bool ids_directory_valid(const char *s);

/* Each of the n bytes at s is an ASCII letter, an ASCII digit or one of the characters of also
 * ("" for none; never NUL). True for n == 0: the caller bounds the length. */
bool ids_chars_alnum(const char *s, size_t n, const char *also);

/* Each of the n bytes at s is a hexadecimal digit (either case). True for n == 0. */
bool ids_chars_hex(const char *s, size_t n);

/* A UUID in its 36-character text form, 8-4-4-4-12 hexadecimal digits (either case). */
bool ids_uuid_valid(const char *s);

/* The n bytes at s are well-formed UTF-8: shortest forms only, no surrogates, nothing past
 * U+10FFFF, and no NUL (PostgreSQL's text refuses all of these). */
bool ids_utf8_valid(const char *s, size_t n);

/* The stored form of an e-mail address, as every service compares it: surrounding white space
 * dropped, ASCII letters lower-cased, the rest kept. Writes it to out (outlen bytes with the
 * NUL); returns 0, or -1 when nothing is left or it does not fit. Judges nothing else (see
 * ids_email_valid). */
int ids_email_normalize(const char *in, char *out, size_t outlen);

/* An address that can name an account: 3..254 characters, one '@' with text on both sides, no
 * white space, control character, DEL, '"' or '\\'. */
bool ids_email_valid(const char *s);

#endif
