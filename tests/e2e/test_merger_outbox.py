"""The outbox relay publishes every outbox row exactly once, also when it dies (or loses
PostgreSQL) after Kafka took the messages but before the rows were marked sent: on start and
after any failure it reconciles with the tails of the public topics (headers
x-panel-outbox-id and x-panel-event-id) before publishing again."""
import collections
import unittest

import harness
import suite


def event_ids(tenant):
    return collections.Counter(e[3] for e in suite.public_events(tenant))


def outbox_event_ids(tenant):
    return {r[0] for r in harness.psql(
        "SELECT event_id FROM outbox WHERE tenant_id = :'t'", t=tenant)}


class MergerOutboxTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()

    def test_rows_published_but_not_marked_are_not_published_again(self):
        tenant = harness.new_tenant("obx")
        first = suite.run_events(tenant, "google", range(40), devices=5, ous=2)
        m = suite.start_merger()
        try:
            suite.apply_run(tenant, first)
        finally:
            m.stop()
        published = outbox_event_ids(tenant)
        self.assertEqual(len(published), 47)
        # The state a crash between Kafka's acknowledgement and the UPDATE leaves behind:
        # the rows are on the topics but not marked sent.
        harness.psql("UPDATE outbox SET sent_at = NULL WHERE tenant_id = :'t'", t=tenant)
        m = suite.start_merger()
        try:
            harness.wait_outbox_drained(tenant)
            reconciled = harness.metric_sum(m, "merger_outbox_reconciled_total")
            # The relay goes on publishing new rows, once each.
            second = suite.run_events(tenant, "azure", range(30, 50))
            suite.apply_run(tenant, second)
        finally:
            m.stop()
        self.assertGreaterEqual(reconciled, 47)
        ids = event_ids(tenant)
        self.assertEqual([i for i, n in ids.items() if n > 1], [], "events published twice")
        everything = outbox_event_ids(tenant)
        self.assertGreater(len(everything), len(published))
        self.assertEqual(set(ids), everything)

    def test_unsent_rows_that_never_reached_kafka_are_published_once(self):
        tenant = harness.new_tenant("obx")
        run = suite.run_events(tenant, "google", range(25))
        m = suite.start_merger()
        try:
            suite.apply_run(tenant, run)
        finally:
            m.stop()
        # A copy of each row under a new outbox id and event id (as if written after the
        # crash): not on any topic yet, so the reconciliation must leave it to be published.
        harness.psql(
            "INSERT INTO outbox (tenant_id, event_id, topic, msg_key, payload)"
            " SELECT tenant_id, gen_random_uuid(), topic, msg_key, payload FROM outbox"
            " WHERE tenant_id = :'t' ORDER BY outbox_id", t=tenant)
        harness.psql("UPDATE outbox SET sent_at = NULL WHERE tenant_id = :'t'", t=tenant)
        m = suite.start_merger()
        try:
            harness.wait_outbox_drained(tenant)
            reconciled = harness.metric_sum(m, "merger_outbox_reconciled_total")
        finally:
            m.stop()
        self.assertEqual(reconciled, 25)
        # each payload (same event id inside) is now on the topic exactly twice: the original
        # publication and the copy's; none of the originals a third time
        ids = event_ids(tenant)
        self.assertEqual(len(ids), 25)
        self.assertEqual(set(ids.values()), {2})

    def test_unsent_gauge_counts_a_stuck_outbox_and_is_0_once_drained(self):
        # A row Kafka never takes (over the message limit) fails every round: the relay counts
        # what waits (at most every 10 s). Once it is gone, the first round that finds less than
        # a full batch drains the outbox and sets both gauges to 0 without counting.
        tenant = harness.new_tenant("obx")
        stuck = "DELETE FROM outbox WHERE tenant_id = :'t'"
        harness.psql("INSERT INTO outbox (tenant_id, event_id, topic, msg_key, payload)"
                     " VALUES (:'t', gen_random_uuid(), 'panel.people.events', :'t' || '/stuck',"
                     " convert_to(repeat('x', 1024 * 1024 + 1), 'UTF8'))", t=tenant)
        m = None
        try:
            m = suite.start_merger()
            harness.wait_until(lambda: (harness.metric(m, "merger_outbox_unsent") or 0) >= 1,
                               timeout=30, what="the unsent gauge to count the stuck row")
            self.assertGreater(harness.metric(m, "merger_outbox_oldest_unsent_seconds"), 0)
            self.assertGreaterEqual(harness.metric_sum(m, "merger_outbox_errors_total"), 1)
            harness.psql(stuck, t=tenant)
            harness.wait_until(lambda: (harness.metric(m, "merger_outbox_unsent"),
                                        harness.metric(m, "merger_outbox_oldest_unsent_seconds"))
                               == (0.0, 0.0), timeout=30, what="the gauges to reach 0")
            self.assertEqual(harness.psql("SELECT count(*) FROM outbox WHERE sent_at IS NULL"),
                             [["0"]])
        finally:
            harness.psql(stuck, t=tenant)  # never left to block other tests' relays
            if m:
                m.stop()



if __name__ == "__main__":
    unittest.main()
