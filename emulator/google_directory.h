/* google_directory: the Admin SDK Directory API v1 read routes — users.list, orgunits.list
 * and chromeosdevices.list — with Google's paging, partial responses and errors. */
#ifndef EMU_GOOGLE_DIRECTORY_H
#define EMU_GOOGLE_DIRECTORY_H

#include <civetweb.h>

#define GOOGLE_USERS_MAX_RESULTS   500
#define GOOGLE_USERS_DEFAULT       100
#define GOOGLE_DEVICES_MAX_RESULTS 200 /* larger values are clamped to this */
#define GOOGLE_DEVICES_DEFAULT     100

/* Handler for the prefix /admin/directory/v1 (ctx = struct emu *). */
int google_directory_handler(struct mg_connection *conn, void *ctx);

#endif
