/* www: the admin page's static files from one directory, at /. Only plain file names
 * (letters, digits, '-', '_', '.') are served, so nothing outside the directory is
 * reachable. */
#ifndef API_WWW_H
#define API_WWW_H

#include <civetweb.h>
#include <stdbool.h>

/* civetweb handler; cbdata is the directory (a borrowed string). */
int www_serve(struct mg_connection *conn, void *cbdata);
/* True for a name www_serve would serve ("index.html"); false for "../x", ".env", "a/b". */
bool www_name_ok(const char *name);

#endif
