-- 0004: the merger's bookkeeping. Directory tables keep the meaning 0001 gives them.

-- Which objects a run has observed so far. A full run's RunCompleted removes what is not
-- listed here; the rows of a run are dropped when the run ends. Kept apart from the source
-- rows so that a resync that changes nothing writes no directory rows at all.
CREATE TABLE run_seen (
    tenant_id   text NOT NULL,
    run_id      uuid NOT NULL,
    object_kind text NOT NULL CHECK (object_kind IN ('person', 'org_unit', 'device')),
    source_id   text NOT NULL,
    PRIMARY KEY (tenant_id, run_id, object_kind, source_id)
);

-- Held deletions of a run (run_outcomes rows with outcome 'held_removal') name the source.
ALTER TABLE run_outcomes ADD COLUMN source text;

