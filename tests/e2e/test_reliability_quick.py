"""Quick fault tests for `make test` (tests/soak.py runs the large ones and prints the
table): a few SIGKILLs of the merger during a sync, PostgreSQL and Kafka stopped and started
mid-apply, failed and unfinished runs, SIGTERM during a batch. The result must equal an
uninterrupted run's (canonical dump, public event counts, outbox ids all published): no row
lost, no duplicate, nothing deleted by a broken run."""
import unittest

import faults
import harness


class ReliabilityQuickTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()

    def check(self, r):
        self.assertEqual(r["problems"], [], r)
        self.assertEqual(r["rows_lost"], 0, r)
        self.assertEqual(r["duplicates"], 0, r)

    def test_merger_sigkill_during_sync(self):
        r = faults.merger_kills(4, people=1200, devices=150, ous=10, seed=11)
        self.assertGreaterEqual(r["kills"], 3, f"the sync finished before the kills: {r}")
        self.assertTrue(r["alive"], r)
        self.check(r)

    def test_postgresql_restart_mid_apply(self):
        # Down for longer than the merger's reconnect retry (5 s), while events arrive: a
        # batch that fails then must be read again, not skipped.
        r = faults.infra_restart("pg", people=1000, devices=80, pause=15.0)
        self.assertTrue(r["alive"], "the merger died while PostgreSQL was down")
        self.check(r)

    def test_kafka_restart_mid_run(self):
        r = faults.infra_restart("kafka", people=1000, devices=80)
        self.assertTrue(r["alive"], "the merger died while Kafka was down")
        self.check(r)

    def test_failed_and_unfinished_runs_delete_nothing(self):
        r = faults.broken_runs_delete_nothing()
        self.assertEqual(r["removed"], 0, r)
        self.assertEqual(r["google_before"], r["google_after"], r)

    def test_sigterm_during_a_batch(self):
        r = faults.sigterm_mid_batch(people=2500, grace=20.0)
        self.assertEqual(r["exit_code"], 0, r)
        self.assertLess(r["seconds"], 20.0, r)
        self.check(r)


if __name__ == "__main__":
    unittest.main()
