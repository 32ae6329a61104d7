/* accounts: the signed-in person's session and the district's Panel admin accounts.
 * GET /v1/session, POST /v1/session/signout; GET/POST /v1/admins, PATCH/DELETE
 * /v1/admins/{account_id} (changes need the admin role; the last admin of a district can be
 * neither removed nor made a viewer). Sessions are created by auth's sign-in, not here. */
#ifndef API_ACCOUNTS_H
#define API_ACCOUNTS_H

#include "rest.h"

void accounts_session_handle(struct api_req *r);
void accounts_admins_handle(struct api_req *r);

#endif
