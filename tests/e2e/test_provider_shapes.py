"""Provider data as districts really have it, through the whole suite (emulator, google-sync,
azure-sync, merger, api, real PostgreSQL and Kafka): archived Google users, DISABLED and
DEPROVISIONED Chromebooks carrying the district's asset tag (annotatedAssetId), devices with
only the deprecated autoUpdateExpiration, a person whose Google address Entra keeps only as
an smtp: proxy address, and AssetChanged events that keep who holds a device.

The objects are added to the district through the emulator's control API in the providers'
shapes, read from tests/reference/google/users_statuses.json, chromeosdevice_statuses.json and
tests/reference/microsoft/user_proxy_addresses.json, before the first sync; one Google change
round then moves devices between statuses."""
import json
import os
import unittest
import urllib.parse

from harness import ROOT, consume, http, psql, wait_outbox_drained, wait_until
from whole_suite import SuiteTestCase

REF = os.path.join(ROOT, "tests", "reference")


class ProviderShapes(SuiteTestCase):
    SUITE = dict(name="shapes", people=40, azure_people=30, shared=20, devices=6, ous=4)

    @classmethod
    def prepare_suite(cls, d):
        """The reference shapes are in the emulator before the first sync reads them."""
        cls.d, cls.district = d, d.district
        cls.domain = f"{cls.district}.k12.example"
        cls.seed_shapes()

    # ------------------------------------------------------------------ helpers
    @classmethod
    def emu(cls, method, coll, body=None, obj_id=None):
        path = f"/control/districts/{cls.district}/{coll}"
        if obj_id:
            path += "/" + urllib.parse.quote(obj_id, safe="")
        status, _, out = http(method, cls.d.emu_admin + path, body)
        if status not in (200, 201, 204):
            raise AssertionError(f"emulator {method} {path}: {status} {out}")
        return out

    @classmethod
    def seed_shapes(cls):
        def load(rel):
            with open(os.path.join(REF, rel)) as f:
                return json.loads(f.read().replace("DOMAIN", cls.domain))
        for user in load("google/users_statuses.json")["users"]:
            cls.emu("POST", "google/users", user)
        for user in load("microsoft/user_proxy_addresses.json")["users"]:
            cls.emu("POST", "azure/users", user)
        cls.device_ids = {}
        for name, body in load("google/chromeosdevice_statuses.json")["devices"].items():
            cls.device_ids[name] = cls.emu("POST", "google/devices", body)["deviceId"]

    def asset(self, name):
        rows = psql("SELECT asset_id FROM assets WHERE tenant_id = :'t' AND device_id = :'d';",
                    t=self.tenant, d=self.device_ids[name])
        self.assertTrue(rows, f"device {name} was imported")
        _, a = self.call("GET", f"/v1/assets/{rows[0][0]}", expect=200)
        return a

    def person_by_email(self, email):
        _, out = self.call("GET", "/v1/people?status=all&q=" + urllib.parse.quote(email),
                           expect=200)
        return out["items"]

    def google_sync(self):
        run = self.sync_now("google")
        self.assertEqual(run["status"], "completed", run)
        return run

    # ------------------------------------------------------------------ item 4: statuses
    def test_a_person_status_follows_google_archived_and_suspended(self):
        ann = self.person_by_email(f"ann.archived@{self.domain}")
        self.assertEqual(len(ann), 1)
        self.assertEqual(ann[0]["status"], "archived")
        self.assertTrue(ann[0]["archived"])
        sam = self.person_by_email(f"sam.suspended@{self.domain}")
        self.assertEqual(sam[0]["status"], "suspended")
        _, archived = self.call("GET", "/v1/people?status=archived&limit=200", expect=200)
        self.assertIn(ann[0]["person_id"], [p["person_id"] for p in archived["items"]])
        self.assertTrue(all(p["status"] == "archived" for p in archived["items"]))
        _, active = self.call("GET", "/v1/people?status=active&limit=200", expect=200)
        self.assertNotIn(ann[0]["person_id"], [p["person_id"] for p in active["items"]])
        # Entra accountEnabled false -> suspended, and Azure's value wins over Google's
        dee = self.person_by_email(f"dee.disabled@{self.domain}")
        self.assertEqual(len(dee), 1)
        self.assertEqual(sorted(dee[0]["sources"]), ["azure", "google"])
        self.assertEqual((dee[0]["status"], dee[0]["suspended"]), ("suspended", True))
        _, suspended = self.call("GET", "/v1/people?status=suspended&limit=200", expect=200)
        ids = [p["person_id"] for p in suspended["items"]]
        self.assertIn(dee[0]["person_id"], ids)
        self.assertIn(sam[0]["person_id"], ids)

    def test_a_disabled_and_deprovisioned_devices_are_created_unavailable(self):
        dis = self.asset("disabled")
        self.assertEqual((dis["google_status"], dis["lifecycle"]), ("DISABLED", "lost_stolen"))
        dep = self.asset("deprov")
        self.assertEqual((dep["google_status"], dep["lifecycle"]), ("DEPROVISIONED", "retired"))
        self.assertEqual(self.asset("legacy")["lifecycle"], "deployed")
        person = self.person_by_email(f"pat.proxy@{self.domain}")[0]["person_id"]
        for a in (dis, dep):
            status, err = self.call("POST", f"/v1/assets/{a['asset_id']}/checkout",
                                    {"person_id": person})
            self.assertEqual(status, 409, err)
            self.assertEqual(err["error"]["code"], "device_unavailable")
            self.assertIn(a["google_status"], err["error"]["message"])
        # an admin's lifecycle on a DISABLED device does not make it available either
        self.call("PATCH", f"/v1/assets/{dis['asset_id']}", {"lifecycle": "in_storage"},
                  expect=200)
        status, err = self.call("POST", f"/v1/assets/{dis['asset_id']}/checkout",
                                {"person_id": person})
        self.assertEqual((status, err["error"]["code"]), (409, "device_unavailable"))
        rows = psql("SELECT count(*) FROM checkouts WHERE tenant_id = :'t' AND asset_id IN "
                    "(:'a', :'b');", t=self.tenant, a=dis["asset_id"], b=dep["asset_id"])
        self.assertEqual(rows[0][0], "0")

    # ------------------------------------------------------------------ item 5: tags, AUE
    def test_b_google_asset_tag_is_the_tag_until_panel_sets_one(self):
        _, a = self.call("GET", "/v1/assets/by-tag/TAG-DEP-1", expect=200)
        self.assertEqual(a["serial_number"], "SHP-DEP-1")
        self.assertEqual((a["asset_tag"], a["google_asset_tag"], a["panel_asset_tag"]),
                         ("TAG-DEP-1", "TAG-DEP-1", None))
        _, listed = self.call("GET", "/v1/assets?asset_tag=TAG-DEP-1", expect=200)
        self.assertEqual([x["serial_number"] for x in listed["items"]], ["SHP-DEP-1"])
        # a tag set in Panel wins; both stay visible; Google's value no longer finds it
        _, b = self.call("PATCH", f"/v1/assets/{a['asset_id']}", {"asset_tag": "PANEL-77"},
                         expect=200)
        self.assertEqual((b["asset_tag"], b["google_asset_tag"], b["panel_asset_tag"]),
                         ("PANEL-77", "TAG-DEP-1", "PANEL-77"))
        self.call("GET", "/v1/assets/by-tag/PANEL-77", expect=200)
        status, _ = self.call("GET", "/v1/assets/by-tag/TAG-DEP-1")
        self.assertEqual(status, 404)

    def test_b_auto_update_expiry_falls_back_to_the_deprecated_field(self):
        # autoUpdateExpiration "1719792000000" is 2024-07-01T00:00:00Z
        self.assertEqual(self.asset("legacy")["auto_update_expiry"], "2024-07-01")
        self.assertEqual(self.asset("disabled")["auto_update_expiry"], "2029-06-01")
        self.assertIsNone(self.asset("kept")["auto_update_expiry"])

    # ------------------------------------------------------------------ item 6: addresses
    def test_c_person_joined_through_a_proxy_address_is_found_by_every_address(self):
        d = self.domain
        found = self.person_by_email(f"pat.proxy@{d}")
        self.assertEqual(len(found), 1, "the Google primary address finds the Person")
        pid = found[0]["person_id"]
        self.assertEqual(sorted(found[0]["sources"]), ["azure", "google"])
        for q in (f"PAT.PROXY@ms.{d}", f" patricia.proxy@{d} ", f"pat.proxy@ms.{d}"):
            self.assertEqual([p["person_id"] for p in self.person_by_email(q)], [pid], q)
        self.assertEqual(self.person_by_email(f"pat.home@{d}.invalid"), [],
                         "otherMails are unverified: never a way to find a Person")
        _, p = self.call("GET", f"/v1/people/{pid}", expect=200)
        addresses = {a["address"]: a["sources"] for a in p["addresses"]}
        self.assertEqual(addresses, {
            f"pat.proxy@{d}": ["azure", "google"],
            f"patricia.proxy@{d}": ["google"],
            f"pat.proxy@ms.{d}": ["azure"]})

    # ------------------------------------------------------------------ changes from Google
    def test_d_google_changes_statuses_and_events_keep_the_checkout(self):
        person = self.person_by_email(f"pat.proxy@{self.domain}")[0]["person_id"]
        held = self.asset("held")
        self.call("POST", f"/v1/assets/{held['asset_id']}/checkout",
                  {"person_id": person, "note": "cart 3"}, expect=201)
        admin = self.asset("admin")
        self.call("PATCH", f"/v1/assets/{admin['asset_id']}", {"lifecycle": "in_repair"},
                  expect=200)
        kept = self.asset("kept")
        self.call("PATCH", f"/v1/assets/{kept['asset_id']}", {"lifecycle": "in_storage"},
                  expect=200)
        self.assertEqual(self.asset("back")["lifecycle"], "lost_stolen")
        self.emu("PATCH", "google/devices", {"annotatedLocation": "Room 202"},
                 self.device_ids["held"])
        self.emu("PATCH", "google/devices", {"status": "DISABLED"}, self.device_ids["admin"])
        self.emu("PATCH", "google/devices", {"status": "PRE_PROVISIONED"},
                 self.device_ids["kept"])
        self.emu("PATCH", "google/devices", {"status": "ACTIVE"}, self.device_ids["back"])
        self.google_sync()
        # Google moving a device to DISABLED overrides the admin's lifecycle ...
        a = self.asset("admin")
        self.assertEqual((a["google_status"], a["lifecycle"], a["lifecycle_changed_by"]),
                         ("DISABLED", "lost_stolen", None))
        status, err = self.call("POST", f"/v1/assets/{a['asset_id']}/checkout",
                                {"person_id": person})
        self.assertEqual((status, err["error"]["code"]), (409, "device_unavailable"))
        # ... any other status change leaves an admin's lifecycle alone ...
        k = self.asset("kept")
        self.assertEqual((k["google_status"], k["lifecycle"]), ("PRE_PROVISIONED", "in_storage"))
        self.assertTrue(k["lifecycle_changed_by"])
        # ... and a device nobody set follows Google back (re-enabled -> deployed).
        b = self.asset("back")
        self.assertEqual((b["google_status"], b["lifecycle"]), ("ACTIVE", "deployed"))
        self.call("POST", f"/v1/assets/{b['asset_id']}/checkout", {"person_id": person},
                  expect=201)

        # The merger's AssetChanged for the held device carries its current checkout.
        def merger_update():
            evs = consume("panel.assets.events", key_prefix=f"{self.tenant}/{held['asset_id']}",
                          timeout_ms=3000)
            ups = [e["event"]["asset_changed"] for e in evs
                   if e["event"]["asset_changed"]["kind"] == "ASSET_CHANGE_KIND_UPDATED"
                   and e["event"].get("run_id")]
            return (evs, ups) if ups else None
        evs, ups = wait_until(merger_update, timeout=60, what="the merger's AssetChanged")
        up = ups[-1]
        self.assertIn("annotated_location", up["changed_fields"])
        self.assertEqual(up["asset"]["device"]["annotated_location"], "Room 202")
        self.assertEqual(up["asset"]["current_checkout"]["person_id"], person)
        self.assertEqual(up["asset"]["current_checkout"]["note"], "cart 3")
        self.assertEqual(up["asset"]["asset_tag"], "TAG-HLD-1")
        self.assertEqual(up["asset"]["lifecycle"], "ASSET_LIFECYCLE_DEPLOYED")
        # the api's checkout event is built by the same builder: the whole device too
        out = [e["event"]["asset_changed"] for e in evs
               if e["event"]["asset_changed"]["kind"] == "ASSET_CHANGE_KIND_CHECKED_OUT"]
        self.assertTrue(out)
        self.assertEqual(out[-1]["asset"]["device"]["annotated_location"], "Room 101")
        self.assertEqual(out[-1]["asset"]["device"]["device_id"], self.device_ids["held"])
        versions = [e["event"]["asset_changed"]["asset"]["version"] for e in evs]
        self.assertEqual(versions, sorted(versions))
        # the lifecycle change of the admin's device is announced with the status change
        wait_outbox_drained(self.tenant)
        evs = consume("panel.assets.events", key_prefix=f"{self.tenant}/{a['asset_id']}",
                      timeout_ms=3000)
        last = evs[-1]["event"]["asset_changed"]
        self.assertIn("lifecycle", last["changed_fields"])
        self.assertEqual(last["asset"]["lifecycle"], "ASSET_LIFECYCLE_LOST_STOLEN")


if __name__ == "__main__":
    unittest.main()
