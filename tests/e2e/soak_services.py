"""make soak only (tests/soak.py): SIGKILL every service of the suite at random points of
syncs on the emulator, wired as `make demo` wires it (scripts/demo.py), then restart it.
After the kills a clean sync must leave the directory exactly as the uninterrupted first
sync left it, with no public event beyond the first sync's (the district did not change,
so any further event would be a duplicate)."""
import os
import random
import sys
import time
import unittest

import harness
import suite
import whole_suite

sys.path.insert(0, os.path.join(harness.ROOT, "scripts"))
import demo  # noqa: E402

KILLS = int(os.environ.get("SOAK_SERVICE_KILLS", "10"))
PEOPLE = int(os.environ.get("SOAK_PEOPLE", "5000"))
RESULT = {}
SERVICES = ["google-sync", "azure-sync", "merger", "auth", "api"]


class ServiceKillSoak(whole_suite.SuiteTestCase):
    SUITE = dict(name="soak", people=PEOPLE, azure_people=PEOPLE * 2 // 3, shared=PEOPLE // 2,
                 devices=PEOPLE // 6, ous=40, timeout=900,
                 env={"PANEL_AUTH_RUN_STALE_S": "60"})  # runs orphaned by a killed fetcher end

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            harness.wait_until(lambda: harness.psql(
                "SELECT count(*) FROM outbox WHERE tenant_id = :'t' AND sent_at IS NULL",
                t=cls.tenant)[0][0] == "0", timeout=300, what="the outbox to drain")
        except BaseException:
            cls.d.stop_all()
            raise
        cls.hdr = cls.d.service_secrets.header("api")

    def extra(self, name):
        if name != "auth":
            return {}
        with open(os.path.join(self.run_dir, "auth-key")) as f:
            key = f.read().strip()
        return {"PANEL_AUTH_KEYS": key, "PANEL_AUTH_ACTIVE_KEY_ID": "k1",
                "PANEL_AUTH_PUBLIC_URL": self.d.env["PANEL_AUTH_URL"],
                "PANEL_ADMIN_URL": self.d.api_url}

    def restart(self, name):
        for i, (n, p) in enumerate(self.d.procs):
            if n == name:
                p.kill()
                p.wait()
                del self.d.procs[i]
                break
        self.d.start(name, self.d.ports[name], self.extra(name))

    def sync(self, provider=None):
        st, _, body = harness.http(
            "POST", f"{self.d.env['PANEL_AUTH_URL']}/internal/tenants/{self.tenant}/sync",
            {"provider": provider, "actor": f"person:admin@{self.district}.k12.example"},
            headers=self.hdr)
        return [r["run_id"] for r in body.get("requests", [])] if st == 202 else []

    def public_count(self):
        return int(harness.psql("SELECT count(*) FROM outbox WHERE tenant_id = :'t'",
                                t=self.tenant)[0][0])

    def test_sigkill_every_service_during_syncs(self):
        rng = random.Random(7)
        before = suite.canonical_dump(self.tenant)
        events_before = self.public_count()
        kills = {}
        for i in range(KILLS):
            name = SERVICES[i % len(SERVICES)] if i < len(SERVICES) else rng.choice(SERVICES)
            self.sync()
            time.sleep(rng.uniform(0.3, 4.0))
            self.restart(name)
            kills[name] = kills.get(name, 0) + 1
        # A clean sync of both clouds after the storm.
        done = set()
        deadline = time.time() + 900
        while len(done) < 2 and time.time() < deadline:
            for provider in ("google", "azure"):
                if provider in done:
                    continue
                for run in self.sync(provider):
                    try:
                        if suite.wait_run(self.tenant, run, ("completed", "failed", "held"),
                                          timeout=240) == "completed":
                            done.add(provider)
                    except AssertionError:
                        pass  # an orphaned run: auth marks it stale, then ask again
        self.assertEqual(done, {"google", "azure"}, "no clean sync after the kills")
        harness.wait_until(lambda: harness.psql(
            "SELECT count(*) FROM outbox WHERE tenant_id = :'t' AND sent_at IS NULL",
            t=self.tenant)[0][0] == "0", timeout=300, what="the outbox to drain")
        after = suite.canonical_dump(self.tenant)
        lost = sum(len({tuple(r) for r in before[t]} - {tuple(r) for r in after[t]})
                   for t in before)
        extra_events = self.public_count() - events_before
        RESULT.update(kills=sum(kills.values()), per_service=kills, rows_lost=lost,
                      duplicates=max(extra_events, 0))
        for name, p in self.d.procs:
            self.assertIsNone(p.poll(), f"{name} died")
        self.assertEqual(before, after, "the directory differs from the uninterrupted sync")
        self.assertEqual(extra_events, 0, "public events beyond the first sync's")


if __name__ == "__main__":
    unittest.main()
