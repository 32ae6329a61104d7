-- 0007: provider statuses, Google's asset tag and every known address of a Person.

-- Google's annotatedAssetId, kept apart from the tag an admin sets in Panel (asset_tag): the
-- Panel tag wins, Google's is the fallback, and the api shows both. A generated column, so
-- every writer and every existing row agree without code.
ALTER TABLE assets ADD COLUMN google_asset_tag text
    GENERATED ALWAYS AS (nullif(device ->> 'annotated_asset_id', '')) STORED;
-- By-tag lookups and the tag filter use the shown tag. Not unique: Google does not keep
-- annotatedAssetId unique, and a Panel tag may equal another device's Google tag.
CREATE INDEX assets_shown_tag ON assets (tenant_id, (coalesce(asset_tag, google_asset_tag)));

-- The addresses of one source row of a Person, normalized like the merge key (trimmed, ASCII
-- lower-case): its own e-mail, Google aliases, Azure mail and SMTP proxy addresses. Never
-- otherMails (unverified). IMMUTABLE so that an index can hold it.
CREATE FUNCTION person_source_addresses(fields jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT a) FILTER (WHERE a LIKE '_%@_%'), '{}')
    FROM (SELECT translate(btrim(x, E' \t\r\n'), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                           'abcdefghijklmnopqrstuvwxyz') AS a
          FROM (SELECT fields ->> 'email_normalized' AS x
                UNION ALL SELECT fields ->> 'mail'
                UNION ALL SELECT jsonb_array_elements_text(
                    CASE WHEN jsonb_typeof(fields -> 'aliases' -> 'values') = 'array'
                         THEN fields -> 'aliases' -> 'values' ELSE '[]' END)
                UNION ALL SELECT substr(p, 6) FROM jsonb_array_elements_text(
                    CASE WHEN jsonb_typeof(fields -> 'proxy_addresses' -> 'values') = 'array'
                         THEN fields -> 'proxy_addresses' -> 'values' ELSE '[]' END) AS p
                    WHERE lower(left(p, 5)) = 'smtp:') s
          WHERE x IS NOT NULL) n
$$;
CREATE INDEX person_sources_addresses ON person_sources USING gin (person_source_addresses(fields));

-- A Person's status: removed, then suspended (Google suspended, or Azure accountEnabled
-- false; Azure's value wins when both clouds have the Person), then archived (Google only),
-- else active. docs/sources.md has the table.
-- api_person_json repeats its body from 0005 on purpose: SQL redefines a function whole.
CREATE OR REPLACE FUNCTION api_person_json(p people) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'person_id', p.person_id, 'email', p.email_norm, 'display_name', p.display_name,
        'given_name', p.given_name, 'family_name', p.family_name,
        'org_unit_path', p.org_unit_path, 'suspended', p.suspended,
        'archived', coalesce(p.fields ->> 'archived' = 'true', false), 'sources', p.sources,
        'status', CASE WHEN p.removed_at IS NOT NULL THEN 'removed'
                       WHEN p.suspended THEN 'suspended'
                       WHEN p.fields ->> 'archived' = 'true' THEN 'archived' ELSE 'active' END,
        'removed_at', p.removed_at, 'version', p.version,
        'created_at', p.created_at, 'updated_at', p.updated_at)
$$;

-- asset_tag is the tag shown (Panel's, else Google's); panel_asset_tag and google_asset_tag
-- are the two values; checkout_blocked says why a checkout would be refused.
-- api_asset_json repeats its body from 0005 on purpose: SQL redefines a function whole.
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
        'notes', a.device ->> 'notes', 'device', a.device, 'version', a.version,
        'created_at', a.created_at, 'updated_at', a.updated_at,
        'current_checkout', (SELECT api_checkout_json(c) FROM checkouts c
                             WHERE c.tenant_id = a.tenant_id AND c.asset_id = a.asset_id
                               AND c.checked_in_at IS NULL))
$$;

-- The Asset of a public AssetChanged event, as JSON in the .proto's field names (lifecycle as
-- the column's text: lib/asset_event.c turns it into the enum). One definition for every
-- writer (merger and api), so every event carries the whole Asset with its current checkout.
CREATE FUNCTION asset_event_json(a assets) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'asset_id', a.asset_id, 'asset_tag', coalesce(a.asset_tag, a.google_asset_tag),
        'device', a.device || jsonb_strip_nulls(jsonb_build_object(
            'device_id', a.device_id, 'serial_number', a.serial_number, 'model', a.model,
            'status', a.google_status, 'org_unit_path', a.org_unit_path,
            'org_unit_id', a.org_unit_id)),
        'in_google', a.in_google, 'manual', a.manual, 'lifecycle', a.lifecycle,
        'version', a.version,
        'current_checkout', (SELECT jsonb_strip_nulls(jsonb_build_object(
            'checkout_id', c.checkout_id, 'person_id', c.person_id,
            'checked_out_at_ms', (extract(epoch FROM c.checked_out_at) * 1000)::bigint,
            'due_at_ms', (extract(epoch FROM c.due_at) * 1000)::bigint, 'note', c.note))
            FROM checkouts c WHERE c.tenant_id = a.tenant_id AND c.asset_id = a.asset_id
              AND c.checked_in_at IS NULL)))
$$;
