-- 0019: retention. Old rows are deleted in small batches by their owning service
-- (docs/operations.md "Retention"); these indexes keep each batch's search short.

-- Published outbox rows, oldest first (the merger deletes them past
-- PANEL_RETENTION_OUTBOX_SENT_HOURS; unsent rows are never touched).
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Ended runs past the retention age that may go: never a held run, never a run that has not
-- ended, never the newest run of its district and source (what the connection views show as
-- the last sync), never the newest run that decided about permissions
-- (connection_missing_permissions reads it).
CREATE FUNCTION retention_prunable_runs(p_age_s bigint)
RETURNS TABLE (tenant_id text, run_id uuid) LANGUAGE sql STABLE AS $$
    SELECT s.tenant_id, s.run_id FROM sync_runs s
    WHERE s.status IN ('completed', 'failed', 'approved', 'rejected', 'expired')
      AND coalesce(s.finished_at, s.requested_at) < now() - make_interval(secs => p_age_s)
      AND EXISTS (SELECT 1 FROM sync_runs n
                  WHERE n.tenant_id = s.tenant_id AND n.source = s.source
                    AND n.requested_at > s.requested_at)
      AND (s.finished_at IS NULL
           OR NOT (s.status IN ('completed', 'approved', 'rejected')
                   OR (s.status = 'failed' AND coalesce(s.failure_reason, '') = 'forbidden'))
           OR EXISTS (SELECT 1 FROM sync_runs d
                      WHERE d.tenant_id = s.tenant_id AND d.source = s.source
                        AND d.finished_at > s.finished_at
                        AND (d.status IN ('completed', 'held', 'approved', 'rejected')
                             OR (d.status = 'failed' AND d.failure_reason = 'forbidden'))))
$$;

-- Stored Idempotency-Key replies, oldest first (the api deletes them past
-- PANEL_API_IDEMPOTENCY_TTL_HOURS).
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Ended admin sessions (auth deletes them; admin_sessions_expiry, signin_states_expiry and
-- oauth_states_expiry exist).
CREATE INDEX admin_sessions_ended ON admin_sessions (ended_at) WHERE ended_at IS NOT NULL;
