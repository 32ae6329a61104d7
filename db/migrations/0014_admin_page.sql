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
