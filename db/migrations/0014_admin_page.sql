-- 0014: what the admin page's inventory needs.
--
-- Org-unit filters are subtree filters (/Students includes /Students/Grade 5). The api asks
-- for the byte range [path, path || '0') — '/' is the byte before '0' — and keeps the rows
-- equal to the path or continuing with '/'. A byte range is only an index range under the
-- "C" collation, whatever the database's own collation is, hence these expression indexes.
CREATE INDEX IF NOT EXISTS assets_ou_tree ON assets (tenant_id, (org_unit_path COLLATE "C"));
CREATE INDEX IF NOT EXISTS people_ou_tree ON people (tenant_id, (org_unit_path COLLATE "C"));

-- Every physical audit of an Asset (assets.audited_at/audited_by keep only the last one).
CREATE TABLE asset_audits (
    tenant_id   text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    audit_id    uuid NOT NULL DEFAULT gen_random_uuid(),
    asset_id    uuid NOT NULL,
    audited_at  timestamptz NOT NULL DEFAULT now(),
    audited_by  text NOT NULL,
    note        text,
    PRIMARY KEY (tenant_id, audit_id),
    FOREIGN KEY (tenant_id, asset_id) REFERENCES assets ON DELETE CASCADE
);
CREATE INDEX asset_audits_asset ON asset_audits (tenant_id, asset_id, audited_at DESC, audit_id DESC);

-- The district's time zone: the admin page shows every date in it (an IANA name PostgreSQL
-- knows; GET /v1/session carries it).
ALTER TABLE tenants ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';

-- A checkout names its Person's email ("checked out to X, last used by Y" compares it with
-- Google's recent users) and its Asset's tag, serial and model (a Person's history).
-- api_checkout_json repeats its body from 0005 on purpose: SQL redefines a function whole.
CREATE OR REPLACE FUNCTION api_checkout_json(c checkouts) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'checkout_id', c.checkout_id, 'asset_id', c.asset_id, 'person_id', c.person_id,
        'person_name', p.display_name, 'person_email', p.email_norm,
        'asset_tag', a.asset_tag, 'serial_number', a.serial_number, 'model', a.model,
        'checked_out_at', c.checked_out_at, 'checked_out_by', c.checked_out_by,
        'due_at', c.due_at, 'note', c.note,
        'checked_in_at', c.checked_in_at, 'checked_in_by', c.checked_in_by,
        'condition', c.condition, 'checkin_note', c.checkin_note,
        'open', c.checked_in_at IS NULL,
        'overdue', c.checked_in_at IS NULL AND c.due_at IS NOT NULL AND c.due_at < now())
    FROM (SELECT 1) one
    LEFT JOIN people p ON p.tenant_id = c.tenant_id AND p.person_id = c.person_id
    LEFT JOIN assets a ON a.tenant_id = c.tenant_id AND a.asset_id = c.asset_id
$$;

-- CSV exports: a text cell a spreadsheet would run as a formula (first character =, +, -,
-- @, tab or carriage return) is prefixed with ' so it stays text.
CREATE FUNCTION api_csv_text(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v ~ '^[-=+@\t\r]' THEN '''' || v ELSE v END
$$;

-- Alerts published on panel.sync.events: one row per happening, so each is published once
-- (several api replicas race on the primary key; the one that inserts publishes).
CREATE TABLE sync_alerts (
    tenant_id  text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('run_held', 'run_failed', 'connection_revoked',
                                             'checkout_overdue')),
    subject    text NOT NULL,   -- run id, "<provider> <revoked_at>", checkout id
    event_id   uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, subject)
);
