"""End-to-end test of the merger's candidate search at scale: the GIN index of source rows'
addresses (person_sources_addresses) keeps a small pending list while the merger writes, so a
batch's search does not read tens of thousands of unmerged entries (migration 0021) (issue 19: at 60,000 people
of a 1,000,000-person first sync each batch's search took 2.4 s, 0.2 s right after a merge)."""
import unittest

import harness
import test_merger as m

# The index's own limit (db/migrations/0021): 64 kB = 8 pages of 8 kB, plus the
# page being filled when an insert passes the limit and merges the list.
PENDING_PAGES_MAX = 9


class AddressIndexTest(unittest.TestCase):
    merger = None

    @classmethod
    def setUpClass(cls):
        harness.require_env()
        harness.psql("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        cls.merger = m.start_merger()

    @classmethod
    def tearDownClass(cls):
        if cls.merger:
            cls.merger.stop()

    def pending(self):
        pages, tuples = harness.psql(
            "SELECT pending_pages, pending_tuples FROM "
            "pgstatginindex('person_sources_addresses')")[0]
        return int(pages), int(tuples)

    def test_address_index_pending_list_stays_small_during_a_large_run(self):
        t = m.relaxed_tenant()
        n = 3000
        g_run, evs = m.full_run(t, "google", lambda r: [
            m.person(t, "google", r, f"g{i}", f"Person.{i}@gin.district.org",
                     display_name=f"Person {i}",
                     aliases={"values": [f"p{i}@gin.district.org", f"p{i}@old.district.org"]})
            for i in range(1, n + 1)])
        m.publish(t, evs)
        self.assertEqual(m.wait_run(t, g_run, timeout=180)["created"], n)
        pages, tuples = self.pending()
        self.assertLessEqual(pages, PENDING_PAGES_MAX,
                             f"{pages} pending pages ({tuples} entries) after {n} rows of "
                             "three addresses: the merger's inserts leave the list unmerged")
        # The index still finds every row by any of its addresses.
        found = harness.psql(
            "SELECT count(*) FROM person_sources WHERE tenant_id = :'t' AND "
            "addresses && ARRAY['p1@old.district.org', "
            "'person.3000@gin.district.org', 'p1500@gin.district.org']", t=t)
        self.assertEqual(found, [["3"]])


if __name__ == "__main__":
    unittest.main()
