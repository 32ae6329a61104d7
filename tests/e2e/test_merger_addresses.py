"""End-to-end test of person_sources.addresses (migration 0023): the merger writes each source
row's addresses, computed in C (merge_person_addresses), with the row; PostgreSQL's
person_source_addresses(fields) is the definition they must equal, for full rows, updates and
deltas of odd values. A writer that does not give them (the previous merger during an upgrade,
a fixture) gets them from the migration's triggers."""
import unittest
import uuid

import harness
import suite
import test_merger as m

# Rows whose column differs from the SQL function (as sets: the order carries no meaning).
MISMATCHES = (
    "SELECT source, source_id, addresses::text, person_source_addresses(fields)::text"
    " FROM person_sources WHERE tenant_id = :'t' AND"
    " ARRAY(SELECT x FROM unnest(addresses) AS x ORDER BY x COLLATE \"C\") IS DISTINCT FROM"
    " ARRAY(SELECT x FROM unnest(person_source_addresses(fields)) AS x ORDER BY x COLLATE \"C\")")


def addresses(t, source, source_id):
    rows = harness.psql("SELECT x FROM person_sources, unnest(addresses) AS x"
                        " WHERE tenant_id = :'t' AND source = :'s' AND source_id = :'id'"
                        " ORDER BY x COLLATE \"C\"", t=t, s=source, id=source_id)
    return [r[0] for r in rows]


class MergerAddressesTest(suite.ServicePerClass, unittest.TestCase):
    START = staticmethod(m.start_merger)

    def test_written_addresses_equal_what_sql_computes(self):
        """The merger's own values: the fallback triggers are off meanwhile (a row written
        without addresses fails, one updated without them keeps its old ones)."""
        harness.psql("ALTER TABLE person_sources DISABLE TRIGGER person_sources_addresses_on_insert;"
                     " ALTER TABLE person_sources DISABLE TRIGGER person_sources_addresses_on_update")
        try:
            self.written_addresses_equal_what_sql_computes()
        finally:
            harness.psql("ALTER TABLE person_sources ENABLE TRIGGER person_sources_addresses_on_insert;"
                         " ALTER TABLE person_sources ENABLE TRIGGER person_sources_addresses_on_update")

    def written_addresses_equal_what_sql_computes(self):
        t = m.relaxed_tenant()
        m.applied_full_run(t, "google", lambda r: [
            m.person(t, "google", r, "g1", "Ada.Lovelace@School.Example",
                     aliases={"values": ["ADA@School.Example", " ada@school.example\t",
                                         "no-at-sign", "@lead.example", "trail@",
                                         "\u00c9lise@\u00c9cole.Example", "a@b"]}),
            m.person(t, "google", r, "g2", "bob@school.example"),
            m.person(t, "google", r, "g3", "cy@school.example", aliases={"values": []})])
        m.applied_full_run(t, "azure", lambda r: [
            m.person(t, "azure", r, "a1", "ada.lovelace@school.example",
                     mail="Ada.L@MS.School.Example",
                     proxy_addresses={"values": ["SMTP:Ada.L@MS.School.Example",
                                                 "smtp:ada.alt@ms.school.example",
                                                 "SmTp: Mixed@MS.example\r\n", "X500:/o=x@y",
                                                 "sip:ada@ms.school.example", "smtp:"]},
                     other_mails={"values": ["ada.private@gmail.example"]}),
            m.person(t, "azure", r, "a4", "dee@school.example",
                     proxy_addresses={"values": ["smtp:DEE@school.example"]})])
        self.assertEqual(harness.psql(MISMATCHES, t=t), [])
        # what the rules give, spelled out once (other_mails never, the raw email never)
        self.assertEqual(addresses(t, "azure", "a1"),
                         ["ada.alt@ms.school.example", "ada.l@ms.school.example",
                          "ada.lovelace@school.example", "mixed@ms.example"])
        self.assertEqual(addresses(t, "google", "g1"),
                         ["a@b", "ada.lovelace@school.example", "ada@school.example",
                          "\u00c9lise@\u00c9cole.example"])

        # an update whose addresses change: the row's new ones, the old ones gone
        m.applied_full_run(t, "google", lambda r: [
            m.person(t, "google", r, "g1", "ada.lovelace@school.example",
                     aliases={"values": ["Countess@School.Example"]}),
            m.person(t, "google", r, "g2", "bob@school.example",
                     aliases={"values": ["Robert@School.Example"]}),
            m.person(t, "google", r, "g3", "cy@school.example", display_name="Cy")])
        self.assertEqual(addresses(t, "google", "g1"),
                         ["ada.lovelace@school.example", "countess@school.example"])
        self.assertEqual(addresses(t, "google", "g2"),
                         ["bob@school.example", "robert@school.example"])

        # deltas: the addresses of the fields as stored after the delta (combined with the
        # stored ones), with and without the address in the delta
        r = str(uuid.uuid4())
        m.publish(t, [m.started(t, "azure", r, kind="RUN_KIND_DELTA"),
                      m.person(t, "azure", r, "a1", "ada.lovelace@school.example",
                               proxy_addresses={"values": ["SMTP:New.Ada@MS.School.Example"]},
                               cleared_fields=["mail"]),
                      m.env_of(t, "azure", r, person_observed={"person": {
                          "source_id": "a4", "job_title": "Teacher",
                          "proxy_addresses": {"values": ["smtp:Dee.D@School.Example"]}}}),
                      m.completed(t, "azure", r, kind="RUN_KIND_DELTA")])
        m.wait_run(t, r)
        self.assertEqual(addresses(t, "azure", "a1"),
                         ["ada.lovelace@school.example", "new.ada@ms.school.example"])
        self.assertEqual(addresses(t, "azure", "a4"),
                         ["dee.d@school.example", "dee@school.example"])
        self.assertEqual(harness.psql(MISMATCHES, t=t), [])
        # the readers find a row by a new address and no longer by an old one
        self.assertEqual(harness.psql(
            "SELECT source_id FROM person_sources WHERE tenant_id = :'t'"
            " AND addresses @> ARRAY['dee.d@school.example']", t=t), [["a4"]])
        self.assertEqual(harness.psql(
            "SELECT count(*) FROM person_sources WHERE tenant_id = :'t'"
            " AND addresses && ARRAY['ada.alt@ms.school.example', 'ada@school.example']",
            t=t), [["0"]])

    def test_a_writer_without_addresses_gets_them_from_the_fields(self):
        """The previous merger runs until its Deployment is rolled (docs/operations.md): its
        inserts and updates do not name the column."""
        t = harness.new_tenant("mg")
        harness.psql(
            "INSERT INTO person_sources (tenant_id, source, source_id, email_norm, content_hash, fields)"
            " VALUES (:'t', 'azure', 'old1', 'x@d.org', 'h', jsonb_build_object("
            " 'email_normalized', 'x@d.org',"
            " 'proxy_addresses', jsonb_build_object('values', jsonb_build_array('SMTP:X.Y@D.org'))))",
            t=t)
        self.assertEqual(addresses(t, "azure", "old1"), ["x.y@d.org", "x@d.org"])
        harness.psql("UPDATE person_sources SET fields = fields || jsonb_build_object('mail',"
                     " 'Mail@D.org') WHERE tenant_id = :'t'", t=t)
        self.assertEqual(addresses(t, "azure", "old1"), ["mail@d.org", "x.y@d.org", "x@d.org"])
        # a writer that gives them is taken at its word (the current merger)
        harness.psql("UPDATE person_sources SET fields = fields - 'mail',"
                     " addresses = '{x.y@d.org,x@d.org}' WHERE tenant_id = :'t'", t=t)
        self.assertEqual(addresses(t, "azure", "old1"), ["x.y@d.org", "x@d.org"])
        self.assertEqual(harness.psql(MISMATCHES, t=t), [])


if __name__ == "__main__":
    unittest.main()
