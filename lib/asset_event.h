/* asset_event: the one builder of the public AssetChanged event (merger and api queue it in
 * the one outbox writer, lib/outbox.h), and the mappings of an Asset's lifecycle:
 * its text in PostgreSQL <-> the event enum (names from the .proto's enum descriptor, so there
 * is one table), and Google's device status -> lifecycle (docs/sources.md has the table). */
#ifndef PANEL_ASSET_EVENT_H
#define PANEL_ASSET_EVENT_H

#include "events.h"
#include "outbox.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Select the JSON of the Asset a (an assets row alias) as asset_event_add takes it. */
#define ASSET_EVENT_JSON_SQL "asset_event_json(a)::text"

/* "in_storage", "deployed", ... (case-insensitive) to the enum; UNSPECIFIED when unknown. */
Panel__V1__AssetLifecycle asset_lifecycle_from_text(const char *text);
/* The enum as the lifecycle text ("in_storage") in out; "" for UNSPECIFIED or unknown. */
const char *asset_lifecycle_text(Panel__V1__AssetLifecycle lifecycle, char *out, size_t outlen);

/* The lifecycle a Google device status gives ("deployed" for ACTIVE, "lost_stolen" for
 * DISABLED, "retired" for DEPROVISIONED, ...); NULL for a status the table does not know
 * (UNKNOWN, new values) or NULL. */
const char *asset_status_lifecycle(const char *google_status);
/* True when Google's status makes the device unavailable for checkout whatever its
 * lifecycle (DISABLED, DEPROVISIONED); such a status also overrides an admin's lifecycle when
 * Google moves the device into it. */
bool asset_status_blocks_checkout(const char *google_status);

/* The auto-update expiry date of d as "YYYY-MM-DD" in out: autoUpdateThrough when it is a
 * valid date, else the UTC date of the deprecated autoUpdateExpiration (ms since the epoch).
 * Returns out, or NULL when the device gives neither (out is then ""). */
const char *asset_auto_update_expiry(const Panel__V1__Device *d, char out[11]);

/* Build one AssetChanged and queue it in batch (lib/outbox.h) for panel.assets.events, keyed
 * "<tenant>/<asset_id>": asset is the object asset_event_json() gives (borrowed; "lifecycle"
 * as its text), kind and changed (JSON array of field names, borrowed, may be NULL) say what
 * happened; run_id may be NULL. 0, or -1 with a message. */
int asset_event_add(struct outbox_batch *batch, const char *tenant, const char *run_id,
                    const json_t *asset, Panel__V1__AssetChangeKind kind, const json_t *changed,
                    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
