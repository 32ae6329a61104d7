/* accounts: the signed-in person's session and the district's Panel admin accounts.
 * GET /v1/session, POST /v1/session/signout; GET/POST /v1/admins, PATCH/DELETE
 * /v1/admins/{account_id} (changes need the admin role; the last admin of a district can be
 * neither removed nor made a viewer). Sessions are created by auth's sign-in, not here. */
#ifndef API_ACCOUNTS_H
#define API_ACCOUNTS_H

#include "rest.h"

/* The routes (main.c's table): GET /v1/session, POST /v1/session/signout; GET and POST
 * /v1/admins, PATCH and DELETE /v1/admins/{id}. */
int accounts_session(struct router_req *q);
int accounts_sign_out(struct router_req *q);
int accounts_list(struct router_req *q);
int accounts_add(struct router_req *q);
int accounts_change(struct router_req *q);

#endif
