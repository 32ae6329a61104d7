/* control: the emulator's control API (under /control, on the admin listener only): districts,
 * object mutations, grant revocation, faults, token expiry and request statistics. */
#ifndef EMU_CONTROL_H
#define EMU_CONTROL_H

#include "emu.h"
#include "httpd.h"

/* Register the /control routes on h (ctx = e, borrowed). 0 or -1. */
int control_routes(struct httpd *h, struct emu *e) __attribute__((warn_unused_result));

#endif
