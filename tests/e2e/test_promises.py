"""Promises of docs/ that had no test (issue 24), each asserted on what a user sees: rows,
fields, public events with their kind and version, headers, statuses.

- PublishedSourceEvents: hand-published source events through the real merger, Kafka and
  PostgreSQL (restore of a tombstoned Person, a device gone from Google, the OU tree whatever
  the arrival order, device and OU thresholds, dead-letter headers and counter);
- GoogleThroughTheEmulator: google-sync on the emulator serving what Google may serve (a child
  OU before its parent, a user deleted then undeleted with the same id);
- AzureThroughTheEmulator: PANEL_AZURE_FULL_EVERY_HOURS, and a Graph link that points outside
  PANEL_GRAPH_URL is never followed (the token would go with it)."""
import json
import threading
import unittest
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
import test_merger as tm
from fetch_helpers import (AuthStub, FetcherTestCase, control, fetcher_env, google_refresh_token,
                           new_district, request_sync, run_events)
from harness import Process, psql, require_env, wait_until
from test_azure_delta import AzureWired
from test_emulator import check_ref


def public_events(topic, tenant, entity_id, payload):
    tm.outbox_drained(tenant)
    return [m["event"][payload] for m in harness.consume(topic, timeout_ms=2000,
                                                          key_prefix=f"{tenant}/{entity_id}")]


def ou_tree(tenant):
    """(path, parent's path as the stored parent id resolves it) of every live OU."""
    return psql("SELECT o.path, coalesce(p.path, '(none)') FROM org_units o"
                " LEFT JOIN org_units p ON p.tenant_id = o.tenant_id"
                " AND p.org_unit_id = o.parent_id AND p.removed_at IS NULL"
                " WHERE o.tenant_id = :'t' AND o.removed_at IS NULL ORDER BY o.path", t=tenant)


def dead_letters_total(merger):
    return harness.metric_sum(merger, "merger_dead_letters_total")


class PublishedSourceEvents(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_env()
        cls.merger = tm.start_merger()

    @classmethod
    def tearDownClass(cls):
        cls.merger.stop()

    def publish_run(self, t, source, obs):
        run_id, evs = tm.full_run(t, source, obs)
        tm.publish(t, evs)
        return run_id

    def test_tombstoned_person_comes_back_restored_with_the_same_person_id(self):
        """docs/merger.md: tombstoned when no source row is left, restored (same person_id)
        if one comes back; docs/events.md: version +1 per change, REMOVED and RESTORED."""
        t = tm.relaxed_tenant()
        keep = lambda r: [tm.person(t, "google", r, "g-keep", "keep@d.org")]  # noqa: E731
        tm.wait_run(t, self.publish_run(t, "google", lambda r: keep(r) + [
            tm.person(t, "google", r, "g-1", "ruth@d.org", display_name="Ruth A")]))
        pid = tm.people(t)["ruth@d.org"]["person_id"]
        tm.wait_run(t, self.publish_run(t, "google", lambda r: keep(r) + [
            tm.person(t, "google", r, "g-1", "ruth@d.org", display_name="Ruth B")]))
        self.assertEqual(tm.wait_run(t, self.publish_run(t, "google", keep))["removed"], 1)
        ruth = tm.people(t)["ruth@d.org"]
        self.assertEqual((ruth["removed"], ruth["person_id"], ruth["version"]), (True, pid, 3))
        tm.wait_run(t, self.publish_run(t, "google", lambda r: keep(r) + [
            tm.person(t, "google", r, "g-1", "ruth@d.org", display_name="Ruth B")]))
        ruth = tm.people(t)["ruth@d.org"]
        self.assertEqual((ruth["removed"], ruth["person_id"], ruth["version"]), (False, pid, 4))
        self.assertEqual(psql("SELECT count(*) FROM people WHERE tenant_id = :'t'"
                              " AND email_norm = 'ruth@d.org'", t=t), [["1"]])
        evs = public_events("panel.people.events", t, pid, "person_changed")
        self.assertEqual([(e["kind"], int(e["person"]["version"]), e["person"]["person_id"])
                          for e in evs],
                         [("CHANGE_KIND_CREATED", 1, pid), ("CHANGE_KIND_UPDATED", 2, pid),
                          ("CHANGE_KIND_REMOVED", 3, pid), ("CHANGE_KIND_RESTORED", 4, pid)])
        self.assertIn("display_name", evs[1]["changed_fields"])
        self.assertTrue(evs[2]["person"].get("removed"))
        self.assertFalse(evs[3]["person"].get("removed", False))
        self.assertEqual(evs[3]["person"]["fields"]["display_name"], "Ruth B")

    def test_device_gone_from_google_keeps_the_asset_with_in_google_false(self):
        """docs/merger.md: a device gone from Google sets in_google = false and left_google_at;
        it is never deleted; docs/events.md: LEFT_GOOGLE with the next version."""
        t = tm.relaxed_tenant()
        stay = lambda r: [tm.device(t, r, "dev-stay", serial_number="S-STAY")]  # noqa: E731
        tm.wait_run(t, self.publish_run(t, "google", lambda r: stay(r) + [
            tm.device(t, r, "dev-gone", serial_number="S-GONE", model="Chromebook 314")]))
        self.assertEqual(tm.wait_run(t, self.publish_run(t, "google", stay))["removed"], 1)
        rows = psql("SELECT device_id, asset_id, in_google, left_google_at IS NOT NULL, version,"
                    " device->>'serial_number' FROM assets WHERE tenant_id = :'t'"
                    " ORDER BY device_id", t=t)
        self.assertEqual([r[:1] + r[2:] for r in rows],
                         [["dev-gone", "f", "t", "2", "S-GONE"],
                          ["dev-stay", "t", "f", "1", "S-STAY"]])
        evs = public_events("panel.assets.events", t, rows[0][1], "asset_changed")
        self.assertEqual([(e["kind"], int(e["asset"]["version"]), e["asset"].get("in_google",
                                                                                 False))
                          for e in evs],
                         [("ASSET_CHANGE_KIND_CREATED", 1, True),
                          ("ASSET_CHANGE_KIND_LEFT_GOOGLE", 2, False)])
        self.assertIn("in_google", evs[1]["changed_fields"])
        self.assertEqual(evs[1]["asset"]["device"]["serial_number"], "S-GONE")

    def test_org_unit_tree_is_the_same_whatever_the_arrival_order(self):
        """docs/merger.md: the parent is stored as the id Google gives, so the tree does not
        depend on the order OUs arrive in."""
        ous = [("id:root-child", "/Schools", "id:root"), ("id:hs", "/Schools/High", "id:root-child"),
               ("id:hs9", "/Schools/High/Grade 9", "id:hs"),
               ("id:ms", "/Schools/Middle", "id:root-child")]

        def obs(t, order):
            return lambda r: [tm.orgunit(t, r, i, p, name=p.rsplit("/", 1)[1], parent_id=par,
                                         parent_path=p.rsplit("/", 1)[0] or "/")
                              for i, p, par in order]
        parents_first, children_first = tm.relaxed_tenant(), tm.relaxed_tenant()
        tm.wait_run(parents_first, self.publish_run(parents_first, "google",
                                                    obs(parents_first, ous)))
        # each OU in its own run segment before its parent: the child arrives first
        tm.wait_run(children_first, self.publish_run(children_first, "google",
                                                     obs(children_first, ous[::-1])))
        want = [["/Schools", "(none)"], ["/Schools/High", "/Schools"],
                ["/Schools/High/Grade 9", "/Schools/High"], ["/Schools/Middle", "/Schools"]]
        self.assertEqual(ou_tree(parents_first), want)
        self.assertEqual(ou_tree(children_first), want)

    def test_device_and_org_unit_removals_pass_the_threshold(self):
        """docs/merger.md: the threshold holds a run for any kind; held removals wait for an
        approval, creates and updates apply."""
        t = harness.new_tenant("prm")
        psql("UPDATE tenants SET delete_threshold_count = 2, delete_threshold_percent = 100"
             " WHERE tenant_id = :'t'", t=t)
        people = lambda r: [tm.person(t, "google", r, "g-1", "p1@d.org")]  # noqa: E731
        tm.wait_run(t, self.publish_run(t, "google", lambda r: people(r)
                                        + [tm.device(t, r, f"dev-{i}", serial_number=f"S{i}")
                                           for i in range(4)]
                                        + [tm.orgunit(t, r, f"id:ou{i}", f"/OU{i}")
                                           for i in range(4)]))
        # three devices gone: held, nothing leaves Google
        held = self.publish_run(t, "google", lambda r: people(r)
                                + [tm.device(t, r, "dev-0", serial_number="S0", model="New")]
                                + [tm.orgunit(t, r, f"id:ou{i}", f"/OU{i}") for i in range(4)])
        row = tm.wait_run(t, held, statuses=("held",))
        self.assertEqual((row["pending_removals"], row["removed"]), (3, 0), row)
        self.assertEqual(psql("SELECT count(*) FILTER (WHERE in_google),"
                              " max(device->>'model') FROM assets WHERE tenant_id = :'t'", t=t),
                         [["4", "New"]])
        status, _, body = harness.http(
            "POST", f"{self.merger.url}/internal/tenants/{t}/runs/{held}/approve",
            {"admin": "admin@d.org"}, headers={"Authorization": "Bearer " + tm.SECRET})
        self.assertEqual((status, body.get("removed")), (200, 3), body)
        self.assertEqual(psql("SELECT device_id FROM assets WHERE tenant_id = :'t' AND in_google",
                              t=t), [["dev-0"]])
        # three OUs gone: held the same way
        held = self.publish_run(t, "google", lambda r: people(r)
                                + [tm.device(t, r, "dev-0", serial_number="S0", model="New")]
                                + [tm.orgunit(t, r, "id:ou0", "/OU0")])
        row = tm.wait_run(t, held, statuses=("held",))
        self.assertEqual((row["pending_removals"], row["removed"]), (3, 0), row)
        self.assertEqual(psql("SELECT count(*) FROM org_units WHERE tenant_id = :'t'"
                              " AND removed_at IS NULL", t=t), [["4"]])
        status, _, body = harness.http(
            "POST", f"{self.merger.url}/internal/tenants/{t}/runs/{held}/reject",
            {"admin": "admin@d.org"}, headers={"Authorization": "Bearer " + tm.SECRET})
        self.assertEqual(status, 200, body)
        self.assertEqual(psql("SELECT count(*) FROM org_units WHERE tenant_id = :'t'"
                              " AND removed_at IS NULL", t=t), [["4"]])

    def test_dead_letters_carry_reason_partition_and_offset_and_are_counted(self):
        """docs/events.md / docs/merger.md: the original key and bytes, headers
        x-panel-dlq-reason, -partition, -offset; merger_dead_letters_total counts each."""
        t = tm.relaxed_tenant()
        before = dead_letters_total(self.merger)
        tm.publish(t, ["not protobuf \x01\x02"], raw=True)
        bad = tm.person(t, "google", str(uuid.uuid4()), "x", "x@d.org")
        del bad["person_observed"]["person"]["source_id"]
        tm.publish(t, [bad])
        tm.wait_run(t, self.publish_run(t, "google", lambda r: [
            tm.person(t, "google", r, "g1", "ok@d.org")]))
        dlq = wait_until(lambda: [m for m in harness.consume("panel.source.events.dlq",
                                                             timeout_ms=2000)
                                  if m["key"] == t] or None, timeout=30, what="dead letters")
        self.assertEqual(len(dlq), 2, dlq)
        for m in dlq:
            h = m.get("headers", {})
            self.assertEqual(sorted(h), ["x-panel-dlq-offset", "x-panel-dlq-partition",
                                         "x-panel-dlq-reason"], m)
            self.assertTrue(h["x-panel-dlq-reason"].strip(), m)
            self.assertRegex(h["x-panel-dlq-partition"], r"^\d+$")
            self.assertRegex(h["x-panel-dlq-offset"], r"^\d+$")
        # the offsets named are the source topic's, of this tenant's two refused events
        src = {(str(m["partition"]), str(m["offset"])): m
               for m in harness.consume("panel.source.events", timeout_ms=2000)
               if m["key"] == t}
        named = [(m["headers"]["x-panel-dlq-partition"], m["headers"]["x-panel-dlq-offset"])
                 for m in dlq]
        self.assertTrue(all(k in src for k in named), (named, sorted(src)))
        self.assertIn("error", src[named[0]], "the first one is the undecodable one")
        self.assertEqual(src[named[1]]["event"]["person_observed"]["person"]["email"], "x@d.org")
        self.assertEqual(dead_letters_total(self.merger) - before, 2)


class GoogleThroughTheEmulator(FetcherTestCase):
    """google-sync and the merger on the emulator, with what Google may serve."""
    FETCHER = "panel-google-sync"
    WITH_MERGER = True

    @classmethod
    def fetcher_settings(cls, emu):
        return dict(PANEL_GOOGLE_API_URL=emu.url, PANEL_GOOGLE_USERS_PAGE_SIZE=40)

    def connect(self, **counts):
        district = new_district(self.emu, **counts)
        tenant = tm.relaxed_tenant()
        self.auth.google[tenant] = google_refresh_token(self.emu, district)
        return tenant, district

    def sync(self, tenant):
        run_id = request_sync(tenant, "SOURCE_GOOGLE")
        run = tm.wait_run(tenant, run_id, statuses=("completed", "failed", "held"), timeout=120)
        self.assertEqual(run["status"], "completed", run)
        return run_id, run

    def served_orgunits(self, tenant):
        _, tok = self.auth.token(tenant, "google")
        status, _, body = harness.http(
            "GET", self.emu.url + "/admin/directory/v1/customer/my_customer/orgunits?type=all",
            headers={"Authorization": "Bearer " + tok["access_token"]})
        self.assertEqual(status, 200, body)
        check_ref(self, body, "google", "orgunits_children_first")
        return body["organizationUnits"]

    def test_child_org_unit_listed_before_its_parent_gives_the_same_tree(self):
        a, district = self.connect(people=5, ous=25)
        b = tm.relaxed_tenant()
        self.auth.google[b] = self.auth.google[a]  # the same directory, one grant
        self.sync(a)
        control(self.emu, "POST", f"/control/districts/{district['id']}/google/orgunits-order",
                {"children_first": True})
        served = self.served_orgunits(b)
        pos = {o["orgUnitId"]: i for i, o in enumerate(served)}
        self.assertTrue(any(pos.get(o.get("parentOrgUnitId"), -1) > i
                            for i, o in enumerate(served)), "a child is served before its parent")
        self.sync(b)
        tree = sorted(ou_tree(a))
        self.assertEqual(len(tree), 25)
        self.assertEqual(sorted(ou_tree(b)), tree)
        # every OU's parent is the one Google names (root's children name the root, not listed)
        by_id = {o["orgUnitId"]: o["orgUnitPath"] for o in served}
        want = sorted([o["orgUnitPath"], by_id.get(o["parentOrgUnitId"], "(none)")]
                      for o in served)
        self.assertEqual(tree, want)

    def test_user_deleted_then_undeleted_is_restored_with_the_same_person_id(self):
        tenant, district = self.connect(people=8)
        users = control(self.emu, "GET", f"/control/districts/{district['id']}/google/users")
        user = users["items"][0]
        email = user["primaryEmail"].lower()
        self.sync(tenant)
        pid = tm.people(tenant)[email]["person_id"]
        path = f"/control/districts/{district['id']}/google/users/{user['id']}"
        control(self.emu, "DELETE", path)
        _, run = self.sync(tenant)
        self.assertEqual(run["removed"], 1, run)
        self.assertTrue(tm.people(tenant)[email]["removed"])
        control(self.emu, "POST", path + "/restore")  # users.undelete: the same id
        _, run = self.sync(tenant)
        self.assertEqual((run["created"], run["updated"]), (0, 1), run)
        p = tm.people(tenant)[email]
        self.assertEqual((p["removed"], p["person_id"], p["version"]), (False, pid, 3))
        kinds = [(e["kind"], int(e["person"]["version"]))
                 for e in public_events("panel.people.events", tenant, pid, "person_changed")]
        self.assertEqual(kinds, [("CHANGE_KIND_CREATED", 1), ("CHANGE_KIND_REMOVED", 2),
                                 ("CHANGE_KIND_RESTORED", 3)])


class AzureThroughTheEmulator(AzureWired):
    def test_full_run_when_the_last_full_one_is_older_than_full_every_hours(self):
        """docs/fetchers.md: PANEL_AZURE_FULL_EVERY_HOURS (default 24) makes a run full."""
        tenant, district = self.connect(10)
        self.assertEqual(self.sync(tenant)[1]["kind"], "full")
        self.assertEqual(self.sync(tenant)[1]["kind"], "delta")
        psql("UPDATE azure_delta_state SET last_full_at = now() - interval '23 hours'"
             " WHERE tenant_id = :'t'", t=tenant)
        self.assertEqual(self.sync(tenant)[1]["kind"], "delta", "23 h: not yet")
        psql("UPDATE azure_delta_state SET last_full_at = now() - interval '25 hours'"
             " WHERE tenant_id = :'t'", t=tenant)
        uid = self.users(district)[0]["id"]
        control(self.emu, "DELETE", self.user_path(district, uid) + "?permanent=true")
        _, run = self.sync(tenant)
        self.assertEqual((run["kind"], run["removed"]), ("full", 1), run)
        self.assertEqual(self.sync(tenant)[1]["kind"], "delta", "last_full_at is now")


class ForeignGraphLink(unittest.TestCase):
    """docs/fetchers.md / docs/security.md: links are followed verbatim, but never outside
    PANEL_GRAPH_URL: the access token would go with the request."""

    def test_next_link_outside_the_graph_url_is_refused(self):
        require_env()
        foreign_hits = []

        class Foreign(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                foreign_hits.append(dict(self.headers))
                self.send_response(500)
                self.end_headers()

        foreign = ThreadingHTTPServer(("127.0.0.1", 0), Foreign)
        other = f"http://127.0.0.1:{foreign.server_address[1]}"

        class Graph(BaseHTTPRequestHandler):
            """Graph's first delta page, as tests/reference/microsoft/delta_page.json, with a
            nextLink on another host."""
            def log_message(self, *args):
                pass

            def do_GET(self):
                q = urllib.parse.urlparse(self.path).query
                page = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
                        "@odata.nextLink": other + "/v1.0/users/delta?$skiptoken=x&" + q,
                        "value": []}
                raw = json.dumps(page).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        graph = ThreadingHTTPServer(("127.0.0.1", 0), Graph)
        for s in (foreign, graph):
            threading.Thread(target=s.serve_forever, daemon=True).start()
        emu = Process("panel-emulator", env={"PANEL_EMULATOR_ADMIN_PORT":
                                             str(harness.free_port())})
        emu.admin_url = "http://127.0.0.1:" + emu.env["PANEL_EMULATOR_ADMIN_PORT"]
        auth = AuthStub(emu)
        svc = None
        try:
            district = new_district(emu, people=1, azure_people=3)
            from fetch_helpers import azure_admin_consent
            azure_admin_consent(emu, district)
            tenant = harness.new_tenant("fgl")
            auth.azure[tenant] = district["azure_tenant_id"]
            svc = Process("panel-azure-sync", env=fetcher_env(
                auth, PANEL_GRAPH_URL=f"http://127.0.0.1:{graph.server_address[1]}"))
            events = run_events(tenant, request_sync(tenant, "SOURCE_AZURE"))
            self.assertIn("run_failed", events[-1], events[-1])
            self.assertEqual(events[-1]["run_failed"]["reason"], "RUN_FAILURE_REASON_MALFORMED")
            self.assertIn("outside", events[-1]["run_failed"].get("message", ""))
            self.assertEqual(foreign_hits, [], "nothing, and no token, went to the other host")
        finally:
            if svc:
                svc.stop()
            auth.stop()
            emu.stop()
            graph.shutdown()
            foreign.shutdown()


if __name__ == "__main__":
    unittest.main()
