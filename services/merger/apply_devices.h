/* apply_devices: DeviceObserved rows into assets (hash-compared, lifecycle from Google's
 * status) and their AssetChanged events. */
#ifndef MERGER_APPLY_DEVICES_H
#define MERGER_APPLY_DEVICES_H

#include "apply_ctx.h"

/* Apply the DeviceObserved rows of a segment: an array of {"i","t","id","f","r","aue","ls",
 * "lc"}, one per device. 0 or -1. */
int devices_apply(struct actx *c, json_t *rows);

/* Queue the AssetChanged of the asset whose asset_event_json() text is asset_json. */
int devices_asset_event(struct actx *c, const char *tenant, const char *run, const char *asset_json,
                        Panel__V1__AssetChangeKind kind, const json_t *changed);

#endif
