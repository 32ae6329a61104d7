"""One district spread over the partitions of panel.source.events (issue 19): the merger's
workers apply its partitions at once, a run ends only once every partition has applied its
copy of RunCompleted (the barrier), and the two clouds' rows of one Person, on different
partitions, still make one Person. Events are put on chosen partitions through their Kafka
key (the producer's partitioner hashes a key with CRC-32, as librdkafka's default does)."""
import unittest
import uuid
import zlib

import harness
from test_merger import (completed, failed, person, publish, relaxed_tenant, run_row, started,
                         start_merger, wait_run)

PARTITIONS = 4


def key_on(tenant, partition):
    """A Kafka key that the default partitioner puts on partition."""
    for i in range(10000):
        k = f"{tenant}/p{partition}/{i}"
        if zlib.crc32(k.encode()) % PARTITIONS == partition:
            return k
    raise AssertionError("no key found")


def spread_end(event):
    """event (a RunCompleted envelope) as a copy of a run spread over every partition."""
    event["run_completed"]["partition_count"] = PARTITIONS
    return event


def live_people(tenant):
    return harness.psql("SELECT email_norm, array_to_string(sources, ',') FROM people"
                        " WHERE tenant_id = :'t' AND removed_at IS NULL ORDER BY 1", t=tenant)


class MergerPartitionsTest(unittest.TestCase):
    merger = None

    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.merger = start_merger(PANEL_MERGER_WORKERS="2")

    @classmethod
    def tearDownClass(cls):
        if cls.merger:
            cls.merger.stop()

    def test_keys_land_on_the_chosen_partitions(self):
        t = harness.new_tenant("pk")
        for p in range(PARTITIONS):
            publish(key_on(t, p), [started(t, "google", str(uuid.uuid4()))])
        seen = {m["key"]: m["partition"] for m in harness.consume(
            "panel.source.events", key_prefix=t + "/")}
        self.assertEqual({k: p for k, p in seen.items()},
                         {key_on(t, p): p for p in range(PARTITIONS)})

    def test_a_run_ends_only_when_every_partition_has_applied_its_end(self):
        t = relaxed_tenant()
        # A first, single-partition run: four People.
        r1 = str(uuid.uuid4())
        publish(t, [started(t, "google", r1)] +
                [person(t, "google", r1, f"g{i}", f"p{i}@d.example") for i in range(4)] +
                [completed(t, "google", r1)])
        wait_run(t, r1)
        # A full run spread over the partitions: p0 and p1 observed on partition 0, p2 on
        # partition 3, which lags; p3 is gone.
        r2 = str(uuid.uuid4())
        for p in range(PARTITIONS):
            publish(key_on(t, p), [started(t, "google", r2)])
        publish(key_on(t, 0), [person(t, "google", r2, "g0", "p0@d.example"),
                               person(t, "google", r2, "g1", "p1@d.example"),
                               spread_end(completed(t, "google", r2))])
        for p in (1, 2):
            publish(key_on(t, p), [spread_end(completed(t, "google", r2))])
        harness.wait_until(lambda: harness.psql(
            "SELECT count(*) FROM run_partition_ends WHERE tenant_id = :'t'",
            t=t)[0][0] == "3", what="three partitions' ends applied")
        # Three of four ends applied: the run is not over and nothing is removed (without the
        # barrier, the first end would have removed p2 and p3, unseen so far).
        self.assertEqual(run_row(t, r2)["status"], "running")
        self.assertEqual([e for e, _ in live_people(t)],
                         ["p0@d.example", "p1@d.example", "p2@d.example", "p3@d.example"])
        publish(key_on(t, 3), [person(t, "google", r2, "g2", "p2@d.example"),
                               spread_end(completed(t, "google", r2))])
        row = wait_run(t, r2)
        self.assertEqual(row["status"], "completed")
        self.assertEqual(row["seen"], 3)
        self.assertEqual(row["removed"], 1)
        self.assertEqual([e for e, _ in live_people(t)],
                         ["p0@d.example", "p1@d.example", "p2@d.example"])
        # The barrier's rows go with the run's end; a late duplicate end changes nothing.
        self.assertEqual(harness.psql("SELECT count(*) FROM run_partition_ends"
                                      " WHERE tenant_id = :'t'", t=t)[0][0], "0")
        publish(key_on(t, 2), [spread_end(completed(t, "google", r2))])
        r3 = str(uuid.uuid4())
        publish(key_on(t, 2), [started(t, "google", r3), completed(t, "google", r3)])
        wait_run(t, r3)  # after the duplicate end on the same partition
        self.assertEqual(run_row(t, r2)["removed"], 1)

    def test_an_end_naming_partitions_the_topic_lacks_is_dead_lettered_and_fails_its_run(self):
        """An end whose barrier could never pass (a count past 65535, or more partitions than
        the topic has) is refused with its reason, and its run fails at once without removing
        anything, instead of staying running until auth expires it."""
        t = relaxed_tenant()
        r1 = str(uuid.uuid4())
        publish(t, [started(t, "google", r1)] +
                [person(t, "google", r1, f"g{i}", f"p{i}@d.example") for i in range(2)] +
                [completed(t, "google", r1)])
        wait_run(t, r1)
        cases = {}  # run -> the reason its end is refused for
        for count, end, why in (
                (70000, completed, "partition_count of a run's end above 65535"),
                (PARTITIONS + 1, failed,
                 "partition_count of a run's end above the topic's partitions")):
            run = str(uuid.uuid4())
            bad = end(t, "google", run)
            bad["run_completed" if end is completed else "run_failed"]["partition_count"] = count
            # seen nobody: had the end passed, the full run would have removed both People
            publish(t, [started(t, "google", run), bad])
            cases[run] = why
        for run, why in cases.items():
            wait_run(t, run, statuses=("failed",))
            self.assertEqual(harness.psql(
                "SELECT failure_reason, message, removed FROM sync_runs"
                " WHERE tenant_id = :'t' AND run_id = :'r'", t=t, r=run),
                [["invalid_end", "the run's end was refused (dead-lettered): " + why, "0"]])
        self.assertEqual([e for e, _ in live_people(t)], ["p0@d.example", "p1@d.example"])
        dlq = harness.wait_until(
            lambda: [m for m in harness.consume("panel.source.events.dlq", timeout_ms=2000)
                     if m["key"] == t] or None, timeout=30, what="the refused ends")
        self.assertEqual(sorted(m["headers"]["x-panel-dlq-reason"] for m in dlq),
                         sorted(cases.values()))
        self.assertEqual(sorted(m["event"]["run_id"] for m in dlq), sorted(cases))

    def test_both_clouds_of_one_person_on_other_partitions_make_one_person(self):
        """Google's rows on partitions 0 and 1, Azure's on 2 and 3, applied by two workers at
        once; some Azure accounts link only through a proxy address."""
        t = relaxed_tenant()
        n = 600
        rg, ra = str(uuid.uuid4()), str(uuid.uuid4())
        for p in range(PARTITIONS):
            publish(key_on(t, p), [started(t, "google", rg), started(t, "azure", ra)])

        def azure(i):
            if i % 10 == 0:  # another primary address; the Google one as an SMTP proxy
                return person(t, "azure", ra, f"a{i}", f"other.{i}@d.example",
                              proxy_addresses={"values": [f"smtp:user.{i}@d.example"]})
            return person(t, "azure", ra, f"a{i}", f"user.{i}@d.example")

        batches = {p: [] for p in range(PARTITIONS)}
        for i in range(n):
            batches[i % 2].append(person(t, "google", rg, f"g{i}", f"user.{i}@d.example"))
            batches[2 + i % 2].append(azure(i))
        # interleave the two clouds' publishing so both workers have work at the same time
        for chunk in range(0, n // 2, 50):
            for p in range(PARTITIONS):
                publish(key_on(t, p), batches[p][chunk:chunk + 50])
        for p in range(PARTITIONS):
            publish(key_on(t, p), [spread_end(completed(t, "google", rg)),
                                   spread_end(completed(t, "azure", ra))])
        self.assertEqual(wait_run(t, rg, timeout=180)["seen"], n)
        self.assertEqual(wait_run(t, ra, timeout=180)["seen"], n)
        people = live_people(t)
        self.assertEqual(len(people), n)
        self.assertEqual({s for _, s in people}, {"google,azure"})
        self.assertEqual(harness.psql("SELECT count(*) FROM match_cases WHERE tenant_id = :'t'",
                                      t=t)[0][0], "0")
        # each account is linked, and to the Person of its address
        self.assertEqual(harness.psql(
            "SELECT count(*) FROM person_sources ps JOIN people p USING (tenant_id, person_id)"
            " WHERE ps.tenant_id = :'t' AND ps.removed_at IS NULL", t=t)[0][0], str(2 * n))

    def test_a_proxy_address_links_two_clouds_within_one_batch(self):
        """An Azure account whose Google address is only a proxy address, and that Google
        account, in the same batch: one Person, as when they arrive in two batches (before,
        a batch grouped its new People by primary address only and made two)."""
        t = relaxed_tenant()
        rg, ra, n = str(uuid.uuid4()), str(uuid.uuid4()), 30
        evs = [started(t, "azure", ra), started(t, "google", rg)]
        for i in range(n):
            evs.append(person(t, "azure", ra, f"a{i}", f"other.{i}@d.example",
                              proxy_addresses={"values": [f"smtp:User.{i}@d.example"]}))
            evs.append(person(t, "google", rg, f"g{i}", f"user.{i}@d.example"))
        publish(t, evs + [completed(t, "azure", ra), completed(t, "google", rg)])
        wait_run(t, ra)
        wait_run(t, rg)
        people = live_people(t)
        self.assertEqual(len(people), n, people)
        self.assertEqual({s for _, s in people}, {"google,azure"})


if __name__ == "__main__":
    unittest.main()
