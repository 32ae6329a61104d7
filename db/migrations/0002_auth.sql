-- 0002: auth — key ids beside every sealed value, the sealed grant kept only for a pending
-- remote revoke, and the sync-request outbox flag on sync_runs.

-- The PKCE verifier is sealed like a grant; its key id sits beside it.
ALTER TABLE oauth_states ADD COLUMN verifier_key_id text;
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

-- After a de-authorization whose remote revoke failed, the grant is no longer usable (the
-- connection holds none) but is kept sealed here until Google confirms the revoke.
ALTER TABLE connections ADD COLUMN revoke_sealed bytea;
ALTER TABLE connections ADD COLUMN revoke_key_id text;

-- A sync request is written here first (publish_pending = true) and published afterwards, so
-- a crash between the two neither loses the request nor creates a second run.
ALTER TABLE sync_runs ADD COLUMN publish_pending boolean NOT NULL DEFAULT false;
ALTER TABLE sync_runs ADD COLUMN requested_by text;
CREATE INDEX sync_runs_publish ON sync_runs (requested_at) WHERE publish_pending;
CREATE INDEX sync_runs_inflight ON sync_runs (tenant_id, source)
    WHERE status IN ('requested', 'running');
