/* apply_observe: pure helpers of a segment's staging — which object an observation event is
 * about, and which of its dates PostgreSQL will accept. No I/O. */
#ifndef MERGER_APPLY_OBSERVE_H
#define MERGER_APPLY_OBSERVE_H

#include "events.h"

#include <stdbool.h>

/* The kind of object env observes ("person", "device", "org_unit"; static strings), with its
 * source id in *source_id (borrowed from env; NULL when the event lacks its object); NULL for
 * any other payload or an observation without its message. */
const char *observe_kind(const Envelope *env, const char **source_id);

/* s when it is a date "YYYY-MM-DD" (with_time false) or an RFC 3339 time (with_time true)
 * that PostgreSQL will accept; NULL otherwise (NULL included). */
const char *observe_date(const char *s, bool with_time);

#endif
