"""Microsoft Graph delta rounds as Graph really sends them, through azure-sync and the merger
to PostgreSQL (issue 18 items 1, 2, 3, 7; issue 24): the emulator, the real Kafka broker and
PostgreSQL; only auth's token endpoint is a stand-in (fetch_helpers.AuthStub).

- a minimal delta entry (only the changed properties, explicit nulls, no `mail`) updates the
  Person we have, and clears what Graph cleared;
- Graph may list one object twice in a round (two entries, one per change);
- a soft-deleted user that is restored comes back un-suspended, same Person, RESTORED event;
- a delta run whose token expired goes on as a real full run (kind, removals, cleared fields);
- removals a delta run reports wait for its RunCompleted and pass the deletion threshold; an
  object observed again after a hold is not removed when the hold is approved."""
import json
import unittest
import uuid

import harness
import test_azure_sync
import test_merger as tm
from fetch_helpers import (FetcherTestCase, azure_admin_consent, control, new_district,
                           request_sync)
from harness import new_tenant, psql

AZURE = "SOURCE_AZURE"


class AzureWired(FetcherTestCase):
    """The emulator (with EMULATOR_ENV), AuthStub, azure-sync and the merger, and helpers."""
    FETCHER = "panel-azure-sync"
    WITH_MERGER = True

    @classmethod
    def fetcher_settings(cls, emu):
        return dict(PANEL_GRAPH_URL=emu.url, PANEL_AZURE_PAGE_SIZE=60,
                    PANEL_FETCH_RUN_BUDGET_S=60)

    # ------------------------------------------------------------------ helpers
    def connect(self, azure_people, threshold=None):
        district = new_district(self.emu, people=1, azure_people=azure_people)
        tenant = new_tenant("azd")
        count, percent = threshold or (100000, 100)
        psql("UPDATE tenants SET delete_threshold_count = :'c', delete_threshold_percent = :'p'"
             " WHERE tenant_id = :'t'", t=tenant, c=str(count), p=str(percent))
        azure_admin_consent(self.emu, district)
        self.auth.azure[tenant] = district["azure_tenant_id"]
        # The tenant's connection, as auth stores a Microsoft consent: a delta link is only
        # followed while the tenant is connected to its directory.
        test_azure_sync.AzureSync.attach(tenant, district["azure_tenant_id"])
        return tenant, district

    def users(self, district):
        """The district's enabled users (the generator disables ~4 %)."""
        return [u for u in control(self.emu, "GET",
                                   f"/control/districts/{district['id']}/azure/users")["items"]
                if u["accountEnabled"]]

    def user_path(self, district, uid=""):
        return f"/control/districts/{district['id']}/azure/users/{uid}"

    def sync(self, tenant, force_full=False, statuses=("completed",)):
        """Run one azure-sync run and wait until the merger has finished it."""
        run_id = request_sync(tenant, AZURE, force_full)

        def done():
            rows = psql("SELECT status, kind, seen, updated, skipped, removed, pending_removals"
                        " FROM sync_runs WHERE tenant_id = :'t' AND run_id = :'r'",
                        t=tenant, r=run_id)
            if rows and rows[0][0] in ("completed", "held", "failed"):
                return rows[0]
            return None
        row = harness.wait_until(done, timeout=120, what=f"run {run_id} to end")
        self.assertIn(row[0], statuses, row)
        return run_id, {"status": row[0], "kind": row[1], "seen": int(row[2]),
                        "updated": int(row[3]), "skipped": int(row[4]),
                        "removed": int(row[5]), "pending_removals": int(row[6])}

    def person(self, tenant, uid):
        """The Person linked to Azure user uid: (person_id, fields, suspended, removed)."""
        rows = psql("SELECT p.person_id, p.fields::text, p.suspended, p.removed_at IS NOT NULL"
                    " FROM person_sources ps JOIN people p ON p.tenant_id = ps.tenant_id"
                    " AND p.person_id = ps.person_id WHERE ps.tenant_id = :'t'"
                    " AND ps.source = 'azure' AND ps.source_id = :'u'", t=tenant, u=uid)
        self.assertEqual(len(rows), 1, f"one Person for {uid}")
        return rows[0][0], json.loads(rows[0][1]), rows[0][2] == "t", rows[0][3] == "t"

    def person_events(self, tenant, person_id):
        tm.outbox_drained(tenant)
        evs = harness.consume("panel.people.events", key_prefix=f"{tenant}/{person_id}",
                              timeout_ms=3000)
        return [e["event"]["person_changed"] for e in evs]

    def fallback_is_a_full_run(self):
        """A delta run whose token expired (400 syncStateNotFound, or 410 with Location)."""
        tenant, district = self.connect(30)
        users = self.users(district)
        gone, cleared = users[4]["id"], users[5]["id"]
        control(self.emu, "PATCH", self.user_path(district, cleared), {"officeLocation": "C-3"})
        self.sync(tenant)
        before = psql("SELECT extract(epoch FROM last_full_at) FROM azure_delta_state"
                      " WHERE tenant_id = :'t'", t=tenant)[0][0]
        self.assertEqual(self.sync(tenant)[1]["kind"], "delta")
        # removed from the directory and cleared while the delta token expires
        control(self.emu, "DELETE", self.user_path(district, gone) + "?permanent=true")
        control(self.emu, "PATCH", self.user_path(district, cleared), {"officeLocation": None})
        control(self.emu, "POST", "/control/expire-page-tokens")
        run_id, run = self.sync(tenant)
        self.assertEqual((run["kind"], run["removed"]), ("full", 1), run)
        self.assertTrue(self.person(tenant, gone)[3], "missing from the full listing: removed")
        self.assertNotIn("office_location", self.person(tenant, cleared)[1])
        after = psql("SELECT extract(epoch FROM last_full_at) FROM azure_delta_state"
                     " WHERE tenant_id = :'t'", t=tenant)[0][0]
        self.assertGreater(float(after), float(before), "a real full run")
        # and the next run is a delta round from the new link
        self.assertEqual(self.sync(tenant)[1]["kind"], "delta")


class AzureDeltaThroughTheMerger(AzureWired):
    # ------------------------------------------------------------------ item 1
    def test_minimal_delta_without_mail_updates_and_clears_the_known_person(self):
        tenant, district = self.connect(30)
        uid = self.users(district)[0]["id"]
        control(self.emu, "PATCH", self.user_path(district, uid),
                {"officeLocation": "Room 12", "jobTitle": "Teacher", "department": "Math"})
        self.assertEqual(self.sync(tenant)[1]["kind"], "full")
        pid, fields, _, _ = self.person(tenant, uid)
        self.assertEqual(fields["office_location"], "Room 12")
        # Graph's minimal delta entry: {"id", "jobTitle", "department", "officeLocation": null}
        control(self.emu, "PATCH", self.user_path(district, uid),
                {"jobTitle": "Principal", "department": "Administration",
                 "officeLocation": None})
        run_id, run = self.sync(tenant)
        self.assertEqual((run["kind"], run["skipped"], run["updated"]), ("delta", 0, 1), run)
        pid2, fields, _, _ = self.person(tenant, uid)
        self.assertEqual(pid2, pid)
        self.assertEqual(fields["job_title"], "Principal")
        self.assertEqual(fields["department"], "Administration")
        self.assertNotIn("office_location", fields, "Graph cleared it")
        self.assertIn("email", fields, "absent from the delta: unchanged")
        last = self.person_events(tenant, pid)[-1]
        self.assertEqual(last["kind"], "CHANGE_KIND_UPDATED")
        self.assertEqual(sorted(last["changed_fields"]),
                         ["department", "job_title", "office_location"])

    # ------------------------------------------------------------------ issue 24
    def test_one_object_twice_in_a_round_gets_both_changes(self):
        tenant, district = self.connect(20)
        control(self.emu, "POST", f"/control/districts/{district['id']}/azure/delta",
                {"repeat_changes": True})
        uid = self.users(district)[1]["id"]
        control(self.emu, "PATCH", self.user_path(district, uid), {"officeLocation": "B-2"})
        self.sync(tenant)
        # two changes between rounds: two entries for the user in one round
        control(self.emu, "PATCH", self.user_path(district, uid), {"jobTitle": "Coach"})
        control(self.emu, "PATCH", self.user_path(district, uid), {"officeLocation": None})
        _, run = self.sync(tenant)
        self.assertEqual((run["kind"], run["skipped"], run["updated"]), ("delta", 0, 1), run)
        _, fields, _, _ = self.person(tenant, uid)
        self.assertEqual(fields["job_title"], "Coach")
        self.assertNotIn("office_location", fields)

    def test_soft_delete_and_restore_in_one_round_leaves_the_person_active(self):
        tenant, district = self.connect(20)
        control(self.emu, "POST", f"/control/districts/{district['id']}/azure/delta",
                {"repeat_changes": True})
        uid = self.users(district)[2]["id"]
        self.sync(tenant)
        control(self.emu, "DELETE", self.user_path(district, uid))
        control(self.emu, "POST", self.user_path(district, uid) + "/restore")
        self.sync(tenant)
        _, _, suspended, removed = self.person(tenant, uid)
        self.assertEqual((suspended, removed), (False, False))

    # ------------------------------------------------------------------ item 2
    def test_restored_user_is_unsuspended_with_a_restored_event(self):
        tenant, district = self.connect(20)
        uid = self.users(district)[3]["id"]
        self.sync(tenant)
        pid, _, suspended, _ = self.person(tenant, uid)
        self.assertFalse(suspended)
        control(self.emu, "DELETE", self.user_path(district, uid))  # soft: @removed changed
        self.sync(tenant)
        self.assertEqual(self.person(tenant, uid)[2], True, "soft-deleted: shown suspended")
        control(self.emu, "POST", self.user_path(district, uid) + "/restore")
        self.sync(tenant)
        pid2, fields, suspended, removed = self.person(tenant, uid)
        self.assertEqual((pid2, suspended, removed), (pid, False, False))
        self.assertFalse(fields.get("suspended", False))
        kinds = [e["kind"] for e in self.person_events(tenant, pid)]
        self.assertEqual(kinds[-1], "CHANGE_KIND_RESTORED", kinds)

    # ------------------------------------------------------------------ item 3
    def test_delta_run_that_fell_back_to_a_full_listing_is_a_full_run(self):
        self.fallback_is_a_full_run()  # the emulator answers 400 syncStateNotFound

    # ------------------------------------------------------------------ item 7
    def test_delta_removals_pass_the_threshold_and_wait_for_approval(self):
        tenant, district = self.connect(30, threshold=(2, 100))
        users = self.users(district)
        self.sync(tenant)
        for u in users[:3]:
            control(self.emu, "DELETE", self.user_path(district, u["id"]) + "?permanent=true")
        run_id, run = self.sync(tenant, statuses=("held",))
        self.assertEqual((run["kind"], run["pending_removals"], run["removed"]),
                         ("delta", 3, 0), run)
        self.assertFalse(any(self.person(tenant, u["id"])[3] for u in users[:3]))
        status, _, body = harness.http(
            "POST", f"{self.merger.url}/internal/tenants/{tenant}/runs/{run_id}/approve",
            {"admin": "admin@d.org"}, headers={"Authorization": "Bearer " + tm.SECRET})
        self.assertEqual((status, body.get("removed")), (200, 3), body)
        self.assertTrue(all(self.person(tenant, u["id"])[3] for u in users[:3]))

    def test_approval_skips_objects_observed_again_after_the_hold(self):
        tenant, district = self.connect(30, threshold=(2, 100))
        users = self.users(district)
        self.sync(tenant)
        for u in users[:3]:
            control(self.emu, "DELETE", self.user_path(district, u["id"]))  # soft delete
        # a full listing no longer has them: more than 2 removals, held
        held, run = self.sync(tenant, force_full=True, statuses=("held",))
        self.assertEqual(run["pending_removals"], 3, run)
        # one comes back and is seen by the next delta round
        back = users[0]["id"]
        control(self.emu, "POST", self.user_path(district, back) + "/restore")
        self.sync(tenant)
        status, _, body = harness.http(
            "POST", f"{self.merger.url}/internal/tenants/{tenant}/runs/{held}/approve",
            {"admin": "admin@d.org"}, headers={"Authorization": "Bearer " + tm.SECRET})
        self.assertEqual((status, body.get("removed")), (200, 2), body)
        self.assertFalse(self.person(tenant, back)[3], "observed again: not removed")
        self.assertTrue(all(self.person(tenant, u["id"])[3] for u in users[1:3]))


class FallbackAfterGone(AzureWired):
    """Graph's other answer to an expired token: 410 Gone with a Location header."""
    EMULATOR_ENV = {"PANEL_EMULATOR_DELTA_EXPIRED": "gone"}

    def test_delta_run_answered_410_gone_is_a_full_run(self):
        self.fallback_is_a_full_run()


class DeltaEventsAsPublished(unittest.TestCase):
    """Hand-written source events for the shapes a fetcher can send but the emulator run
    above does not cover."""

    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.merger = tm.start_merger()

    @classmethod
    def tearDownClass(cls):
        cls.merger.stop()

    def test_delta_without_email_of_an_unknown_object_is_skipped(self):
        t = tm.relaxed_tenant()
        r1 = tm.applied_full_run(t, "azure",
                                 lambda r: [tm.person(t, "azure", r, "a0", "k0@d.org")])
        r2 = str(uuid.uuid4())
        unknown = tm.env_of(t, "azure", r2, person_observed={"person": {
            "source_id": "a-new", "job_title": "Nurse"}})
        known = tm.env_of(t, "azure", r2, person_observed={"person": {
            "source_id": "a0", "job_title": "Nurse", "cleared_fields": ["display_name"]}})
        tm.publish(t, [tm.started(t, "azure", r2, kind="RUN_KIND_DELTA"), unknown, known,
                       tm.completed(t, "azure", r2, kind="RUN_KIND_DELTA")])
        row = tm.wait_run(t, r2)
        self.assertEqual((row["skipped"], row["updated"]), (1, 1), row)
        ppl = tm.people(t)
        self.assertEqual(sorted(ppl), ["k0@d.org"])
        self.assertEqual(ppl["k0@d.org"]["fields"]["job_title"], "Nurse")

    def test_run_started_as_delta_and_completed_as_full_is_a_full_run(self):
        t = tm.relaxed_tenant()
        r1 = tm.applied_full_run(t, "azure", lambda r: [
            tm.person(t, "azure", r, f"a{i}", f"m{i}@d.org") for i in range(3)])
        r2 = str(uuid.uuid4())
        tm.publish(t, [tm.started(t, "azure", r2, kind="RUN_KIND_DELTA")]
                   + [tm.person(t, "azure", r2, f"a{i}", f"m{i}@d.org") for i in range(2)]
                   + [tm.completed(t, "azure", r2, kind="RUN_KIND_FULL")])
        row = tm.wait_run(t, r2)
        self.assertEqual(row["removed"], 1, row)
        self.assertTrue(tm.people(t)["m2@d.org"]["removed"])
        kind = psql("SELECT kind FROM sync_runs WHERE tenant_id = :'t' AND run_id = :'r'",
                    t=t, r=r2)
        self.assertEqual(kind, [["full"]])

    def test_two_deltas_of_one_object_in_a_round_are_combined(self):
        t = tm.relaxed_tenant()
        r1 = tm.applied_full_run(t, "azure", lambda r: [
            tm.person(t, "azure", r, "a0", "two@d.org", department="Art",
                      office_location="A-1")])
        r2 = str(uuid.uuid4())
        first = tm.env_of(t, "azure", r2, person_observed={"person": {
            "source_id": "a0", "email": "two@d.org", "job_title": "Coach",
            "cleared_fields": ["office_location"]}})
        second = tm.env_of(t, "azure", r2, person_observed={"person": {
            "source_id": "a0", "email": "two@d.org", "office_location": "B-2",
            "cleared_fields": ["department"]}})
        tm.publish(t, [tm.started(t, "azure", r2, kind="RUN_KIND_DELTA"), first, second,
                       tm.completed(t, "azure", r2, kind="RUN_KIND_DELTA")])
        row = tm.wait_run(t, r2)
        self.assertEqual((row["seen"], row["updated"]), (1, 1), row)
        fields = tm.people(t)["two@d.org"]["fields"]
        self.assertEqual(fields["job_title"], "Coach")
        self.assertEqual(fields["office_location"], "B-2", "set again after the clear")
        self.assertNotIn("department", fields)

    def test_failed_delta_run_removes_nothing_it_reported(self):
        t = tm.relaxed_tenant()
        r1 = tm.applied_full_run(t, "azure", lambda r: [
            tm.person(t, "azure", r, f"a{i}", f"f{i}@d.org") for i in range(3)])
        r2 = str(uuid.uuid4())
        tm.publish(t, [tm.started(t, "azure", r2, kind="RUN_KIND_DELTA"),
                       tm.env_of(t, "azure", r2, object_removed={
                           "kind": "OBJECT_KIND_PERSON", "source_id": "a1",
                           "reason": "REMOVAL_REASON_DELETED"}),
                       tm.failed(t, "azure", r2)])
        tm.wait_run(t, r2, statuses=("failed",))
        self.assertFalse(any(p["removed"] for p in tm.people(t).values()))

    def test_full_run_with_fewer_observations_than_reported_is_held(self):
        t = tm.relaxed_tenant()
        r1 = tm.applied_full_run(t, "azure", lambda r: [
            tm.person(t, "azure", r, f"a{i}", f"c{i}@d.org") for i in range(4)])
        r2 = str(uuid.uuid4())
        tm.publish(t, [tm.started(t, "azure", r2)]
                   + [tm.person(t, "azure", r2, f"a{i}", f"c{i}@d.org") for i in range(3)]
                   + [tm.env_of(t, "azure", r2, run_completed={
                       "kind": "RUN_KIND_FULL", "counts": {"people": 4}})])
        row = tm.wait_run(t, r2, statuses=("held",))
        self.assertEqual(row["pending_removals"], 1, row)
        self.assertFalse(any(p["removed"] for p in tm.people(t).values()))


if __name__ == "__main__":
    unittest.main()
