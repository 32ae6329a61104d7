/* control: the emulator's control API (under /control, on the admin listener only): districts,
 * object mutations, grant revocation, faults, token expiry and request statistics. */
#ifndef EMU_CONTROL_H
#define EMU_CONTROL_H

#include "emu.h"
#include "httpd.h"
#include "router.h"

/* Register the /control routes on h (a lib/router.h table; e borrowed). *out gets the router
 * (caller frees it with router_destroy after h stopped, also on failure). 0 or -1. */
int control_routes(struct httpd *h, struct emu *e, struct router **out)
    __attribute__((warn_unused_result));

#endif
