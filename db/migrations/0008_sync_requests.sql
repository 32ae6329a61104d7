-- 0008: sync requests never stay stuck, and a refused listing says what is missing.

-- A run auth requested that no fetcher started in time (or whose end never arrived) becomes
-- 'expired' with a reason, so it stops attracting new requests (coalescing) and the admin
-- sees why nothing ran. A late RunStarted still moves it to 'running' (see docs/auth.md).
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_status_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_status_check
    CHECK (status IN ('requested', 'running', 'completed', 'failed', 'held', 'approved',
                      'rejected', 'expired'));

-- RunFailed.forbidden_listings: the listings the provider refused (403 forbidden /
-- Authorization_RequestDenied) while the run's other listings were read.
ALTER TABLE sync_runs ADD COLUMN forbidden_listings text[] NOT NULL DEFAULT '{}';

-- What each listing needs and what the admin should do when it is refused. One table read
-- by auth's and the api's connection views, so both say the same.
CREATE TABLE listing_permissions (
    provider   text NOT NULL CHECK (provider IN ('google', 'azure')),
    listing    text NOT NULL,
    scope      text NOT NULL, -- OAuth scope (Google) or application permission (Graph)
    privilege  text NOT NULL, -- what the consenting admin or the app must hold
    action     text NOT NULL, -- what the district's admin should do
    PRIMARY KEY (provider, listing)
);
INSERT INTO listing_permissions VALUES
 ('google', 'orgunits', 'https://www.googleapis.com/auth/admin.directory.orgunit.readonly',
  'Admin API privilege Organizational Units > Read',
  'In the Google Admin console (Account > Admin roles), give the admin who authorized Panel a '
  'role with Organizational Units > Read, or authorize again as an admin who has it and keep '
  'every requested permission ticked. Org units are not updated or removed until then.'),
 ('google', 'users', 'https://www.googleapis.com/auth/admin.directory.user.readonly',
  'Admin API privilege Users > Read',
  'In the Google Admin console (Account > Admin roles), give the admin who authorized Panel a '
  'role with Users > Read, or authorize again as an admin who has it and keep every requested '
  'permission ticked. People from Google are not updated or removed until then.'),
 ('google', 'devices', 'https://www.googleapis.com/auth/admin.directory.device.chromeos.readonly',
  'Services privilege Chrome OS > Manage ChromeOS Devices (read only)',
  'In the Google Admin console (Account > Admin roles), give the admin who authorized Panel a '
  'role with the ChromeOS device privilege (Services > Chrome OS > Manage ChromeOS Devices), or '
  'authorize again as an admin who has it and keep every requested permission ticked. '
  'Chromebooks are not updated or removed until then.'),
 ('azure', 'users', 'User.Read.All',
  'Microsoft Graph application permission User.Read.All with admin consent',
  'In the Microsoft Entra admin center (Enterprise applications > Panel > Permissions), grant '
  'admin consent for User.Read.All again, or authorize Microsoft again from this page. People '
  'from Microsoft are not updated or removed until then.');

-- The listings the provider refused in the tenant's latest run that decided about them (a
-- completed or held run, or a run that failed because of a refusal; runs that failed for
-- other reasons say nothing about permissions): [{"listing","scope","privilege","action",
-- "run_id","since"}], or [] when every listing was read.
CREATE FUNCTION connection_missing_permissions(p_tenant text, p_provider text)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'listing', l.listing, 'scope', lp.scope, 'privilege', lp.privilege,
               'action', lp.action, 'run_id', r.run_id, 'since', r.finished_at)
               ORDER BY l.ord), '[]'::jsonb)
    FROM (SELECT s.run_id, s.finished_at, s.forbidden_listings FROM sync_runs s
          WHERE s.tenant_id = p_tenant AND s.source = p_provider AND s.finished_at IS NOT NULL
            AND (s.status IN ('completed', 'held', 'approved', 'rejected')
                 OR (s.status = 'failed' AND s.failure_reason = 'forbidden'))
          ORDER BY s.finished_at DESC LIMIT 1) r
    CROSS JOIN LATERAL unnest(r.forbidden_listings) WITH ORDINALITY AS l(listing, ord)
    LEFT JOIN listing_permissions lp ON lp.provider = p_provider AND lp.listing = l.listing
$$;

-- The status a connection shows: a connected one whose provider refuses a listing says
-- 'permission_missing' (syncing goes on: the other listings are still read).
CREATE FUNCTION connection_shown_status(p_status text, p_missing jsonb)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_status = 'connected' AND jsonb_array_length(p_missing) > 0
                THEN 'permission_missing' ELSE p_status END
$$;

CREATE INDEX sync_runs_finished ON sync_runs (tenant_id, source, finished_at DESC)
    WHERE finished_at IS NOT NULL;
