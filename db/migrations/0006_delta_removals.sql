-- 0006: removals reported by an Azure delta run wait for the run's RunCompleted (and the
-- deletion threshold) like a full run's; a run's kind is what its RunCompleted says.

-- Objects a delta run reported as permanently deleted (Graph "@removed": {"reason":
-- "deleted"}), not yet applied. RunCompleted applies (or holds) them; RunFailed drops them;
-- an observation of the same object later in the run cancels its row.
CREATE TABLE run_reported_removals (
    tenant_id   text NOT NULL,
    run_id      uuid NOT NULL,
    object_kind text NOT NULL CHECK (object_kind IN ('person', 'org_unit', 'device')),
    source      text NOT NULL CHECK (source IN ('google', 'azure')),
    source_id   text NOT NULL,
    PRIMARY KEY (tenant_id, run_id, object_kind, source, source_id)
);

-- Observation events the merger received for a run (each event once, duplicates of one
-- object included), compared with RunCompleted.counts: fewer means events went missing and
-- the run's removals wait for an admin.
ALTER TABLE sync_runs ADD COLUMN observed bigint NOT NULL DEFAULT 0;

-- A held removal is cancelled when its object is observed again before the approval.
CREATE INDEX run_outcomes_held_removal ON run_outcomes (tenant_id, source, source_id)
    WHERE outcome = 'held_removal';
