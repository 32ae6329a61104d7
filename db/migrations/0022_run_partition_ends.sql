-- 0022: a run's end is a barrier across the partitions of panel.source.events.
-- The fetchers spread one district's observations over the topic's partitions (keyed by
-- object) and publish the run's RunCompleted / RunFailed once on every partition, with
-- partition_count. Each partition's copy comes after that partition's observations of the
-- run, so the run has been seen whole once every partition has applied its copy: only then
-- does the merger end the run and decide its deletions. One row per copy applied.
CREATE TABLE run_partition_ends (
    tenant_id  text NOT NULL,
    run_id     uuid NOT NULL,
    partition  integer NOT NULL CHECK (partition >= 0),
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_id, partition),
    FOREIGN KEY (tenant_id, run_id) REFERENCES sync_runs ON DELETE CASCADE
);
