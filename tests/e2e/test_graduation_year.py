"""A student's graduation year, end to end (issue 23): a Google custom schema field and an Entra
directory extension the district names in configuration, read by google-sync and azure-sync
from the emulator (which returns them only when asked for, as the real APIs do), merged with
Azure's value winning, shown by the api (JSON and ?graduation_year=) and carried by the
PersonChanged event; a Graph null clears it; a value that is not a year is left out. With the
configuration unset, no value reaches the product. Real Kafka and PostgreSQL; only auth's token
endpoint is a stand-in (fetch_helpers.AuthStub)."""
import csv
import io
import json
import os
import subprocess
import unittest
import urllib.request

import harness
import suite
import test_azure_sync
import test_merger as tm
from fetch_helpers import (AuthStub, azure_admin_consent, control, fetcher_env,
                           google_refresh_token, new_district, request_sync)
from harness import Process, free_port, http, new_tenant, psql, require_env

SCHEMA_FIELD = "StudentInfo.GraduationYear"
ATTRIBUTE = "extension_0a1b2c3d4e5f40718293a4b5c6d7e8f9_graduationYear"
SOURCES = {"google": "SOURCE_GOOGLE", "azure": "SOURCE_AZURE"}


class Wired:
    """Emulator, AuthStub, both fetchers (configured by fetch_env), the merger and the api."""
    fetch_env = {}

    @classmethod
    def setUpClass(cls):
        require_env()
        admin_port = free_port()
        cls.emu = Process("panel-emulator", env={"PANEL_EMULATOR_ADMIN_PORT": str(admin_port)})
        cls.emu.admin_url = f"http://127.0.0.1:{admin_port}"
        cls.auth = AuthStub(cls.emu)
        google_env = {k: v for k, v in cls.fetch_env.items() if k.startswith("PANEL_GOOGLE_")}
        azure_env = {k: v for k, v in cls.fetch_env.items() if k.startswith("PANEL_AZURE_")}
        cls.procs = []
        try:
            cls.procs.append(Process("panel-google-sync", env=fetcher_env(
                cls.auth, PANEL_GOOGLE_API_URL=cls.emu.url, **google_env)))
            cls.procs.append(Process("panel-azure-sync", env=fetcher_env(
                cls.auth, PANEL_GRAPH_URL=cls.emu.url, **azure_env)))
            cls.procs.append(tm.start_merger())
            cls.api = suite.start_api()
            cls.procs.append(cls.api)
        except BaseException:
            cls.stop_all()
            raise

    @classmethod
    def stop_all(cls):
        for p in reversed(cls.procs):
            p.stop()
        cls.auth.stop()
        cls.emu.stop()

    @classmethod
    def tearDownClass(cls):
        cls.stop_all()

    # ------------------------------------------------------------------ helpers
    def connect(self):
        """A district of students in both clouds; returns (tenant, district, pairs) where pairs
        are (google user, azure user) of the same address."""
        district = new_district(self.emu, people=8, azure_people=8, shared=8)
        tenant = new_tenant("gy")
        self.auth.google[tenant] = google_refresh_token(self.emu, district)
        azure_admin_consent(self.emu, district)
        self.auth.azure[tenant] = district["azure_tenant_id"]
        test_azure_sync.AzureSync.attach(tenant, district["azure_tenant_id"])
        base = f"/control/districts/{district['id']}"
        google = {u["primaryEmail"].lower(): u
                  for u in control(self.emu, "GET", base + "/google/users")["items"]}
        pairs = []
        for a in control(self.emu, "GET", base + "/azure/users")["items"]:
            g = google.get((a.get("mail") or "").lower())
            if g and a["accountEnabled"] and not g.get("suspended"):
                pairs.append((g, a))
        self.assertGreaterEqual(len(pairs), 4, "the district has students in both clouds")
        return tenant, district, pairs

    def set_google(self, district, user, value):
        schemas = {"StudentInfo": {"GraduationYear": value}} if value is not None else {}
        control(self.emu, "PATCH", f"/control/districts/{district['id']}/google/users/{user['id']}",
                {"customSchemas": schemas})

    def set_azure(self, district, user, value):
        control(self.emu, "PATCH", f"/control/districts/{district['id']}/azure/users/{user['id']}",
                {ATTRIBUTE: value})

    def sync(self, tenant, cloud, force_full=False):
        run_id = request_sync(tenant, SOURCES[cloud], force_full)

        def done():
            rows = psql("SELECT status, kind FROM sync_runs WHERE tenant_id = :'t'"
                        " AND run_id = :'r'", t=tenant, r=run_id)
            return rows[0] if rows and rows[0][0] in ("completed", "held", "failed") else None
        status, kind = harness.wait_until(done, timeout=120, what=f"{cloud} run {run_id}")
        self.assertEqual(status, "completed")
        return kind

    def person(self, tenant, google_user):
        """(person_id, fields, provenance) of the Person of a Google user."""
        rows = psql("SELECT p.person_id, p.fields::text, p.provenance::text FROM person_sources s"
                    " JOIN people p ON p.tenant_id = s.tenant_id AND p.person_id = s.person_id"
                    " WHERE s.tenant_id = :'t' AND s.source = 'google' AND s.source_id = :'u'",
                    t=tenant, u=google_user["id"])
        self.assertEqual(len(rows), 1)
        return rows[0][0], json.loads(rows[0][1]), json.loads(rows[0][2])

    def call(self, tenant, path):
        key = self.keys.setdefault(tenant, suite.api_key(tenant, "viewer"))
        status, _, body = http("GET", self.api.url + path, None,
                               {"Authorization": "Bearer " + key})
        return status, body

    def call_csv(self, tenant, name):
        """GET /v1/exports/<name>: its rows by person_id, each a dict by column."""
        key = self.keys.setdefault(tenant, suite.api_key(tenant, "viewer"))
        req = urllib.request.Request(self.api.url + "/v1/exports/" + name,
                                     headers={"Authorization": "Bearer " + key})
        with urllib.request.urlopen(req, timeout=60) as resp:
            rows = list(csv.reader(io.TextIOWrapper(resp, encoding="utf-8", newline="")))
        return {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}

    def last_event(self, tenant, person_id):
        evs = harness.consume("panel.people.events", key_prefix=f"{tenant}/{person_id}",
                              timeout_ms=3000)
        self.assertTrue(evs, "the Person has events")
        return evs[-1]["event"]["person_changed"]


class GraduationYearConfigured(Wired, unittest.TestCase):
    fetch_env = {"PANEL_GOOGLE_GRADUATION_YEAR_FIELD": SCHEMA_FIELD,
                 "PANEL_AZURE_GRADUATION_YEAR_ATTRIBUTE": ATTRIBUTE}
    keys = {}

    def test_azure_value_wins_and_reaches_the_api_and_the_event(self):
        tenant, district, pairs = self.connect()
        (g_both, a_both), (g_only, _), (g_bad, a_none), (g_text, a_only) = pairs[:4]
        self.set_google(district, g_both, "2030")   # Google: a custom field is text
        self.set_azure(district, a_both, 2031)      # Entra: an Integer extension
        self.set_google(district, g_only, 2029)
        self.set_google(district, g_bad, "Class of 2030")  # not a year: left out
        self.set_azure(district, a_none, 30)               # out of range: left out
        self.set_google(district, g_text, [{"value": "2028"}])
        self.set_azure(district, a_only, "2027")           # a String extension
        self.assertEqual(self.sync(tenant, "google"), "full")
        self.assertEqual(self.sync(tenant, "azure"), "full")

        pid, fields, prov = self.person(tenant, g_both)
        self.assertEqual(fields["graduation_year"], 2031, "Azure's value wins")
        self.assertEqual(prov["graduation_year"], "azure")
        google_row = json.loads(psql("SELECT fields::text FROM person_sources WHERE tenant_id ="
                                     " :'t' AND source = 'google' AND source_id = :'u'",
                                     t=tenant, u=g_both["id"])[0][0])
        self.assertEqual(google_row["graduation_year"], 2030, "Google's value is kept too")
        _, fields, prov = self.person(tenant, g_only)
        self.assertEqual((fields["graduation_year"], prov["graduation_year"]), (2029, "google"))
        _, fields, _ = self.person(tenant, g_bad)
        self.assertNotIn("graduation_year", fields, "neither value is a year")
        _, fields, prov = self.person(tenant, g_text)
        self.assertEqual((fields["graduation_year"], prov["graduation_year"]), (2027, "azure"))

        status, body = self.call(tenant, f"/v1/people/{pid}")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["graduation_year"], 2031)
        self.assertEqual(body["provenance"]["graduation_year"], "azure")
        status, body = self.call(tenant, "/v1/people?graduation_year=2031")
        self.assertEqual(status, 200, body)
        self.assertEqual([p["person_id"] for p in body["items"]], [pid])
        status, body = self.call(tenant, "/v1/people?limit=100")
        bad_pid = self.person(tenant, g_bad)[0]
        self.assertIsNone(next(p for p in body["items"] if p["person_id"] == bad_pid)
                          ["graduation_year"])
        # The People CSV carries the year too (empty where the Person has none).
        export = self.call_csv(tenant, "people.csv")
        self.assertEqual(export[pid]["graduation_year"], "2031")
        self.assertEqual(export[bad_pid]["graduation_year"], "")
        for bad in ("31", "20311", "1899", "abcd", "2031.0"):
            status, body = self.call(tenant, "/v1/people?graduation_year=" + bad)
            self.assertEqual(status, 400, bad)

        ev = self.last_event(tenant, pid)
        self.assertEqual(ev["person"]["fields"]["graduation_year"], 2031)
        self.assertIn("graduation_year", ev["changed_fields"])
        self.assertIn({"field": "graduation_year", "source": "SOURCE_AZURE"},
                      ev["person"]["provenance"])

    def test_a_graph_null_clears_the_value(self):
        tenant, district, pairs = self.connect()
        (g_both, a_both), (g_azure, a_azure) = pairs[:2]
        self.set_google(district, g_both, 2030)
        self.set_azure(district, a_both, 2031)
        self.set_azure(district, a_azure, 2032)
        self.sync(tenant, "google")
        self.assertEqual(self.sync(tenant, "azure"), "full")
        pid, fields, _ = self.person(tenant, g_both)
        self.assertEqual(fields["graduation_year"], 2031)
        pid2, fields, _ = self.person(tenant, g_azure)
        self.assertEqual(fields["graduation_year"], 2032)
        # Entra clears both; the delta round sends them as null
        self.set_azure(district, a_both, None)
        self.set_azure(district, a_azure, None)
        self.assertEqual(self.sync(tenant, "azure"), "delta")
        _, fields, prov = self.person(tenant, g_both)
        self.assertEqual((fields["graduation_year"], prov["graduation_year"]), (2030, "google"),
                         "Azure has none now: Google's value shows")
        _, fields, _ = self.person(tenant, g_azure)
        self.assertNotIn("graduation_year", fields, "cleared")
        status, body = self.call(tenant, f"/v1/people/{pid2}")
        self.assertEqual(status, 200, body)
        self.assertIsNone(body["graduation_year"])
        ev = self.last_event(tenant, pid2)
        self.assertEqual(ev["kind"], "CHANGE_KIND_UPDATED")
        self.assertEqual(ev["changed_fields"], ["graduation_year"])
        self.assertNotIn("graduation_year", ev["person"]["fields"])
        # and a Google listing without the field removes Google's value
        self.set_google(district, g_both, None)
        self.sync(tenant, "google")
        _, fields, _ = self.person(tenant, g_both)
        self.assertNotIn("graduation_year", fields)


    def test_the_emulator_returns_custom_fields_only_when_asked(self):
        """Google: customSchemas only with projection=custom (the customFieldMask schemas) or
        full; Graph: a directory extension only when $select names it, and only when set."""
        tenant, district, pairs = self.connect()
        (g, a), (_, a_unset) = pairs[:2]
        self.set_google(district, g, 2030)
        self.set_azure(district, a, 2031)

        def get(url, provider):
            tok = self.auth.token(tenant, provider)[1]["access_token"]
            return http("GET", self.emu.url + url, None, {"Authorization": "Bearer " + tok})

        def google_user(query):
            status, _, body = get("/admin/directory/v1/users?customer=my_customer&maxResults=500"
                                  + query, "google")
            self.assertEqual(status, 200, body)
            return next(u for u in body["users"] if u["id"] == g["id"])
        self.assertNotIn("customSchemas", google_user(""))
        self.assertNotIn("customSchemas", google_user("&projection=basic"))
        self.assertNotIn("customSchemas", google_user("&projection=custom&customFieldMask=Other"))
        want = {"StudentInfo": {"GraduationYear": 2030}}
        self.assertEqual(google_user("&projection=custom&customFieldMask=StudentInfo")
                         ["customSchemas"], want)
        self.assertEqual(google_user("&projection=full")["customSchemas"], want)
        status, _, one = get(f"/admin/directory/v1/users/{g['id']}?projection=full", "google")
        self.assertEqual((status, one.get("customSchemas")), (200, want))
        status, _, one = get(f"/admin/directory/v1/users/{g['id']}", "google")
        self.assertEqual(status, 200)
        self.assertNotIn("customSchemas", one)

        def graph_users(select):
            status, _, body = get("/v1.0/users?$top=999&$select=" + select, "azure")
            self.assertEqual(status, 200, body)
            return {u["id"]: u for u in body["value"]}
        self.assertNotIn(ATTRIBUTE, graph_users("id,displayName")[a["id"]])
        users = graph_users("id,displayName," + ATTRIBUTE)
        self.assertEqual(users[a["id"]][ATTRIBUTE], 2031)
        self.assertNotIn(ATTRIBUTE, users[a_unset["id"]], "an unset extension is left out")
        status, _, body = get("/v1.0/users?$select=id,extension_nothex_graduationYear", "azure")
        self.assertEqual(status, 400, body)


class GraduationYearNotConfigured(Wired, unittest.TestCase):
    fetch_env = {}
    keys = {}

    def test_values_in_the_clouds_are_not_read(self):
        tenant, district, pairs = self.connect()
        (g_both, a_both), (g_only, _) = pairs[:2]
        self.set_google(district, g_both, 2030)
        self.set_azure(district, a_both, 2031)
        self.set_google(district, g_only, 2029)
        self.sync(tenant, "google")
        self.sync(tenant, "azure")
        for g in (g_both, g_only):
            pid, fields, _ = self.person(tenant, g)
            self.assertNotIn("graduation_year", fields)
            status, body = self.call(tenant, f"/v1/people/{pid}")
            self.assertEqual(status, 200, body)
            self.assertIsNone(body["graduation_year"])
        rows = psql("SELECT count(*) FROM person_sources WHERE tenant_id = :'t'"
                    " AND fields ? 'graduation_year'", t=tenant)
        self.assertEqual(rows[0][0], "0", "no source row has a value")


class GraduationYearBadConfiguration(unittest.TestCase):
    def test_a_malformed_name_stops_the_fetcher_naming_the_variable(self):
        require_env()
        for prog, var, value in (
                ("panel-google-sync", "PANEL_GOOGLE_GRADUATION_YEAR_FIELD", "GraduationYear"),
                ("panel-google-sync", "PANEL_GOOGLE_GRADUATION_YEAR_FIELD", "S.F&projection=full"),
                ("panel-azure-sync", "PANEL_AZURE_GRADUATION_YEAR_ATTRIBUTE", "graduationYear"),
                ("panel-azure-sync", "PANEL_AZURE_GRADUATION_YEAR_ATTRIBUTE",
                 ATTRIBUTE + ",displayName")):
            with self.subTest(prog=prog, value=value):
                env = dict(os.environ, PANEL_SERVICE_SECRET="a-valid-service-secret-for-the-test",
                           PANEL_HTTP_PORT="0", **{var: value})
                p = subprocess.run([harness.binary(prog)], capture_output=True, text=True,
                                   env=env, timeout=30)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(var, p.stderr)


if __name__ == "__main__":
    unittest.main()
