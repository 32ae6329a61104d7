"""The merger's retention deletes published outbox rows, ended runs with their outcomes and
the leftovers of ended runs once they are past their ages, in small batches, while the relay
goes on publishing: never an unsent outbox row, a row that is too young, a held run, the
newest run of a district and source, nor the run the connection views read for missing
permissions. retention_pruned_rows_total{table=...} counts what went."""
import collections
import unittest
import uuid

import harness
import suite

OLD = "400 days"
RETENTION_ENV = {
    "PANEL_RETENTION_OUTBOX_SENT_HOURS": str(300 * 24),
    "PANEL_RETENTION_RUNS_DAYS": "300",
    "PANEL_RETENTION_RUN_LEFTOVERS_HOURS": str(300 * 24),
    "PANEL_RETENTION_INTERVAL_S": "1",
    "PANEL_RETENTION_BATCH": "50",
}
OFF_ENV = {"PANEL_RETENTION_OUTBOX_SENT_HOURS": "0", "PANEL_RETENTION_RUNS_DAYS": "0",
           "PANEL_RETENTION_RUN_LEFTOVERS_HOURS": "0"}


def add_run(tenant, source, status, age, failure=None, outcomes=0, held=0, seen=0, reported=0):
    run = str(uuid.uuid4())
    harness.psql(
        "INSERT INTO sync_runs (tenant_id, run_id, source, status, failure_reason,"
        " requested_at, started_at, finished_at)"
        " VALUES (:'t', :'r', :'s', :'st', NULLIF(:'f', ''), now() - :'age'::interval,"
        " now() - :'age'::interval, now() - :'age'::interval + interval '1 minute')",
        t=tenant, r=run, s=source, st=status, f=failure or "", age=age)
    harness.psql(
        "INSERT INTO run_outcomes (tenant_id, run_id, object_kind, source_id, outcome, reason,"
        " source) SELECT :'t', :'r', 'person', 'p' || g, 'skipped', 'no email', :'s'"
        " FROM generate_series(1, :n) g", t=tenant, r=run, s=source, n=outcomes)
    harness.psql(
        "INSERT INTO run_outcomes (tenant_id, run_id, object_kind, source_id, outcome, reason,"
        " source) SELECT :'t', :'r', 'person', 'h' || g, 'held_removal', 'threshold', :'s'"
        " FROM generate_series(1, :n) g", t=tenant, r=run, s=source, n=held)
    harness.psql(
        "INSERT INTO run_seen (tenant_id, run_id, object_kind, source_id)"
        " SELECT :'t', :'r', 'person', 'p' || g FROM generate_series(1, :n) g",
        t=tenant, r=run, n=seen)
    harness.psql(
        "INSERT INTO run_reported_removals (tenant_id, run_id, object_kind, source, source_id)"
        " SELECT :'t', :'r', 'person', :'s', 'p' || g FROM generate_series(1, :n) g",
        t=tenant, r=run, s=source, n=reported)
    return run


class MergerRetentionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()

    def test_old_rows_are_pruned_while_the_relay_publishes(self):
        tenant = harness.new_tenant("ret")
        other = harness.new_tenant("ret")
        first = suite.run_events(tenant, "google", range(20), devices=3)
        m = suite.start_merger(OFF_ENV)
        try:
            suite.apply_run(tenant, first)
        finally:
            m.stop()
        first_rows = suite.count("SELECT count(*) FROM outbox WHERE tenant_id = :'t'", t=tenant)
        self.assertGreater(first_rows, 20)
        # Published long ago, plus 3000 more such rows so that pruning takes many batches.
        harness.psql("UPDATE outbox SET created_at = now() - :'a'::interval,"
                     " sent_at = now() - :'a'::interval WHERE tenant_id = :'t'",
                     t=tenant, a=OLD)
        harness.psql(
            "INSERT INTO outbox (tenant_id, event_id, topic, msg_key, payload, created_at,"
            " sent_at) SELECT o.tenant_id, gen_random_uuid(), o.topic, o.msg_key, o.payload,"
            " o.created_at, o.sent_at FROM outbox o, generate_series(1, 3000 / :n + 1) g"
            " WHERE o.tenant_id = :'t' LIMIT 3000", t=tenant, n=first_rows)
        old_sent = suite.count("SELECT count(*) FROM outbox WHERE tenant_id = :'t'", t=tenant)
        # Written long ago but never published: published now, and kept.
        unsent = harness.psql(
            "INSERT INTO outbox (tenant_id, event_id, topic, msg_key, payload, created_at)"
            " SELECT tenant_id, gen_random_uuid(), topic, msg_key, payload,"
            " now() - :'a'::interval FROM outbox WHERE tenant_id = :'t' LIMIT 1"
            " RETURNING event_id", t=tenant, a=OLD)[0][0]
        # Sent recently: too young.
        young = harness.psql(
            "INSERT INTO outbox (tenant_id, event_id, topic, msg_key, payload, created_at,"
            " sent_at) SELECT tenant_id, gen_random_uuid(), topic, msg_key, payload,"
            " now() - interval '10 days', now() - interval '10 days' FROM outbox"
            " WHERE tenant_id = :'t' LIMIT 1 RETURNING event_id", t=tenant, a=OLD)[0][0]
        self.assertEqual(suite.count("SELECT count(*) FROM outbox WHERE sent_at < now() -"
                               " interval '300 days'"), old_sent,
                         "only this test's rows are past the retention")

        gone = {
            "completed": add_run(tenant, "google", "completed", OLD, outcomes=3),
            "failed": add_run(tenant, "google", "failed", OLD, failure="timeout", seen=2,
                              reported=1),
        }
        kept = {
            "held": add_run(tenant, "google", "held", OLD, held=2),
            "young": add_run(tenant, "google", "completed", "10 days", outcomes=1),
            # other district: its newest run, and its newest run that read the listings
            "newest decider": add_run(other, "google", "completed", "500 days", outcomes=2),
            "newest": add_run(other, "google", "failed", OLD, failure="timeout", outcomes=1,
                              seen=1),
        }
        kept["first"] = first[0]["run_id"]

        second = suite.run_events(tenant, "azure", range(100, 130))
        suite.publish(tenant, second)  # waiting when the merger starts: applied while pruning
        m = suite.start_merger(RETENTION_ENV)
        try:
            harness.wait_until(lambda: suite.count(
                "SELECT count(*) FROM outbox WHERE sent_at < now() - interval '300 days'") == 0
                and suite.count("SELECT count(*) FROM sync_runs WHERE run_id IN (:'a', :'b')",
                          a=gone["completed"], b=gone["failed"]) == 0,
                timeout=120, what="the old rows to be pruned")
            suite.wait_run(tenant, second[0]["run_id"], ("completed",))
            harness.wait_outbox_drained(tenant)
            # the relay goes on after pruning too
            third = suite.run_events(tenant, "azure", range(100, 140))
            suite.apply_run(tenant, third)
            counts = {t: suite.retention_pruned(m, t)
                      for t in ("outbox", "run_outcomes", "sync_runs", "run_seen",
                                "run_reported_removals")}
        finally:
            m.stop()

        self.assertEqual(counts, {"outbox": old_sent, "run_outcomes": 3, "sync_runs": 2,
                                  "run_seen": 3, "run_reported_removals": 1})
        rows = {r[0] for r in harness.psql(
            "SELECT event_id FROM outbox WHERE tenant_id = :'t'", t=tenant)}
        self.assertIn(unsent, rows)
        self.assertIn(young, rows)
        self.assertEqual(suite.count("SELECT count(*) FROM outbox WHERE tenant_id = :'t'"
                               " AND sent_at IS NULL", t=tenant), 0)
        # every event of the runs applied during and after pruning reached the topics once
        on_topics = collections.Counter(e[3] for e in suite.public_events(tenant))
        self.assertEqual([i for i, n in on_topics.items() if n > 1 and i in rows], [])
        recent = {r[0] for r in harness.psql(
            "SELECT event_id FROM outbox WHERE tenant_id = :'t' AND created_at > now() -"
            " interval '1 day' AND event_id <> :'u' AND topic <> 'panel.sync.events'",
            t=tenant, u=unsent)}
        self.assertGreaterEqual(len(recent), 40)
        self.assertTrue(recent <= set(on_topics), "events missing from the topics")
        for name, run in kept.items():
            self.assertEqual(suite.count("SELECT count(*) FROM sync_runs WHERE run_id = :'r'",
                                         r=run), 1, f"the {name} run was deleted")
        self.assertEqual(suite.count("SELECT count(*) FROM run_outcomes WHERE run_id = :'r'",
                               r=kept["held"]), 2)
        self.assertEqual(suite.count("SELECT count(*) FROM run_outcomes WHERE run_id = :'r'",
                               r=kept["newest decider"]), 2)
        self.assertEqual(suite.count("SELECT count(*) FROM run_seen WHERE run_id = :'r'",
                               r=kept["newest"]), 0, "the leftovers of a kept ended run stay")
        for run in gone.values():
            for table in ("run_outcomes", "run_seen", "run_reported_removals"):
                self.assertEqual(suite.count(f"SELECT count(*) FROM {table} WHERE run_id = :'r'",
                                       r=run), 0)


if __name__ == "__main__":
    unittest.main()
