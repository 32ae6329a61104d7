"""google-sync end to end (issue 5): the cloud emulator, the real Kafka broker, the real
PostgreSQL; only auth's token endpoint is a stand-in (fetch_helpers.AuthStub) that gets real
tokens from the emulator."""
import unittest

from fetch_helpers import (FetcherTestCase, add_fault, control, google_device, google_orgunit,
                           google_person, google_refresh_token, new_district, payloads,
                           partition_of, request_sync, run_events, run_messages)
from harness import new_tenant, wait_until

GOOGLE = "SOURCE_GOOGLE"


class GoogleSync(FetcherTestCase):
    FETCHER = "panel-google-sync"

    @classmethod
    def fetcher_settings(cls, emu):
        # Small pages so that a small district spans many pages.
        return dict(PANEL_GOOGLE_API_URL=emu.url, PANEL_GOOGLE_USERS_PAGE_SIZE=40,
                    PANEL_GOOGLE_DEVICES_PAGE_SIZE=25, PANEL_FETCH_RUN_BUDGET_S=30)

    def connect(self, **counts):
        district = new_district(self.emu, **counts)
        tenant = new_tenant("gs")
        self.auth.google[tenant] = google_refresh_token(self.emu, district)
        return tenant, district

    def listing(self, district, what):
        return control(self.emu, "GET", f"/control/districts/{district['id']}/google/{what}")["items"]

    def assert_complete(self, events):
        self.assertIn("run_started", events[0])
        self.assertIn("run_completed", events[-1], events[-1])
        self.assertEqual(sum(1 for e in events if "run_completed" in e or "run_failed" in e), 1)

    def assert_failed(self, events, reason):
        self.assertIn("run_started", events[0])
        self.assertIn("run_failed", events[-1], events[-1])
        self.assertEqual(events[-1]["run_failed"]["reason"], reason, events[-1])
        self.assertFalse(any("run_completed" in e for e in events))

    def test_complete_multi_page_run_is_exactly_the_emulators_directory(self):
        tenant, district = self.connect(people=130, devices=80, ous=15)
        events = run_events(tenant, request_sync(tenant, GOOGLE))
        self.assert_complete(events)
        self.assertEqual(events[0]["run_started"]["kind"], "RUN_KIND_FULL")
        users = self.listing(district, "users")
        ous = self.listing(district, "orgunits")
        devices = self.listing(district, "devices")
        people = payloads(events, "person_observed", "person")
        org_units = payloads(events, "org_unit_observed", "org_unit")
        devs = payloads(events, "device_observed", "device")
        self.assertEqual({p["source_id"]: p for p in people},
                         {u["id"]: google_person(u) for u in users})
        self.assertEqual(len(people), len(users))
        self.assertEqual({o["org_unit_id"]: o for o in org_units},
                         {o["orgUnitId"]: google_orgunit(o) for o in ous})
        self.assertEqual({d["device_id"]: d for d in devs},
                         {d["deviceId"]: google_device(d) for d in devices})
        # Unicode survives the trip (the generator uses names such as "Łukasz").
        self.assertTrue(any(any(ord(c) > 127 for c in p.get("display_name", ""))
                            for p in people))
        counts = events[-1]["run_completed"]["counts"]
        self.assertEqual((counts["people"], counts["org_units"], counts["devices"],
                          counts["skipped"]), (len(users), len(ous), len(devices), 0))
        self.assertGreaterEqual(counts["pages"], 1 + 4 + 4)  # orgunits + 130/40 + 80/25
        # Ordering: every observation sits between RunStarted and RunCompleted.
        self.assertEqual(len(events), 2 + len(users) + len(ous) + len(devices))

    def test_throttling_and_5xx_storms_end_in_a_complete_run(self):
        tenant, district = self.connect(people=100, devices=60, ous=8)
        add_fault(self.emu, route="google.users", kind="status", status=429, rate=0.3,
                  retry_after="0.1")
        add_fault(self.emu, route="google.users", kind="status", status=403,
                  reason="userRateLimitExceeded", count=2)
        add_fault(self.emu, route="google.devices", kind="status", status=503, rate=0.3)
        add_fault(self.emu, route="google.devices", kind="invalid_input", count=2)
        add_fault(self.emu, route="google.orgunits", kind="status", status=500, count=2)
        add_fault(self.emu, route="google.users", kind="reset", count=1)
        events = run_events(tenant, request_sync(tenant, GOOGLE))
        self.assert_complete(events)
        users = self.listing(district, "users")
        devices = self.listing(district, "devices")
        people = {p["source_id"] for p in payloads(events, "person_observed", "person")}
        devs = {d["device_id"] for d in payloads(events, "device_observed", "device")}
        self.assertEqual(people, {u["id"] for u in users})
        self.assertEqual(devs, {d["deviceId"] for d in devices})
        stats = control(self.emu, "GET", "/control/stats")
        self.assertGreater(stats["faults_injected"], 0)

    def run_with_users_forbidden(self, count, **district_counts):
        """A run of a new district whose users listing answers 403 forbidden (count times):
        (its events, the district), the run failed as forbidden."""
        tenant, district = self.connect(**district_counts)
        add_fault(self.emu, route="google.users", kind="status", status=403, reason="forbidden",
                  count=count)
        events = run_events(tenant, request_sync(tenant, GOOGLE))
        self.assert_failed(events, "RUN_FAILURE_REASON_FORBIDDEN")
        return events, district

    def test_refused_users_listing_fails_the_run_after_reading_the_others(self):
        events, district = self.run_with_users_forbidden(1000, people=30, devices=7, ous=4)
        failed = events[-1]["run_failed"]
        self.assertEqual(failed["forbidden_listings"], ["users"])
        self.assertIn("Not Authorized to access this resource/api", failed["message"])
        # The listings before and after the refused one were read in full.
        devs = {d["device_id"] for d in payloads(events, "device_observed", "device")}
        ous = {o["org_unit_id"] for o in payloads(events, "org_unit_observed", "org_unit")}
        self.assertEqual(devs, {d["deviceId"] for d in self.listing(district, "devices")})
        self.assertEqual(ous, {o["orgUnitId"] for o in self.listing(district, "orgunits")})
        self.assertEqual(payloads(events, "person_observed"), [])

    def test_expired_page_token_restarts_the_listing(self):
        tenant, district = self.connect(people=130, devices=5, ous=3)
        add_fault(self.emu, route="google.users", kind="slow", rate=1.0, delay_ms=700)
        control(self.emu, "POST", "/control/reset-stats")
        run_id = request_sync(tenant, GOOGLE)
        wait_until(lambda: control(self.emu, "GET", "/control/stats")["requests"]
                   .get("google.users", 0) >= 2, timeout=60, what="the second users page")
        control(self.emu, "POST", "/control/expire-page-tokens")
        events = run_events(tenant, run_id)
        self.assert_complete(events)
        people = {p["source_id"] for p in payloads(events, "person_observed", "person")}
        self.assertEqual(people, {u["id"] for u in self.listing(district, "users")})
        self.assertIn("restarting the listing", self.svc.log_text())

    def test_prefetching_keeps_page_order_and_stops_at_a_failed_page(self):
        """The next page is downloaded while the current one is published: the events still
        come page after page in the listing's order, and once a page fails nothing more is
        asked for: no further users page, and the devices listing, read at the same time as
        the users, stops at its next page instead of being read to its end."""
        tenant, district = self.connect(people=170, devices=250, ous=4)  # users: 5 pages of 40
        add_fault(self.emu, route="google.users", kind="malformed", count=1, after=2)
        # devices: 10 pages of 25, slow enough that the users' failure comes first
        add_fault(self.emu, route="google.devices", kind="slow", rate=1.0, delay_ms=400)
        control(self.emu, "POST", "/control/reset-stats")
        run_id = request_sync(tenant, GOOGLE)
        events = run_events(tenant, run_id)
        self.assert_failed(events, "RUN_FAILURE_REASON_MALFORMED")
        self.assertIn("of users is not valid JSON", events[-1]["run_failed"]["message"])
        users = self.listing(district, "users")
        published = [p["source_id"] for p in payloads(events, "person_observed", "person")]
        first_pages = [u["id"] for u in users[:80]]  # pages 1 and 2
        self.assertEqual(sorted(published), sorted(first_pages))
        devices = [d["deviceId"] for d in self.listing(district, "devices")]
        devs = [d["device_id"] for d in payloads(events, "device_observed", "device")]
        self.assertEqual(sorted(devs), sorted(devices[:len(devs)]))  # whole pages
        self.assertEqual(len(devs) % 25, 0)
        # In the listing's order on every partition (Kafka's order is per partition; users and
        # devices are spread over the partitions by id), org units first: the other listings
        # start once they are published.
        messages = run_messages(tenant, run_id)
        for part in range(4):
            on = [m["event"] for m in messages if m["partition"] == part]
            self.assertEqual([e["person_observed"]["person"]["source_id"] for e in on
                              if "person_observed" in e],
                             [u for u in first_pages if partition_of(tenant, u, 4) == part])
            self.assertEqual([e["device_observed"]["device"]["device_id"] for e in on
                              if "device_observed" in e],
                             [d for d in devices[:len(devs)]
                              if partition_of(tenant, d, 4) == part])
            kinds = [k for e in on for k in ("org_unit_observed", "person_observed",
                                             "device_observed") if k in e]
            self.assertEqual(kinds, sorted(kinds, key=lambda k: k != "org_unit_observed"))
        pages = events[-1]["run_failed"]["counts"]["pages"]
        self.assertEqual(pages, 3 + len(devs) // 25)  # org units + 2 users pages + devices'
        stats = control(self.emu, "GET", "/control/stats")["requests"]
        self.assertEqual(stats.get("google.users", 0), 3)
        # the devices listing stopped well before its 10th page (at most one page ahead of
        # what it published, plus the one in flight when the users page failed)
        self.assertLessEqual(stats.get("google.devices", 0), len(devs) // 25 + 2)
        self.assertLess(stats.get("google.devices", 0), 10)

    def test_users_and_devices_are_listed_at_once(self):
        """The users and devices listings are independent: they are read at the same time, so
        a provider's round trips overlap instead of adding up. Every page takes 500 ms here:
        the emulator counts how many such slow pages it held at once (2 when the listings
        overlap: within one listing a page is asked for only once the one before has come)."""
        tenant, district = self.connect(people=160, devices=100, ous=3)
        for route in ("google.users", "google.devices"):
            add_fault(self.emu, route=route, kind="slow", rate=1.0, delay_ms=500)
        control(self.emu, "POST", "/control/reset-stats")
        events = run_events(tenant, request_sync(tenant, GOOGLE))
        self.assert_complete(events)
        counts = events[-1]["run_completed"]["counts"]
        self.assertEqual((counts["people"], counts["devices"], counts["org_units"],
                          counts["pages"]), (160, 100, 3, 1 + 4 + 4))
        people = {p["source_id"] for p in payloads(events, "person_observed", "person")}
        self.assertEqual(people, {u["id"] for u in self.listing(district, "users")})
        devs = {d["device_id"] for d in payloads(events, "device_observed", "device")}
        self.assertEqual(devs, {d["deviceId"] for d in self.listing(district, "devices")})
        stats = control(self.emu, "GET", "/control/stats")
        self.assertEqual((stats["requests"].get("google.users", 0),
                          stats["requests"].get("google.devices", 0)), (4, 4))
        self.assertEqual(stats["slowed_at_once_max"], 2,
                         "the users and devices listings were not read at the same time")

    def test_exhausted_budget_fails_the_run(self):
        tenant, _ = self.connect(people=50, devices=10, ous=3)
        # Every users page is throttled and asks for a wait longer than the 30 s budget.
        add_fault(self.emu, route="google.users", kind="status", status=429, rate=1.0,
                  retry_after="45")
        events = run_events(tenant, request_sync(tenant, GOOGLE))
        self.assert_failed(events, "RUN_FAILURE_REASON_BUDGET_EXHAUSTED")
        self.assertEqual(payloads(events, "person_observed"), [])

    def test_revoked_grant_fails_with_revoked_and_nothing_else(self):
        tenant, district = self.connect(people=20, devices=5, ous=3)
        control(self.emu, "POST", f"/control/districts/{district['id']}/google/revoke")
        events = run_events(tenant, request_sync(tenant, GOOGLE))
        self.assert_failed(events, "RUN_FAILURE_REASON_REVOKED")
        self.assertEqual(len(events), 2)  # RunStarted, RunFailed

    def test_expired_access_token_is_replaced_once_and_the_run_completes(self):
        tenant, district = self.connect(people=60, devices=5, ous=3)
        add_fault(self.emu, route="google.users", kind="status", status=401, count=1)
        events = run_events(tenant, request_sync(tenant, GOOGLE))
        self.assert_complete(events)
        self.assertEqual(len(payloads(events, "person_observed")), 60)
        asked = [r for r in self.auth.requests if r.get("tenant_id") == tenant]
        self.assertEqual(len(asked), 2)  # the run's token, then one after the 401
        self.assertTrue(all(r["provider"] == "google" for r in asked))

    def test_consent_by_a_non_admin_fails_as_forbidden(self):
        self.run_with_users_forbidden(1, people=10, devices=3, ous=3)

    def test_malformed_page_fails_the_run(self):
        tenant, _ = self.connect(people=90, devices=5, ous=3)
        add_fault(self.emu, route="google.users", kind="malformed", count=1)
        events = run_events(tenant, request_sync(tenant, GOOGLE))
        self.assert_failed(events, "RUN_FAILURE_REASON_MALFORMED")
        self.assertIn("not valid JSON", events[-1]["run_failed"]["message"])

    def test_object_with_oversized_id_is_skipped_and_counted(self):
        tenant, district = self.connect(people=10, devices=3, ous=3)
        control(self.emu, "POST", f"/control/districts/{district['id']}/google/users",
                {"id": "9" * 300, "primaryEmail": f"huge@{district['domain']}",
                 "name": {"givenName": "Huge", "familyName": "Id"}})
        events = run_events(tenant, request_sync(tenant, GOOGLE))
        self.assert_complete(events)
        counts = events[-1]["run_completed"]["counts"]
        self.assertEqual(counts["skipped"], 1)
        self.assertEqual(counts["people"], 10)
        self.assertIn("longer than", self.svc.log_text())

    def test_requests_queued_during_a_run_are_each_run_once(self):
        tenant, _ = self.connect(people=10, devices=3, ous=3)
        first = request_sync(tenant, GOOGLE)
        request_sync(tenant, GOOGLE, run_id=first)  # the same request published again
        second = request_sync(tenant, GOOGLE)  # queued while the first is pending
        self.assert_complete(run_events(tenant, first))
        # The second request is run after the first: it may be about a change the first run
        # listed before (and auth waits for its run id).
        self.assert_complete(run_events(tenant, second))
        started = [m["partition"] for m in run_messages(tenant, first)
                   if "run_started" in m["event"]]
        # RunStarted once on each partition of panel.source.events
        self.assertEqual(sorted(started), [0, 1, 2, 3],
                         "the same request delivered again is not run twice")
        self.assertIn("delivered again after its run ended", self.svc.log_text())

    def test_a_run_is_spread_over_the_partitions_by_object(self):
        """Issue 19: the run's control events on every partition of panel.source.events, its
        observations by object, each object on the same partition in every run."""
        tenant, district = self.connect(people=60, devices=20, ous=5)
        first = request_sync(tenant, GOOGLE)
        self.assert_complete(run_events(tenant, first))
        placed = self.assert_spread(tenant, run_messages(tenant, first))
        self.assertEqual(sum(k == "person" for k, _ in placed), 60)
        self.assertEqual(sum(k == "device" for k, _ in placed), 20)
        second = request_sync(tenant, GOOGLE)
        self.assert_complete(run_events(tenant, second))
        again = self.assert_spread(tenant, run_messages(tenant, second))
        self.assertEqual(again, placed, "each object's partition is the same in both runs")


if __name__ == "__main__":
    unittest.main()
