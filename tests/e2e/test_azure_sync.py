"""azure-sync end to end (issue 6): the cloud emulator, the real Kafka broker, the real
PostgreSQL (delta links in azure_delta_state); only auth's token endpoint is a stand-in
(fetch_helpers.AuthStub) that gets client-credentials tokens from the emulator."""
import unittest

from fetch_helpers import (FetcherTestCase, add_fault, azure_admin_consent, azure_person, control,
                           new_district, partition_of, payloads, request_sync, run_events,
                           run_messages)
from harness import new_tenant, psql

AZURE = "SOURCE_AZURE"


class AzureSync(FetcherTestCase):
    FETCHER = "panel-azure-sync"

    @classmethod
    def fetcher_settings(cls, emu):
        return dict(PANEL_GRAPH_URL=emu.url, PANEL_AZURE_PAGE_SIZE=60, PANEL_FETCH_RUN_BUDGET_S=30)

    def connect(self, azure_people):
        district = new_district(self.emu, people=1, azure_people=azure_people)
        tenant = new_tenant("az")
        azure_admin_consent(self.emu, district)
        self.auth.azure[tenant] = district["azure_tenant_id"]
        self.attach(tenant, district["azure_tenant_id"])
        return tenant, district

    @staticmethod
    def attach(tenant, directory):
        """The tenant's connection to the directory, as auth stores a Microsoft consent (a
        delta link is only followed while the tenant is connected to its directory)."""
        psql("INSERT INTO connections (tenant_id, provider, status, provider_tenant) VALUES "
             "(:'t', 'azure', 'connected', :'d') ON CONFLICT (tenant_id, provider) DO UPDATE "
             "SET provider_tenant = EXCLUDED.provider_tenant", t=tenant, d=directory)

    def users(self, district):
        return control(self.emu, "GET",
                       f"/control/districts/{district['id']}/azure/users")["items"]

    def sync(self, tenant, force_full=False):
        return run_events(tenant, request_sync(tenant, AZURE, force_full))

    def assert_complete(self, events, kind):
        self.assertIn("run_started", events[0])
        self.assertIn("run_completed", events[-1], events[-1])
        self.assertEqual(events[-1]["run_completed"]["kind"], kind)
        self.assertEqual(sum(1 for e in events if "run_completed" in e or "run_failed" in e), 1)

    def assert_failed(self, events, reason):
        self.assertIn("run_failed", events[-1], events[-1])
        self.assertEqual(events[-1]["run_failed"]["reason"], reason, events[-1])
        self.assertFalse(any("run_completed" in e for e in events))

    def test_full_run_is_exactly_the_emulators_users(self):
        tenant, district = self.connect(150)
        events = self.sync(tenant)
        self.assert_complete(events, "RUN_KIND_FULL")
        users = self.users(district)
        people = payloads(events, "person_observed", "person")
        self.assertEqual(len(people), len(users))
        self.assertEqual({p["source_id"]: p for p in people},
                         {u["id"]: azure_person(u) for u in users})
        self.assertTrue(any(any(ord(c) > 127 for c in p.get("display_name", ""))
                            for p in people))
        counts = events[-1]["run_completed"]["counts"]
        self.assertEqual(counts["people"], 150)
        self.assertGreaterEqual(counts["pages"], 3)  # 150 users in pages of 60
        link = events[-1]["run_completed"]["delta_link"]
        self.assertIn("/v1.0/users/delta", link)
        stored = psql("SELECT delta_link FROM azure_delta_state WHERE tenant_id = :'t'",
                      t=tenant)
        self.assertEqual(stored, [[link]])

    def test_full_run_downloads_the_tenant_once(self):
        """A full run is one /users/delta round from scratch: every user is downloaded once
        (no /users listing besides it), and its deltaLink is the next round's start."""
        tenant, district = self.connect(150)
        control(self.emu, "POST", "/control/reset-stats")
        events = self.sync(tenant, force_full=True)
        self.assert_complete(events, "RUN_KIND_FULL")
        stats = control(self.emu, "GET", "/control/stats")["requests"]
        self.assertEqual((stats.get("graph.users", 0), stats.get("graph.delta", 0)), (0, 3))
        self.assertEqual(events[-1]["run_completed"]["counts"]["pages"], 3)  # 150 in pages of 60
        self.assertEqual(len(payloads(events, "person_observed")), 150)
        # the link it ends with carries the next round: a change shows up as a delta
        user = next(u for u in self.users(district) if u["accountEnabled"])
        control(self.emu, "PATCH", f"/control/districts/{district['id']}/azure/users/{user['id']}",
                {"jobTitle": "Principal"})
        control(self.emu, "POST", "/control/reset-stats")
        delta = self.sync(tenant)
        self.assert_complete(delta, "RUN_KIND_DELTA")
        self.assertEqual([p["source_id"] for p in payloads(delta, "person_observed", "person")],
                         [user["id"]])
        stats = control(self.emu, "GET", "/control/stats")["requests"]
        self.assertEqual((stats.get("graph.users", 0), stats.get("graph.delta", 0)), (0, 1))

    def test_delta_round_carries_exactly_the_changes(self):
        tenant, district = self.connect(40)
        self.assert_complete(self.sync(tenant), "RUN_KIND_FULL")
        users = [u for u in self.users(district) if u["accountEnabled"]]  # ~4 % are not
        renamed, disabled, soft, hard = (u["id"] for u in users[:4])
        base = f"/control/districts/{district['id']}/azure/users/"
        control(self.emu, "PATCH", base + renamed, {"displayName": "Zoë Renamed-Ñ"})
        control(self.emu, "PATCH", base + disabled, {"accountEnabled": False})
        control(self.emu, "DELETE", base + soft)
        control(self.emu, "DELETE", base + hard + "?permanent=true")
        events = self.sync(tenant)
        self.assertEqual(events[0]["run_started"]["kind"], "RUN_KIND_DELTA")
        self.assert_complete(events, "RUN_KIND_DELTA")
        people = {p["source_id"]: p for p in payloads(events, "person_observed", "person")}
        self.assertEqual(people, {
            renamed: azure_person({"id": renamed, "displayName": "Zoë Renamed-Ñ"}, True),
            disabled: azure_person({"id": disabled, "accountEnabled": False}, True)})
        removed = {r["source_id"]: r for r in payloads(events, "object_removed")}
        self.assertEqual(set(removed), {soft, hard})
        self.assertEqual(removed[soft]["reason"], "REMOVAL_REASON_CHANGED")
        self.assertEqual(removed[hard]["reason"], "REMOVAL_REASON_DELETED")
        self.assertTrue(all(r["kind"] == "OBJECT_KIND_PERSON" for r in removed.values()))
        counts = events[-1]["run_completed"]["counts"]
        self.assertEqual((counts["people"], counts["removals"]), (2, 2))
        # A round without changes carries nothing.
        quiet = self.sync(tenant)
        self.assert_complete(quiet, "RUN_KIND_DELTA")
        self.assertEqual(len(quiet), 2)

    def test_expired_delta_token_falls_back_to_a_full_run(self):
        tenant, district = self.connect(30)
        self.assert_complete(self.sync(tenant), "RUN_KIND_FULL")
        control(self.emu, "POST", "/control/expire-page-tokens")
        run_id = request_sync(tenant, AZURE)
        events = run_events(tenant, run_id)
        # both RunStarted on every partition, before the listing there
        self.assert_spread(tenant, run_messages(tenant, run_id), starts=2)
        self.assertEqual(events[0]["run_started"]["kind"], "RUN_KIND_DELTA")
        self.assert_complete(events, "RUN_KIND_FULL")
        # RunStarted again, as a full run, before the listing: the merger must not take the
        # whole objects that follow for changes
        starts = [i for i, e in enumerate(events) if "run_started" in e]
        self.assertEqual([events[i]["run_started"]["kind"] for i in starts],
                         ["RUN_KIND_DELTA", "RUN_KIND_FULL"])
        self.assertLess(starts[1], next(i for i, e in enumerate(events)
                                        if "person_observed" in e))
        people = {p["source_id"] for p in payloads(events, "person_observed", "person")}
        self.assertEqual(people, {u["id"] for u in self.users(district)})
        # The new link works: the next run is a delta round again.
        self.assert_complete(self.sync(tenant), "RUN_KIND_DELTA")

    def test_a_run_is_spread_over_the_partitions_by_object(self):
        """Issue 19: the run's control events on every partition of panel.source.events, its
        observations by object; a delta round's change and removal of a user are on the
        partition the full run put that user on."""
        tenant, district = self.connect(80)
        full = request_sync(tenant, AZURE)
        self.assert_complete(run_events(tenant, full), "RUN_KIND_FULL")
        placed = self.assert_spread(tenant, run_messages(tenant, full))
        self.assertEqual({sid for _, sid in placed}, {u["id"] for u in self.users(district)})
        users = [u["id"] for u in self.users(district) if u["accountEnabled"]]
        renamed = users[0]
        gone = next(u for u in users if partition_of(tenant, u, 4) !=
                    partition_of(tenant, renamed, 4))
        base = f"/control/districts/{district['id']}/azure/users/"
        control(self.emu, "PATCH", base + renamed, {"displayName": "Spread Renamed"})
        control(self.emu, "DELETE", base + gone + "?permanent=true")
        delta = request_sync(tenant, AZURE)
        events = run_events(tenant, delta)
        self.assert_complete(events, "RUN_KIND_DELTA")
        self.assertEqual(len(payloads(events, "object_removed")), 1)
        moved = self.assert_spread(tenant, run_messages(tenant, delta))
        self.assertEqual(moved, {("person", renamed): placed[("person", renamed)],
                                 ("person", gone): placed[("person", gone)]})

    def test_delta_link_of_another_directory_is_never_followed(self):
        """The delta position belongs to the directory: after the tenant's consent moves to
        another directory the next run is a full one of the new directory, and the link of
        the old one is not followed (issue 17)."""
        tenant, old = self.connect(12)
        self.assert_complete(self.sync(tenant), "RUN_KIND_FULL")
        self.assert_complete(self.sync(tenant), "RUN_KIND_DELTA")
        stored = psql("SELECT directory_id FROM azure_delta_state WHERE tenant_id = :'t'",
                      t=tenant)
        self.assertEqual(stored, [[old["azure_tenant_id"]]])
        new = new_district(self.emu, people=1, azure_people=7)
        azure_admin_consent(self.emu, new)
        self.auth.azure[tenant] = new["azure_tenant_id"]
        self.attach(tenant, new["azure_tenant_id"])
        events = self.sync(tenant)
        self.assertEqual(events[0]["run_started"]["kind"], "RUN_KIND_FULL")
        self.assert_complete(events, "RUN_KIND_FULL")
        self.assertEqual({p["source_id"] for p in payloads(events, "person_observed", "person")},
                         {u["id"] for u in self.users(new)})
        self.assertEqual(psql("SELECT directory_id FROM azure_delta_state WHERE tenant_id = "
                              ":'t'", t=tenant), [[new["azure_tenant_id"]]])
        self.assert_complete(self.sync(tenant), "RUN_KIND_DELTA")

    def test_force_full_ignores_the_delta_link(self):
        tenant, _ = self.connect(10)
        self.assert_complete(self.sync(tenant), "RUN_KIND_FULL")
        events = self.sync(tenant, force_full=True)
        self.assert_complete(events, "RUN_KIND_FULL")
        self.assertEqual(len(payloads(events, "person_observed")), 10)

    def test_throttling_storms_complete(self):
        tenant, district = self.connect(200)
        # a full run reads /users/delta only (one download of the tenant)
        add_fault(self.emu, route="graph.delta", kind="status", status=429, rate=0.3,
                  retry_after="0.25")
        add_fault(self.emu, route="graph.delta", kind="status", status=504, count=2)
        add_fault(self.emu, route="graph.delta", kind="status", status=503, rate=0.3,
                  retry_after="0.1")
        add_fault(self.emu, route="graph.delta", kind="truncate", count=1)
        events = self.sync(tenant)
        self.assert_complete(events, "RUN_KIND_FULL")
        people = {p["source_id"] for p in payloads(events, "person_observed", "person")}
        self.assertEqual(people, {u["id"] for u in self.users(district)})

    def test_revoked_consent_fails_the_run_cleanly(self):
        tenant, district = self.connect(10)
        control(self.emu, "POST", f"/control/districts/{district['id']}/azure/revoke")
        events = self.sync(tenant)
        self.assert_failed(events, "RUN_FAILURE_REASON_REVOKED")
        self.assertEqual(len(events), 2)

    def test_withdrawn_permission_fails_as_forbidden(self):
        tenant, district = self.connect(10)
        control(self.emu, "POST", f"/control/districts/{district['id']}/azure/permission",
                {"granted": False})
        events = self.sync(tenant)
        self.assert_failed(events, "RUN_FAILURE_REASON_FORBIDDEN")
        self.assertIn("Authorization_RequestDenied", events[-1]["run_failed"]["message"])

    def test_throttled_past_the_budget_fails(self):
        tenant, _ = self.connect(10)
        add_fault(self.emu, route="graph.delta", kind="status", status=429, rate=1.0,
                  retry_after="45")
        events = self.sync(tenant)
        self.assert_failed(events, "RUN_FAILURE_REASON_BUDGET_EXHAUSTED")

    def test_user_with_oversized_id_is_skipped_and_counted(self):
        tenant, district = self.connect(10)
        control(self.emu, "POST", f"/control/districts/{district['id']}/azure/users",
                {"id": "f" * 300, "userPrincipalName": "huge@" + district["domain"],
                 "displayName": "Huge"})
        events = self.sync(tenant)
        self.assert_complete(events, "RUN_KIND_FULL")
        counts = events[-1]["run_completed"]["counts"]
        self.assertEqual((counts["people"], counts["skipped"]), (10, 1))


if __name__ == "__main__":
    unittest.main()
