/* graph: Microsoft Graph v1.0 /users and /users/delta with $select, $top, $filter,
 * @odata.nextLink paging, delta rounds (changed properties only with return=minimal,
 * @removed entries) and Graph's error envelope. */
#ifndef EMU_GRAPH_H
#define EMU_GRAPH_H

#include <civetweb.h>

#define GRAPH_TOP_DEFAULT 100
#define GRAPH_TOP_MAX     999

/* Handler for the prefix /v1.0 (ctx = struct emu *). */
int graph_handler(struct mg_connection *conn, void *ctx);

#endif
