/* ms_oauth: the Microsoft identity platform — admin consent (/{tenant}/adminconsent and
 * /{tenant}/v2.0/adminconsent) and the v2.0 token endpoint's client_credentials grant, with
 * AADSTS error bodies — and the check Graph makes on a bearer token. */
#ifndef EMU_MS_OAUTH_H
#define EMU_MS_OAUTH_H

#include "emu.h"

#include <civetweb.h>

/* Handler for every /{tenant}/... login path (ctx = struct emu *); answers 404 otherwise. */
int ms_oauth_handler(struct mg_connection *conn, void *ctx);

enum ms_check { MS_OK = 0, MS_INVALID = 1, MS_EXPIRED = 2, MS_FORBIDDEN = 3 };
/* Check a Graph bearer token; MS_OK sets *out (borrowed). */
enum ms_check ms_oauth_check(struct emu *e, const char *token, struct district **out);

#endif
