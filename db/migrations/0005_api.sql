-- 0005: what the api needs — JSON shapes of the rows it serves (one definition, used by
-- every query so lists and single reads agree), and indexes for its keyset lists.

-- Keyset lists: assets by id are served by the primary key; these cover the rest.
CREATE INDEX IF NOT EXISTS checkouts_recent ON checkouts (tenant_id, checked_out_at DESC, checkout_id DESC);
CREATE INDEX IF NOT EXISTS assets_audit_due ON assets (tenant_id, next_audit_due) WHERE next_audit_due IS NOT NULL;
CREATE INDEX IF NOT EXISTS match_cases_recent ON match_cases (tenant_id, created_at DESC, case_id DESC);
CREATE INDEX IF NOT EXISTS sync_runs_tenant_recent ON sync_runs (tenant_id, requested_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS idempotency_keys_age ON idempotency_keys (created_at);

CREATE FUNCTION api_checkout_json(c checkouts) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'checkout_id', c.checkout_id, 'asset_id', c.asset_id, 'person_id', c.person_id,
        'person_name', (SELECT p.display_name FROM people p
                        WHERE p.tenant_id = c.tenant_id AND p.person_id = c.person_id),
        'checked_out_at', c.checked_out_at, 'checked_out_by', c.checked_out_by,
        'due_at', c.due_at, 'note', c.note,
        'checked_in_at', c.checked_in_at, 'checked_in_by', c.checked_in_by,
        'condition', c.condition, 'checkin_note', c.checkin_note,
        'open', c.checked_in_at IS NULL,
        'overdue', c.checked_in_at IS NULL AND c.due_at IS NOT NULL AND c.due_at < now())
$$;

CREATE FUNCTION api_asset_json(a assets) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'asset_id', a.asset_id, 'asset_tag', a.asset_tag, 'serial_number', a.serial_number,
        'model', a.model, 'device_id', a.device_id, 'google_status', a.google_status,
        'lifecycle', a.lifecycle, 'lifecycle_changed_by', a.lifecycle_changed_by,
        'lifecycle_changed_at', a.lifecycle_changed_at,
        'org_unit_id', a.org_unit_id, 'org_unit_path', a.org_unit_path,
        'auto_update_expiry', a.auto_update_expiry, 'last_sync', a.last_sync,
        'in_google', a.in_google, 'manual', a.manual, 'left_google_at', a.left_google_at,
        'audited_at', a.audited_at, 'audited_by', a.audited_by,
        'next_audit_due', a.next_audit_due,
        'audit_overdue', a.next_audit_due IS NOT NULL AND a.next_audit_due < current_date,
        'notes', a.device ->> 'notes', 'device', a.device, 'version', a.version,
        'created_at', a.created_at, 'updated_at', a.updated_at,
        'current_checkout', (SELECT api_checkout_json(c) FROM checkouts c
                             WHERE c.tenant_id = a.tenant_id AND c.asset_id = a.asset_id
                               AND c.checked_in_at IS NULL))
$$;

CREATE FUNCTION api_person_json(p people) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'person_id', p.person_id, 'email', p.email_norm, 'display_name', p.display_name,
        'given_name', p.given_name, 'family_name', p.family_name,
        'org_unit_path', p.org_unit_path, 'suspended', p.suspended, 'sources', p.sources,
        'status', CASE WHEN p.removed_at IS NOT NULL THEN 'removed'
                       WHEN p.suspended THEN 'suspended' ELSE 'active' END,
        'removed_at', p.removed_at, 'version', p.version,
        'created_at', p.created_at, 'updated_at', p.updated_at)
$$;
