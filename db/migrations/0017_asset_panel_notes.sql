-- 0017: a coordinator's own notes on an Asset. A Chromebook's `notes` are Google's
-- (device.notes, read-only in Panel); `panel_notes` belongs to Panel and is editable on every
-- Asset (hand-added ones keep their `notes` as before). Shown by the api, carried by the
-- AssetChanged event (Asset.panel_notes) and exported in the Assets CSV.
ALTER TABLE assets ADD COLUMN panel_notes text
    CONSTRAINT assets_panel_notes_length CHECK (char_length(panel_notes) <= 2000);

-- api_asset_json repeats its body from 0007 on purpose: SQL redefines a function whole.
CREATE OR REPLACE FUNCTION api_asset_json(a assets) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'asset_id', a.asset_id, 'asset_tag', coalesce(a.asset_tag, a.google_asset_tag),
        'panel_asset_tag', a.asset_tag, 'google_asset_tag', a.google_asset_tag,
        'serial_number', a.serial_number,
        'model', a.model, 'device_id', a.device_id, 'google_status', a.google_status,
        'lifecycle', a.lifecycle, 'lifecycle_changed_by', a.lifecycle_changed_by,
        'lifecycle_changed_at', a.lifecycle_changed_at,
        'org_unit_id', a.org_unit_id, 'org_unit_path', a.org_unit_path,
        'auto_update_expiry', a.auto_update_expiry, 'last_sync', a.last_sync,
        'in_google', a.in_google, 'manual', a.manual, 'left_google_at', a.left_google_at,
        'audited_at', a.audited_at, 'audited_by', a.audited_by,
        'next_audit_due', a.next_audit_due,
        'audit_overdue', a.next_audit_due IS NOT NULL AND a.next_audit_due < current_date,
        'notes', a.device ->> 'notes', 'panel_notes', a.panel_notes,
        'device', a.device, 'version', a.version,
        'created_at', a.created_at, 'updated_at', a.updated_at,
        'current_checkout', (SELECT api_checkout_json(c) FROM checkouts c
                             WHERE c.tenant_id = a.tenant_id AND c.asset_id = a.asset_id
                               AND c.checked_in_at IS NULL))
$$;

-- asset_event_json repeats its body from 0007 on purpose: SQL redefines a function whole.
CREATE OR REPLACE FUNCTION asset_event_json(a assets) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'asset_id', a.asset_id, 'asset_tag', coalesce(a.asset_tag, a.google_asset_tag),
        'device', a.device || jsonb_strip_nulls(jsonb_build_object(
            'device_id', a.device_id, 'serial_number', a.serial_number, 'model', a.model,
            'status', a.google_status, 'org_unit_path', a.org_unit_path,
            'org_unit_id', a.org_unit_id)),
        'in_google', a.in_google, 'manual', a.manual, 'lifecycle', a.lifecycle,
        'version', a.version, 'panel_notes', a.panel_notes,
        'current_checkout', (SELECT jsonb_strip_nulls(jsonb_build_object(
            'checkout_id', c.checkout_id, 'person_id', c.person_id,
            'checked_out_at_ms', (extract(epoch FROM c.checked_out_at) * 1000)::bigint,
            'due_at_ms', (extract(epoch FROM c.due_at) * 1000)::bigint, 'note', c.note))
            FROM checkouts c WHERE c.tenant_id = a.tenant_id AND c.asset_id = a.asset_id
              AND c.checked_in_at IS NULL)))
$$;
