"""End-to-end tests of panel-merger on the real Kafka and PostgreSQL: source events are
published with `panelctl publish`, the state is read with psql, the public events with
`panelctl consume`."""
import json
import os
import random
import subprocess
import time
import unittest
import uuid

import harness

SECRET = "merger-test-secret-of-the-api"  # the api's: only the api calls the merger
SOURCE_TOPIC = "panel.source.events"


def publish(key, events, topic=SOURCE_TOPIC, raw=False):
    args = [harness.binary("panelctl"), "publish", topic, key] + (["--raw"] if raw else [])
    data = "\n".join(e if raw else json.dumps(e) for e in events) + "\n"
    p = subprocess.run(args, input=data, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"panelctl publish failed: {p.stderr}")


def env_of(tenant, source, run_id, **payload):
    e = {"tenant_id": tenant, "source": "SOURCE_" + source.upper(), "run_id": run_id}
    e.update(payload)
    return e


def started(tenant, source, run_id, kind="RUN_KIND_FULL", preview=False):
    return env_of(tenant, source, run_id,
                  run_started={"kind": kind, "reason": "test", "preview": preview})


def completed(tenant, source, run_id, kind="RUN_KIND_FULL"):
    return env_of(tenant, source, run_id, run_completed={"kind": kind})


def failed(tenant, source, run_id):
    return env_of(tenant, source, run_id,
                  run_failed={"reason": "RUN_FAILURE_REASON_THROTTLED", "message": "test"})


def person(tenant, source, run_id, source_id, email, **fields):
    p = {"source_id": source_id, "email": email}
    p.update(fields)
    return env_of(tenant, source, run_id, person_observed={"person": p})


def device(tenant, run_id, device_id, **fields):
    d = {"device_id": device_id}
    d.update(fields)
    return env_of(tenant, "google", run_id, device_observed={"device": d})


def orgunit(tenant, run_id, ou_id, path, **fields):
    o = {"org_unit_id": ou_id, "path": path}
    o.update(fields)
    return env_of(tenant, "google", run_id, org_unit_observed={"org_unit": o})


def full_run(tenant, source, observations_fn, end="completed"):
    """A run's events: RunStarted, the observations, RunCompleted/RunFailed/nothing."""
    run_id = str(uuid.uuid4())
    evs = [started(tenant, source, run_id)] + observations_fn(run_id)
    if end == "completed":
        evs.append(completed(tenant, source, run_id))
    elif end == "failed":
        evs.append(failed(tenant, source, run_id))
    return run_id, evs


def applied_full_run(tenant, source, observations_fn):
    """A completed full run (see full_run), published and waited for until the merger has
    applied it: the state a test then changes. Its run id."""
    run_id, evs = full_run(tenant, source, observations_fn)
    publish(tenant, evs)
    wait_run(tenant, run_id)
    return run_id


def run_row(tenant, run_id):
    rows = harness.psql("SELECT status, seen, created, updated, unchanged, removed, "
                        "pending_removals, skipped, match_cases FROM sync_runs "
                        "WHERE tenant_id = :'t' AND run_id = :'r'", t=tenant, r=run_id)
    if not rows:
        return None
    s = rows[0]
    return {"status": s[0], "seen": int(s[1]), "created": int(s[2]), "updated": int(s[3]),
            "unchanged": int(s[4]), "removed": int(s[5]), "pending_removals": int(s[6]),
            "skipped": int(s[7]), "match_cases": int(s[8])}


def wait_run(tenant, run_id, statuses=("completed",), timeout=60):
    def done():
        r = run_row(tenant, run_id)
        return r if r and r["status"] in statuses else None
    return harness.wait_until(done, timeout=timeout, what=f"run {run_id} in {statuses}")


def people(tenant):
    rows = harness.psql(
        "SELECT email_norm, display_name, coalesce(given_name, ''), coalesce(org_unit_path, ''),"
        " array_to_string(sources, ','), provenance::text, removed_at IS NOT NULL, person_id,"
        " fields::text, version FROM people WHERE tenant_id = :'t' AND version > 0"
        " ORDER BY email_norm", t=tenant)
    return {r[0]: {"display_name": r[1], "given_name": r[2], "org_unit_path": r[3],
                   "sources": r[4], "provenance": json.loads(r[5]), "removed": r[6] == "t",
                   "person_id": r[7], "fields": json.loads(r[8]), "version": int(r[9])}
            for r in rows}


def outbox_drained(tenant=None, timeout=60):
    """Wait until the relay published every outbox row of tenant (of every tenant when None):
    public events are read after it."""
    harness.wait_until(lambda: harness.psql(
        "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
        + (" AND tenant_id = :'t'" if tenant else ""), **({"t": tenant} if tenant else {}))
        == [["0"]], timeout=timeout, what=f"the outbox of {tenant or 'every tenant'} to drain")


def relaxed_tenant():
    """A tenant whose deletion threshold never holds (for tests about removal itself)."""
    t = harness.new_tenant("mg")
    harness.psql("UPDATE tenants SET delete_threshold_count = 100000, "
                 "delete_threshold_percent = 100 WHERE tenant_id = :'t'", t=t)
    return t


def start_merger(**extra):
    env = {"PANEL_MERGER_CALLER_SECRETS": "api:" + SECRET, "PANEL_MERGER_BATCH_MS": "50"}
    env.update(extra)
    return harness.Process("panel-merger", env=env)


class MergerTest(unittest.TestCase):
    merger = None

    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.merger = start_merger()

    @classmethod
    def tearDownClass(cls):
        if cls.merger:
            cls.merger.stop()

    # ------------------------------------------------------------ precedence

    def _both_clouds(self, azure_first):
        t = relaxed_tenant()

        def google_obs(r):
            return [person(t, "google", r, "g-bob", "Bob.Smith@District.org",
                           given_name="Robert", family_name="Smith",
                           display_name="Robert Smith", org_unit_path="/Staff/Teachers"),
                    person(t, "google", r, "g-only", "ann@district.org", display_name="Ann Lee",
                           org_unit_path="/Students")]

        def azure_obs(r):
            return [person(t, "azure", r, "a-bob", " bob.smith@district.org ",
                           display_name="Bob Smith", job_title="Teacher"),
                    person(t, "azure", r, "a-only", "carl@district.org",
                           display_name="Carl Diaz", department="IT")]

        g_run, g_evs = full_run(t, "google", google_obs)
        a_run, a_evs = full_run(t, "azure", azure_obs)
        first, second = (a_evs, g_evs) if azure_first else (g_evs, a_evs)
        publish(t, first)
        publish(t, second)
        wait_run(t, g_run)
        wait_run(t, a_run)
        ppl = people(t)
        self.assertEqual(sorted(ppl), ["ann@district.org", "bob.smith@district.org",
                                       "carl@district.org"])
        bob = ppl["bob.smith@district.org"]
        self.assertEqual(bob["display_name"], "Bob Smith")       # Azure wins
        self.assertEqual(bob["given_name"], "Robert")            # only Google has it
        self.assertEqual(bob["org_unit_path"], "/Staff/Teachers")  # only Google has it
        self.assertEqual(bob["fields"]["job_title"], "Teacher")
        self.assertEqual(bob["sources"], "google,azure")
        self.assertEqual(bob["provenance"]["display_name"], "azure")
        self.assertEqual(bob["provenance"]["org_unit_path"], "google")
        self.assertEqual(bob["provenance"]["given_name"], "google")
        self.assertEqual(ppl["ann@district.org"]["sources"], "google")
        self.assertEqual(ppl["carl@district.org"]["sources"], "azure")
        self.assertEqual(ppl["carl@district.org"]["fields"]["department"], "IT")
        return ppl

    def test_both_clouds_google_first_azure_wins_field_by_field(self):
        ppl = self._both_clouds(azure_first=False)
        # the public event stream shows the merged Person, keyed by tenant/person
        bob = ppl["bob.smith@district.org"]
        tenant_key = None
        outbox_drained()
        evs = harness.consume("panel.people.events", timeout_ms=3000)
        mine = [e for e in evs if e["key"].endswith("/" + bob["person_id"])]
        self.assertEqual([e["event"]["person_changed"]["kind"] for e in mine],
                         ["CHANGE_KIND_CREATED", "CHANGE_KIND_UPDATED"])
        last = mine[-1]["event"]["person_changed"]
        self.assertEqual(last["person"]["fields"]["display_name"], "Bob Smith")
        self.assertIn("display_name", last["changed_fields"])
        self.assertEqual(last["person"]["sources"], ["SOURCE_GOOGLE", "SOURCE_AZURE"])
        del tenant_key

    def test_both_clouds_azure_first_same_result(self):
        a = self._both_clouds(azure_first=True)
        bob = a["bob.smith@district.org"]
        self.assertEqual(bob["fields"]["email_normalized"], "bob.smith@district.org")

    def test_person_joined_through_a_proxy_address_is_one_whatever_the_order(self):
        """Entra keeps a Google address only as an smtp: proxy address (its mail is elsewhere):
        the two rows are one Person whichever cloud is applied first (the merge is a function,
        not an order; with Azure first, Google's address used to find no Person)."""
        for azure_first in (False, True):
            t = relaxed_tenant()

            def google_obs(r):
                return [person(t, "google", r, "g-pat", "pat.proxy@district.org",
                               display_name="Pat Proxy")]

            def azure_obs(r):
                return [person(t, "azure", r, "a-pat", "Pat.Proxy@ms.district.org",
                               mail="Pat.Proxy@ms.district.org", display_name="Patricia Proxy",
                               proxy_addresses={"values": ["SMTP:Pat.Proxy@ms.district.org",
                                                           "smtp:pat.proxy@district.org"]})]

            g_run, g_evs = full_run(t, "google", google_obs)
            a_run, a_evs = full_run(t, "azure", azure_obs)
            order = [(a_run, a_evs), (g_run, g_evs)] if azure_first else \
                [(g_run, g_evs), (a_run, a_evs)]
            for run_id, evs in order:
                publish(t, evs)
                wait_run(t, run_id)
            ps = [p for p in people(t).values() if not p["removed"]]
            self.assertEqual(len(ps), 1, (azure_first, ps))
            self.assertEqual(sorted(ps[0]["sources"].split(",")), ["azure", "google"],
                             azure_first)
            self.assertEqual(ps[0]["display_name"], "Patricia Proxy", azure_first)

    def test_proxy_address_search_is_per_batch_not_per_row_of_the_tenant(self):
        """A Google run meeting a large Entra tenant whose rows know the Google addresses only
        as smtp: proxy addresses: every Google row joins its Person, and the run is not
        quadratic in (batch x source rows of the tenant): the candidate search probes the
        address index once per batch (with one probe per key and row, a 2,000-event batch
        over 20,000 rows ran for many minutes)."""
        t = relaxed_tenant()
        harness.psql(
            "INSERT INTO people (tenant_id, email_norm, display_name, sources) "
            "SELECT :'t', 'm' || n || '@ms.d.org', 'Entra ' || n, '{azure}' "
            "FROM generate_series(1, 20000) n", t=t)
        harness.psql(
            "INSERT INTO person_sources (tenant_id, source, source_id, person_id, email_norm, "
            "fields, content_hash) SELECT p.tenant_id, 'azure', 'a' || p.n, p.person_id, "
            "p.email_norm, jsonb_build_object('email_normalized', p.email_norm, 'mail', "
            "p.email_norm, 'proxy_addresses', jsonb_build_object('values', jsonb_build_array("
            "'SMTP:' || p.email_norm, 'smtp:u' || p.n || '@d.org'))), 'h' "
            "FROM (SELECT tenant_id, person_id, email_norm, substr(email_norm, 2, "
            "position('@' in email_norm) - 2) AS n FROM people WHERE tenant_id = :'t') p", t=t)
        harness.psql("ANALYZE people; ANALYZE person_sources")
        n = 1000
        g_run, evs = full_run(t, "google", lambda r: [
            person(t, "google", r, f"g{i}", f"U{i}@d.org", display_name=f"Google {i}")
            for i in range(1, n + 1)])
        publish(t, evs)
        self.assertEqual(wait_run(t, g_run, timeout=90)["match_cases"], 0)
        joined = harness.psql(
            "SELECT count(*), count(DISTINCT g.person_id) FROM person_sources g "
            "JOIN person_sources a ON a.tenant_id = g.tenant_id AND a.person_id = g.person_id "
            "AND a.source = 'azure' AND a.source_id = 'a' || substr(g.source_id, 2) "
            "WHERE g.tenant_id = :'t' AND g.source = 'google'", t=t)
        self.assertEqual(joined, [[str(n), str(n)]])
        self.assertEqual(harness.psql("SELECT count(*) FROM people WHERE tenant_id = :'t' "
                                      "AND removed_at IS NULL", t=t), [["20000"]],
                         "no new Person: each Google row found its Entra Person")

    # ------------------------------------------------------------ removal

    def test_removal_from_one_cloud_keeps_person_from_both_removes(self):
        t = relaxed_tenant()
        g1, evs = full_run(t, "google", lambda r: [
            person(t, "google", r, "g1", "dana@d.org", display_name="Dana G"),
            person(t, "google", r, "g2", "eve@d.org", display_name="Eve")])
        a1, evs2 = full_run(t, "azure", lambda r: [
            person(t, "azure", r, "a1", "dana@d.org", display_name="Dana A")])
        publish(t, evs + evs2)
        wait_run(t, a1)
        person_id = people(t)["dana@d.org"]["person_id"]
        # Google no longer lists Dana: Azure still has her
        g2, evs = full_run(t, "google", lambda r: [
            person(t, "google", r, "g2", "eve@d.org", display_name="Eve")])
        publish(t, evs)
        self.assertEqual(wait_run(t, g2)["removed"], 1)
        dana = people(t)["dana@d.org"]
        self.assertFalse(dana["removed"])
        self.assertEqual(dana["sources"], "azure")
        self.assertEqual(dana["person_id"], person_id)
        # Azure drops her too: tombstoned, never deleted
        a2 = applied_full_run(t, "azure", lambda r: [])
        dana = people(t)["dana@d.org"]
        self.assertTrue(dana["removed"])
        self.assertEqual(dana["sources"], "")
        self.assertEqual(dana["display_name"], "Dana A")  # the tombstone keeps its values
        self.assertFalse(people(t)["eve@d.org"]["removed"])

    def test_failed_and_partial_runs_delete_nothing(self):
        t = relaxed_tenant()
        r1 = applied_full_run(t, "google", lambda r: [
            person(t, "google", r, f"g{i}", f"p{i}@d.org") for i in range(5)]
            + [device(t, r, "dev-1", serial_number="S1")])
        # a failed run that saw only one person
        r2, evs = full_run(t, "google", lambda r: [person(t, "google", r, "g0", "p0@d.org")],
                           end="failed")
        publish(t, evs)
        self.assertEqual(wait_run(t, r2, statuses=("failed",))["removed"], 0)
        # a partial run: started, one person, never completed
        r3, evs = full_run(t, "google", lambda r: [person(t, "google", r, "g0", "p0@d.org")],
                           end=None)
        publish(t, evs)
        harness.wait_until(lambda: (run_row(t, r3) or {}).get("seen") == 1,
                           what="partial run applied")
        self.assertEqual(run_row(t, r3)["status"], "running")
        ppl = people(t)
        self.assertEqual(len(ppl), 5)
        self.assertFalse(any(p["removed"] for p in ppl.values()))
        rows = harness.psql("SELECT in_google FROM assets WHERE tenant_id = :'t'", t=t)
        self.assertEqual(rows, [["t"]])

    def test_run_with_skipped_or_dead_lettered_objects_holds_its_removals(self):
        t = relaxed_tenant()
        r1 = applied_full_run(t, "google", lambda r: [
            person(t, "google", r, f"g{i}", f"k{i}@d.org") for i in range(5)])
        # g3 is dead-lettered (no source id), g4 is simply not listed: which one is gone?
        r2 = str(uuid.uuid4())
        bad = person(t, "google", r2, "x", "k3@d.org")
        del bad["person_observed"]["person"]["source_id"]
        publish(t, [started(t, "google", r2)]
                + [person(t, "google", r2, f"g{i}", f"k{i}@d.org") for i in range(3)]
                + [bad, completed(t, "google", r2)])
        row = wait_run(t, r2, statuses=("held",))
        self.assertEqual((row["pending_removals"], row["removed"], row["skipped"]), (2, 0, 1))
        self.assertFalse(any(p["removed"] for p in people(t).values()))
        outcomes = harness.psql("SELECT outcome FROM run_outcomes WHERE tenant_id = :'t' AND "
                                "run_id = :'r' ORDER BY outcome", t=t, r=r2)
        self.assertEqual(outcomes, [["held_removal"], ["held_removal"], ["invalid"]])
        # the fetcher itself reports a skipped object: the same caution
        r3 = str(uuid.uuid4())
        publish(t, [started(t, "google", r3)]
                + [person(t, "google", r3, f"g{i}", f"k{i}@d.org") for i in range(4)]
                + [env_of(t, "google", r3, run_completed={"kind": "RUN_KIND_FULL",
                                                          "counts": {"people": 4,
                                                                     "skipped": 1}})])
        self.assertEqual(wait_run(t, r3, statuses=("held",))["pending_removals"], 1)
        self.assertEqual(run_row(t, r2)["status"], "rejected")  # superseded by r3

    def test_delta_run_removes_only_reported_and_changed_suspends(self):
        t = relaxed_tenant()
        r1 = applied_full_run(t, "azure", lambda r: [
            person(t, "azure", r, f"a{i}", f"z{i}@d.org") for i in range(3)])
        r2 = str(uuid.uuid4())
        publish(t, [started(t, "azure", r2, kind="RUN_KIND_DELTA"),
                    person(t, "azure", r2, "a0", "z0@d.org", job_title="New"),
                    env_of(t, "azure", r2, object_removed={"kind": "OBJECT_KIND_PERSON",
                           "source_id": "a1", "reason": "REMOVAL_REASON_DELETED"}),
                    env_of(t, "azure", r2, object_removed={"kind": "OBJECT_KIND_PERSON",
                           "source_id": "a2", "reason": "REMOVAL_REASON_CHANGED"}),
                    completed(t, "azure", r2, kind="RUN_KIND_DELTA")])
        wait_run(t, r2)
        ppl = people(t)
        self.assertFalse(ppl["z0@d.org"]["removed"])
        self.assertEqual(ppl["z0@d.org"]["fields"]["job_title"], "New")
        self.assertEqual(run_row(t, r2)["removed"], 1)
        self.assertTrue(ppl["z1@d.org"]["removed"])
        self.assertFalse(ppl["z2@d.org"]["removed"])  # soft delete: suspended, not removed
        rows = harness.psql("SELECT suspended FROM people WHERE tenant_id = :'t' AND "
                            "email_norm = 'z2@d.org'", t=t)
        self.assertEqual(rows, [["t"]])

    def test_one_object_twice_in_a_delta_round_is_combined(self):
        """Graph may list an object twice in one delta round (docs/merger.md): the merger
        combines the observations (later values win, a later clear removes, a field set again
        is no longer cleared), applies them as one change, and leaks nothing doing it (an own
        merger, stopped at the end: under the sanitizer build a leak report fails the test)."""
        merger = start_merger()
        try:
            t = relaxed_tenant()
            r1 = applied_full_run(t, "azure", lambda r: [
                person(t, "azure", r, "a0", "z0@d.org", display_name="Zoe Old", job_title="Old",
                       department="Math", office_location="B1")])
            before = people(t)["z0@d.org"]
            r2 = str(uuid.uuid4())
            publish(t, [started(t, "azure", r2, kind="RUN_KIND_DELTA"),
                        person(t, "azure", r2, "a0", "z0@d.org", job_title="Teacher",
                               cleared_fields=["department", "office_location"]),
                        # the second listing carries no address (a delta sends what changed)
                        env_of(t, "azure", r2, person_observed={"person": {
                            "source_id": "a0", "display_name": "Zoe New",
                            "office_location": "C2", "cleared_fields": ["job_title"],
                            "proxy_addresses": {"values": ["SMTP:z0@d.org",
                                                           "smtp:zoe.new@d.org"]}}}),
                        completed(t, "azure", r2, kind="RUN_KIND_DELTA")])
            row = wait_run(t, r2)
            after = people(t)["z0@d.org"]
            self.assertEqual(after["person_id"], before["person_id"])
            self.assertEqual(after["display_name"], "Zoe New")
            self.assertNotIn("job_title", after["fields"])       # cleared by the later one
            self.assertNotIn("department", after["fields"])      # cleared by the earlier one
            self.assertEqual(after["fields"].get("office_location"), "C2")  # set again
            self.assertEqual(after["version"], before["version"] + 1, "one change, one version")
            self.assertEqual(row["updated"], 1, row)
        finally:
            merger.stop()

    # ------------------------------------------------------------ threshold

    def test_threshold_holds_then_approve_and_reject(self):
        t = harness.new_tenant("mg")  # default threshold: > 500 or > 10 %
        r1 = applied_full_run(t, "google", lambda r: [
            person(t, "google", r, f"g{i}", f"h{i}@d.org") for i in range(20)])
        # half of them vanish: held, creates/updates still apply, deletions wait
        r2, evs = full_run(t, "google", lambda r: [
            person(t, "google", r, f"g{i}", f"h{i}@d.org") for i in range(10)]
            + [person(t, "google", r, "g-new", "new@d.org")])
        publish(t, evs)
        row = wait_run(t, r2, statuses=("held",))
        self.assertEqual(row["pending_removals"], 10)
        ppl = people(t)
        self.assertIn("new@d.org", ppl)
        self.assertFalse(any(p["removed"] for p in ppl.values()))
        url = f"{self.merger.url}/internal/tenants/{t}/runs/{r2}/approve"
        status, _, _ = harness.http("POST", url, {"admin": "admin@d.org"})
        self.assertEqual(status, 401)
        status, _, body = harness.http("POST", url, {"admin": "admin@d.org"},
                                       headers={"Authorization": "Bearer " + SECRET})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["removed"], 10)
        row = run_row(t, r2)
        self.assertEqual((row["status"], row["pending_removals"], row["removed"]),
                         ("approved", 0, 10))
        ppl = people(t)
        self.assertEqual(sum(p["removed"] for p in ppl.values()), 10)
        self.assertTrue(ppl["h15@d.org"]["removed"])
        status, _, _ = harness.http("POST", url, {"admin": "admin@d.org"},
                                    headers={"Authorization": "Bearer " + SECRET})
        self.assertEqual(status, 409)  # no longer held
        # a second mass removal, rejected: nothing goes
        r3, evs = full_run(t, "google", lambda r: [
            person(t, "google", r, "g0", "h0@d.org")])
        publish(t, evs)
        wait_run(t, r3, statuses=("held",))
        status, _, body = harness.http(
            "POST", f"{self.merger.url}/internal/tenants/{t}/runs/{r3}/reject",
            {"admin": "admin@d.org"}, headers={"Authorization": "Bearer " + SECRET})
        self.assertEqual(status, 200, body)
        self.assertEqual(run_row(t, r3)["status"], "rejected")
        self.assertEqual(sum(not p["removed"] for p in people(t).values()), 11)

    # ------------------------------------------------------------ rename and checkouts

    def test_rename_keeps_person_and_checkouts(self):
        t = relaxed_tenant()
        r1 = applied_full_run(t, "google", lambda r: [
            person(t, "google", r, "g-77", "old.name@d.org", display_name="Old Name"),
            device(t, r, "dev-77", serial_number="SER77", model="Chromebook 3")])
        pid = people(t)["old.name@d.org"]["person_id"]
        harness.psql(
            "UPDATE assets SET asset_tag = 'TAG-77', lifecycle = 'in_repair' WHERE "
            "tenant_id = :'t' AND device_id = 'dev-77';"
            "INSERT INTO checkouts (tenant_id, asset_id, person_id, checked_out_by) "
            "SELECT :'t', asset_id, :'p', 'admin' FROM assets WHERE tenant_id = :'t' "
            "AND device_id = 'dev-77'", t=t, p=pid)
        r2 = applied_full_run(t, "google", lambda r: [
            person(t, "google", r, "g-77", "new.name@d.org", display_name="New Name"),
            device(t, r, "dev-77", serial_number="SER77", model="Chromebook 3",
                   os_version="120")])
        ppl = people(t)
        self.assertEqual(list(ppl), ["new.name@d.org"])
        self.assertEqual(ppl["new.name@d.org"]["person_id"], pid)
        rows = harness.psql(
            "SELECT c.person_id, a.asset_tag, a.lifecycle, a.in_google, a.device->>'os_version'"
            " FROM checkouts c JOIN assets a USING (tenant_id, asset_id) "
            "WHERE c.tenant_id = :'t'", t=t)
        self.assertEqual(rows, [[pid, "TAG-77", "in_repair", "t", "120"]])

    # ------------------------------------------------------------ no-change resync

    def _row_versions(self, t):
        """xmin of every directory row of the tenant: an update (even to the same values)
        changes a row's, an insert or a delete changes the set. Only this tenant's rows, so
        other tests' writes (PostgreSQL's global table counters) never blur the answer."""
        return harness.psql(
            "SELECT 'p', person_id::text, xmin::text FROM people WHERE tenant_id = :'t' UNION ALL "
            "SELECT 's', source || source_id, xmin::text FROM person_sources WHERE tenant_id = :'t'"
            " UNION ALL SELECT 'a', asset_id::text, xmin::text FROM assets WHERE tenant_id = :'t'"
            " UNION ALL SELECT 'o', org_unit_id, xmin::text FROM org_units WHERE tenant_id = :'t'"
            " ORDER BY 1, 2", t=t)

    def test_no_change_resync_writes_nothing_and_publishes_nothing(self):
        t = relaxed_tenant()

        def obs(r):
            return ([orgunit(t, r, "id:root", "/", name="District"),
                     orgunit(t, r, "id:staff", "/Staff", name="Staff", parent_id="id:root")]
                    + [person(t, "google", r, f"g{i}", f"n{i}@d.org", display_name=f"N {i}",
                              org_unit_path="/Staff") for i in range(30)]
                    + [device(t, r, f"dev{i}", serial_number=f"S{i}", status="ACTIVE")
                       for i in range(10)])

        r1 = applied_full_run(t, "google", obs)
        harness.wait_until(lambda: harness.psql(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0] == "0",
            what="outbox drained")
        versions = self._row_versions(t)
        outbox_before = harness.psql("SELECT count(*) FROM outbox WHERE tenant_id = :'t'", t=t)
        topic_before = len(harness.consume("panel.people.events", timeout_ms=2000,
                                           key_prefix=t + "/"))
        r2, evs = full_run(t, "google", obs)
        publish(t, evs)
        row = wait_run(t, r2)
        self.assertEqual((row["seen"], row["unchanged"], row["created"], row["updated"],
                          row["removed"]), (42, 42, 0, 0, 0))
        self.assertEqual(self._row_versions(t), versions,
                         "a no-change resync wrote, added or deleted a directory row")
        self.assertEqual(harness.psql("SELECT count(*) FROM outbox WHERE tenant_id = :'t'",
                                      t=t), outbox_before)
        self.assertEqual(len(harness.consume("panel.people.events", timeout_ms=2000,
                                             key_prefix=t + "/")), topic_before)

    def test_planner_statistics_are_renewed_in_a_clean_transaction(self):
        """A first sync of more rows than TABLE_STATS_FIRST makes the merger ANALYZE the
        directory tables itself (autovacuum is too slow for a first sync), in one transaction
        that it ends once: no COMMIT sent outside a transaction (PostgreSQL answers it with
        a WARNING in the merger's log). A fresh merger, alone in the group: the class's has
        counted the rows of the tests before (it would analyze only at their double)."""
        self.merger.stop()
        merger = start_merger()
        try:
            t = relaxed_tenant()

            def analyzed():
                return int(harness.psql("SELECT analyze_count FROM pg_stat_user_tables"
                                        " WHERE relname = 'person_sources'")[0][0])

            before = analyzed()
            applied_full_run(t, "google", lambda r: [
                person(t, "google", r, f"g{i}", f"s{i}@d.org", display_name=f"S {i}")
                for i in range(1500)])
            harness.wait_until(lambda: analyzed() > before, timeout=30,
                               what="the merger's ANALYZE of person_sources")
        finally:
            merger.stop()
            self.merger.start()
        self.assertNotIn("no transaction in progress", merger.log_text())

    def test_content_hash_of_full_rows_equals_the_hash_sql_gives(self):
        """The merger hashes a full row's fields itself (PostgreSQL's jsonb text form, md5)
        and SQL hashes a delta's: the two must agree, or a full run after a delta (and the
        first resync after an upgrade) would rewrite rows that did not change."""
        t = relaxed_tenant()
        tricky = {"display_name": 'Zo\u00eb "Q" \\ \t\n\b\f\u0001 \U0001f600 \u5b66',
                  "given_name": "", "job_title": "a/b", "suspended": False,
                  "proxy_addresses": {"values": ["SMTP:q@d.org", "smtp:\u00e9@d.org"]},
                  "department": "x" * 300}
        r1 = str(uuid.uuid4())
        publish(t, [started(t, "azure", r1, kind="RUN_KIND_DELTA")]
                + [person(t, "azure", r1, f"a{i}", f"q{i}@d.org", **tricky) for i in range(3)]
                + [completed(t, "azure", r1, kind="RUN_KIND_DELTA")])
        self.assertEqual(wait_run(t, r1)["created"], 3)
        r2, evs = full_run(t, "azure", lambda r: [
            person(t, "azure", r, f"a{i}", f"q{i}@d.org", **tricky) for i in range(3)])
        publish(t, evs)
        row = wait_run(t, r2)
        self.assertEqual((row["seen"], row["unchanged"], row["updated"]), (3, 3, 0))
        r3 = applied_full_run(t, "google", lambda r: [
            person(t, "google", r, f"g{i}", f"q{i}@d.org", **tricky) for i in range(3)] + [
            device(t, r, "d1", serial_number='S\\"1\t', notes="\u00e9\u0002",
                   auto_update_expiration_ms=-1,
                   recent_users=[{"type": "USER_TYPE_MANAGED", "email": "q0@d.org"}, {}])])
        self.assertEqual(harness.psql(
            "SELECT count(*), count(*) FILTER (WHERE content_hash = md5(fields::text))"
            " FROM person_sources WHERE tenant_id = :'t'", t=t), [["6", "6"]])
        self.assertEqual(harness.psql(
            "SELECT count(*), count(*) FILTER (WHERE content_hash = md5(device::text))"
            " FROM assets WHERE tenant_id = :'t'", t=t), [["1", "1"]])

    # ------------------------------------------------------------ poison messages

    def dead_letters_total(self):
        return harness.metric_sum(self.merger, "merger_dead_letters_total")

    def test_poison_messages_go_to_dead_letter_topic_and_partition_moves_on(self):
        t = relaxed_tenant()
        dead_before = self.dead_letters_total()
        publish(t, ["this is not protobuf \x01\x02"], raw=True)
        bad = person(t, "google", str(uuid.uuid4()), "x", "x@d.org")
        del bad["person_observed"]["person"]["source_id"]   # violates the schema
        publish(t, [bad])
        r1 = applied_full_run(t, "google", lambda r: [person(t, "google", r, "g1", "ok@d.org")])
        self.assertIn("ok@d.org", people(t))
        dlq = [e for e in harness.consume("panel.source.events.dlq", timeout_ms=3000)
               if e["key"] == t]
        self.assertEqual(len(dlq), 2, dlq)
        self.assertEqual(self.dead_letters_total() - dead_before, 2, "each one counted")

    def test_event_the_database_refuses_is_isolated_and_dead_lettered(self):
        t = relaxed_tenant()
        huge = "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(9000))
        r1, evs = full_run(t, "google", lambda r: (
            [person(t, "google", r, f"g{i}", f"q{i}@d.org") for i in range(5)]
            # valid by the schema, but too big for the name index: PostgreSQL refuses it
            + [person(t, "google", r, "g-huge", "huge@d.org", display_name=huge)]
            + [person(t, "google", r, f"g{i}", f"q{i}@d.org") for i in range(5, 10)]))
        publish(t, evs)
        wait_run(t, r1, timeout=120)
        ppl = people(t)
        self.assertEqual(len(ppl), 10)
        self.assertNotIn("huge@d.org", ppl)
        dlq = [e for e in harness.consume("panel.source.events.dlq", timeout_ms=3000)
               if e["key"] == t]
        self.assertEqual(len(dlq), 1)
        self.assertEqual(dlq[0]["event"]["person_observed"]["person"]["source_id"], "g-huge")

    # ------------------------------------------------------------ matching

    def test_ambiguous_match_becomes_match_case(self):
        t = relaxed_tenant()
        r1 = applied_full_run(t, "google", lambda r: [
            person(t, "google", r, "g1", "amy@d.org"),
            person(t, "google", r, "g2", "amy.b@d.org")])
        # Azure's mail points at one Person, its proxy address at another
        r2, evs = full_run(t, "azure", lambda r: [
            person(t, "azure", r, "a1", "amy@d.org",
                   proxy_addresses={"values": ["smtp:amy.b@d.org"]})])
        publish(t, evs)
        row = wait_run(t, r2)
        self.assertEqual(row["match_cases"], 1)
        cases = harness.psql("SELECT source, source_id, cardinality(candidates), status FROM "
                             "match_cases WHERE tenant_id = :'t'", t=t)
        self.assertEqual(cases, [["azure", "a1", "2", "open"]])
        outcomes = harness.psql("SELECT outcome, source_id FROM run_outcomes WHERE "
                                "tenant_id = :'t' AND run_id = :'r'", t=t, r=r2)
        self.assertEqual(outcomes, [["match_case", "a1"]])
        self.assertEqual(people(t)["amy@d.org"]["sources"], "google")  # not merged
        # the admin decides: it is Amy
        case_id = harness.psql("SELECT case_id FROM match_cases WHERE tenant_id = :'t'",
                               t=t)[0][0]
        amy = people(t)["amy@d.org"]["person_id"]
        url = f"{self.merger.url}/internal/tenants/{t}/match-cases/{case_id}/resolve"
        status, _, _ = harness.http("POST", url, {"person_id": amy, "admin": "a@d.org"})
        self.assertEqual(status, 401)
        status, _, body = harness.http("POST", url, {"person_id": amy, "admin": "a@d.org"},
                                       headers={"Authorization": "Bearer " + SECRET})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["person_id"], amy)
        self.assertNotIn("warning", body)  # one account of each cloud: nothing to warn of
        self.assertEqual(people(t)["amy@d.org"]["sources"], "google,azure")
        self.assertEqual(harness.psql("SELECT status, resolved_by FROM match_cases WHERE "
                                      "tenant_id = :'t'", t=t), [["resolved", "a@d.org"]])
        status, _, _ = harness.http("POST", url, {"person_id": amy, "admin": "a@d.org"},
                                    headers={"Authorization": "Bearer " + SECRET})
        self.assertEqual(status, 409)
        # later observations of that account follow the decision (linked by source id)
        r3, evs = full_run(t, "azure", lambda r: [
            person(t, "azure", r, "a1", "amy@d.org", display_name="Amy A",
                   proxy_addresses={"values": ["smtp:amy.b@d.org"]})])
        publish(t, evs)
        self.assertEqual(wait_run(t, r3)["match_cases"], 0)
        self.assertEqual(people(t)["amy@d.org"]["display_name"], "Amy A")

    def test_two_accounts_of_one_cloud_with_one_email_are_not_merged(self):
        t = relaxed_tenant()
        r1, evs = full_run(t, "azure", lambda r: [
            person(t, "azure", r, "a1", "mia.brown@staff.d.org", display_name="Mia Brown",
                   user_principal_name="mia.brown2@d.org"),
            person(t, "azure", r, "a2", "mia.brown@staff.d.org", display_name="Mia Brown",
                   user_principal_name="mia.brown3@d.org")])
        publish(t, evs)
        row = wait_run(t, r1)
        self.assertEqual(row["match_cases"], 1)
        ppl = people(t)
        self.assertEqual(list(ppl), ["mia.brown@staff.d.org"])
        cases = harness.psql("SELECT source_id, reason FROM match_cases WHERE tenant_id = :'t'",
                             t=t)
        self.assertEqual(len(cases), 1)
        self.assertIn("another azure account", cases[0][1])
        linked = harness.psql("SELECT source_id FROM person_sources WHERE tenant_id = :'t' "
                              "AND person_id IS NOT NULL", t=t)
        self.assertEqual(len(linked), 1)
        self.assertNotEqual(linked[0][0], cases[0][0])

    def test_second_account_of_one_cloud_for_a_linked_person_becomes_a_match_case(self):
        # The Person and its first Azure account exist (earlier run); a second Azure account
        # with the same address arrives: a match case naming that Person, nothing dead-lettered.
        t = relaxed_tenant()
        r1 = applied_full_run(t, "azure", lambda r: [
            person(t, "azure", r, "a1", "leo.park@d.org", display_name="Leo Park")])
        pid = people(t)["leo.park@d.org"]["person_id"]
        r2, evs = full_run(t, "azure", lambda r: [
            person(t, "azure", r, "a1", "leo.park@d.org", display_name="Leo Park"),
            person(t, "azure", r, "a2", "leo.park@d.org", display_name="Leo Park (2)")])
        publish(t, evs)
        row = wait_run(t, r2, timeout=30)
        self.assertEqual(row["match_cases"], 1)
        cases = harness.psql("SELECT source_id, reason, array_to_string(candidates, ',') "
                             "FROM match_cases WHERE tenant_id = :'t'", t=t)
        self.assertEqual(cases, [["a2", "email belongs to a Person that already has another "
                                  "azure account", pid]])
        self.assertEqual(people(t)["leo.park@d.org"]["display_name"], "Leo Park")
        self.assertEqual(harness.psql("SELECT count(*) FROM run_outcomes WHERE tenant_id = :'t' "
                                      "AND outcome = 'invalid'", t=t), [["0"]])

    def test_two_live_accounts_of_one_cloud_show_the_smallest_source_id(self):
        # An admin linked a second Azure account to a Person (its match case resolved to that
        # Person): the Person shows the account with the smallest source id (bytewise), not
        # the one that came first, and a resync that changes nothing changes nothing.
        t = relaxed_tenant()

        def first(r):
            return [person(t, "azure", r, "a2", "leo.park@d.org", display_name="Leo Park",
                           given_name="Leo", department="Second")]

        def both(r):
            return first(r) + [person(t, "azure", r, "a1", "leo.park@d.org",
                                      display_name="Leonard Park", given_name="Leonard",
                                      department="First")]

        applied_full_run(t, "azure", first)
        pid = people(t)["leo.park@d.org"]["person_id"]
        r2 = applied_full_run(t, "azure", both)
        self.assertEqual(run_row(t, r2)["match_cases"], 1)
        self.assertEqual(people(t)["leo.park@d.org"]["display_name"], "Leo Park")
        case_id = harness.psql("SELECT case_id FROM match_cases WHERE tenant_id = :'t'",
                               t=t)[0][0]
        status, _, body = harness.http(
            "POST", f"{self.merger.url}/internal/tenants/{t}/match-cases/{case_id}/resolve",
            {"person_id": pid, "admin": "a@d.org"}, headers={"Authorization": "Bearer " + SECRET})
        self.assertEqual(status, 200, body)
        # the admin is told that the Person's shown values now come from the other account
        self.assertEqual(body["warning"], "the Person now has 2 live azure accounts: it shows "
                         "the values of the one with the smallest source id (a1)")
        self.assertEqual(harness.psql(
            "SELECT source_id FROM person_sources WHERE tenant_id = :'t' AND person_id = :'p'"
            " AND removed_at IS NULL ORDER BY source_id", t=t, p=pid), [["a1"], ["a2"]])
        leo = people(t)["leo.park@d.org"]
        self.assertEqual((leo["person_id"], leo["display_name"], leo["given_name"],
                          leo["fields"].get("department"), leo["sources"], leo["version"]),
                         (pid, "Leonard Park", "Leonard", "First", "azure", 2))
        outbox_drained(t)
        evs = [e["event"]["person_changed"] for e in harness.consume(
            "panel.people.events", timeout_ms=2000, key_prefix=t + "/")]
        self.assertEqual([(e["kind"], e["person"]["fields"]["display_name"]) for e in evs],
                         [("CHANGE_KIND_CREATED", "Leo Park"),
                          ("CHANGE_KIND_UPDATED", "Leonard Park")])
        # both accounts observed again, unchanged: no write, no event, the same row shown
        versions = self._row_versions(t)
        r3 = applied_full_run(t, "azure", both)
        self.assertEqual({k: run_row(t, r3)[k] for k in ("seen", "unchanged", "updated",
                                                           "match_cases", "removed")},
                         {"seen": 2, "unchanged": 2, "updated": 0, "match_cases": 0,
                          "removed": 0})
        self.assertEqual(self._row_versions(t), versions)
        self.assertEqual(people(t)["leo.park@d.org"], leo)
        outbox_drained(t)
        self.assertEqual(len(harness.consume("panel.people.events", timeout_ms=2000,
                                             key_prefix=t + "/")), 2)

    # ------------------------------------------------------------ subscribers

    def test_example_subscriber_prints_people_and_asset_changes(self):
        t = relaxed_tenant()
        r1 = applied_full_run(t, "google", lambda r: [
            person(t, "google", r, "g1", "sub@d.org", display_name="Sub Scriber"),
            device(t, r, "dev-sub", serial_number="SUB-1", model="CB 9")])
        env = dict(os.environ, PANEL_SUBSCRIBER_GROUP="example-" + uuid.uuid4().hex[:8])
        proc = subprocess.Popen([harness.binary("panel-subscriber")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines = []
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                if f"tenant={t} " in line:
                    lines.append(line)
                if len(lines) == 2:
                    break
        finally:
            proc.terminate()
            proc.wait(10)
        self.assertEqual(len(lines), 2, lines)
        self.assertTrue(any(l.startswith("person ") and "CREATED v1" in l and
                            'name="Sub Scriber"' in l for l in lines), lines)
        self.assertTrue(any(l.startswith("asset ") and "serial=SUB-1" in l for l in lines),
                        lines)

    # ------------------------------------------------------------ preview

    def test_preview_run_reports_and_changes_nothing(self):
        t = relaxed_tenant()
        r1 = str(uuid.uuid4())
        publish(t, [started(t, "google", r1, preview=True),
                    person(t, "google", r1, "g1", "pv@d.org"),
                    completed(t, "google", r1)])
        wait_run(t, r1)
        self.assertEqual(people(t), {})
        rep = json.loads(harness.psql("SELECT report FROM sync_runs WHERE tenant_id = :'t' "
                                      "AND run_id = :'r'", t=t, r=r1)[0][0])
        self.assertEqual(rep["would_create"], 1)
        self.assertEqual(harness.psql("SELECT count(*) FROM outbox WHERE tenant_id = :'t'",
                                      t=t), [["0"]])


def snapshot(tenant):
    """The tenant's directory state without ids that are random per tenant."""
    ppl = harness.psql(
        "SELECT email_norm, fields::text, provenance::text, array_to_string(sources, ','),"
        " removed_at IS NOT NULL, version,"
        " (SELECT count(*) FROM outbox o WHERE o.tenant_id = p.tenant_id"
        "  AND o.msg_key = p.tenant_id || '/' || p.person_id)"
        " FROM people p WHERE tenant_id = :'t' ORDER BY email_norm", t=tenant)
    assets = harness.psql(
        "SELECT device_id, device::text, in_google, version,"
        " (SELECT count(*) FROM outbox o WHERE o.tenant_id = a.tenant_id"
        "  AND o.msg_key = a.tenant_id || '/' || a.asset_id)"
        " FROM assets a WHERE tenant_id = :'t' ORDER BY device_id", t=tenant)
    ous = harness.psql(
        "SELECT org_unit_id, path, removed_at IS NOT NULL, version,"
        " (SELECT count(*) FROM outbox o WHERE o.tenant_id = u.tenant_id"
        "  AND o.msg_key = u.tenant_id || '/' || u.org_unit_id)"
        " FROM org_units u WHERE tenant_id = :'t' ORDER BY org_unit_id", t=tenant)
    runs = harness.psql(
        "SELECT source, status, seen, created, updated, unchanged, removed FROM sync_runs"
        " WHERE tenant_id = :'t' ORDER BY source, started_at", t=tenant)
    outbox = harness.psql("SELECT topic, count(*) FROM outbox WHERE tenant_id = :'t'"
                          " GROUP BY topic ORDER BY topic", t=tenant)
    return {"people": ppl, "assets": assets, "org_units": ous, "runs": runs, "outbox": outbox}


def large_district(t):
    """Two full runs per cloud: an import, then a resync with renames, removals, changes."""
    evs, runs = [], []
    g = lambda r, i, **f: person(t, "google", r, f"g{i}", f"user{i}@big.org",
                                 display_name=f"User {i}", org_unit_path=f"/ou{i % 20}", **f)
    a = lambda r, i, **f: person(t, "azure", r, f"a{i}", f"user{i}@big.org",
                                 display_name=f"Azure User {i}", **f)
    r, e = full_run(t, "google", lambda r: (
        [orgunit(t, r, f"id:{k}", f"/ou{k}", name=f"ou{k}") for k in range(20)]
        + [g(r, i) for i in range(3000)]
        + [device(t, r, f"d{i}", serial_number=f"S{i}") for i in range(300)]))
    runs.append(r)
    evs += e
    r, e = full_run(t, "azure", lambda r: [a(r, i) for i in range(800, 2300)])
    runs.append(r)
    evs += e
    r, e = full_run(t, "google", lambda r: (
        [orgunit(t, r, f"id:{k}", f"/ou{k}", name=f"ou{k}") for k in range(20)]
        + [person(t, "google", r, f"g{i}", f"renamed{i}@big.org") if i % 7 == 0
           else g(r, i, job_title="x") if i % 5 == 0 else g(r, i) for i in range(50, 3000)]
        + [device(t, r, f"d{i}", serial_number=f"S{i}", os_version="2")
           for i in range(0, 300, 2)]))
    runs.append(r)
    evs += e
    return runs, evs


def stored_progress():
    rows = harness.psql("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets "
                        "WHERE group_id = 'panel-merger' AND topic = 'panel.source.events'")
    return int(rows[0][0])


def all_done(tenant, runs):
    return all((run_row(tenant, r) or {}).get("status") == "completed" for r in runs)


class MergerCrashTest(unittest.TestCase):
    """SIGKILL (and once SIGTERM) at random points, then restart: the same state and outbox
    as without."""

    def test_sigkill_during_large_run_gives_same_state_and_outbox(self):
        harness.require_env()
        ref = harness.new_tenant("mgref")
        harness.psql("UPDATE tenants SET delete_threshold_count = 100000, "
                     "delete_threshold_percent = 100 WHERE tenant_id = :'t'", t=ref)
        runs, evs = large_district(ref)
        merger = start_merger(PANEL_MERGER_BATCH_MAX="97")
        try:
            publish(ref, evs)
            for r in runs:
                wait_run(ref, r, timeout=300)
        finally:
            merger.stop()
        kil = harness.new_tenant("mgkill")
        harness.psql("UPDATE tenants SET delete_threshold_count = 100000, "
                     "delete_threshold_percent = 100 WHERE tenant_id = :'t'", t=kil)
        runs2, evs2 = large_district(kil)
        publish(kil, evs2)
        seed = int(time.time())
        rnd = random.Random(seed)
        merger = start_merger(PANEL_MERGER_BATCH_MAX="97")
        kills_mid_run = 0
        try:
            for i in range(4):
                # let the new member get its partitions and commit at least one batch, then
                # kill it at a random instant
                base = stored_progress()
                harness.wait_until(lambda: stored_progress() > base or
                                   all_done(kil, runs2), timeout=60, what="progress")
                if all_done(kil, runs2):
                    break
                time.sleep(rnd.uniform(0.0, 0.4))
                if i == 1:  # once a graceful stop: it finishes or abandons its batch
                    self.assertEqual(merger.stop(), 0)
                else:
                    merger.kill()
                kills_mid_run += not all_done(kil, runs2)
                merger.start()
            for r in runs2:
                wait_run(kil, r, timeout=300)
        finally:
            code = merger.stop()
        self.assertEqual(code, 0, "SIGTERM should stop the merger cleanly")
        self.assertGreaterEqual(kills_mid_run, 2, f"the run ended too early (seed {seed})")
        a, b = snapshot(ref), snapshot(kil)
        for k in a:
            self.assertEqual(a[k], b[k], f"{k} differs after SIGKILLs (seed {seed})")
        self.assertGreater(len(a["people"]), 2000)


if __name__ == "__main__":
    unittest.main()
