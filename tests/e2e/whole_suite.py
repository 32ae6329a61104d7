"""The whole suite as `make demo` wires it (scripts/demo.py), for the tests that need every
service at once: a fresh district and tenant on the emulator, the services started against the
test run's PostgreSQL and Kafka, an API key, both clouds connected and the first sync done.
SuiteTestCase starts it once per class and stops it after."""
import argparse
import os
import sys
import tempfile
import unittest
import uuid

from harness import ROOT, http, require_env, wait_until

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import demo  # noqa: E402  (scripts/demo.py: the same wiring as `make demo`)


def start(name, *, people, azure_people, shared, devices, ous, timeout=240, env=None,
          consent=None, prepare=None, connect=True):
    """The started suite (a demo.Demo with .tenant, .district, .run_dir and, when connect,
    .key). prepare(d), when given, runs after the services start and before the clouds are
    connected; with connect=False nothing is connected and no key is made. Whatever started
    is stopped again when a step fails."""
    require_env()
    suffix = uuid.uuid4().hex[:8]
    attrs = {"tenant": f"{name}-{suffix}", "district": f"{name}{suffix}"}
    if consent:
        attrs["consent"] = consent
    wired = type(f"{name.capitalize()}Demo", (demo.Demo,), attrs)
    run_dir = tempfile.mkdtemp(prefix=f"panel-{name}-", dir=os.path.join(ROOT, ".run"))
    args = argparse.Namespace(run_dir=run_dir, people=people, azure_people=azure_people,
                              shared=shared, devices=devices, ous=ous, timeout=timeout,
                              exit_after_sync=True, reuse_infra=True)
    d = wired(args)
    d.env.update(env or {})
    try:
        d.infra()
        d.services()
        if connect:
            d.key = d.api_key()
        if prepare:
            prepare(d)
        if connect:
            d.connect("google")
            d.connect("microsoft")
            d.wait_first_sync()
    except BaseException as e:
        d.stop_all()
        if isinstance(e, SystemExit):  # scripts/demo.py's way to fail: not the test run's
            raise RuntimeError(f"the suite did not start: {e}") from None
        raise
    return d


class SuiteTestCase(unittest.TestCase):
    """A test class on its own whole suite: SUITE holds start()'s arguments (name and sizes);
    prepare_suite(d) is start()'s prepare step. Sets d, tenant, district, run_dir, api and
    (when connected) key on the class."""
    SUITE = None

    @classmethod
    def prepare_suite(cls, d):
        pass

    @classmethod
    def setUpClass(cls):
        cls.d = start(**dict(cls.SUITE, prepare=cls.prepare_suite))
        cls.tenant, cls.district, cls.run_dir = cls.d.tenant, cls.d.district, cls.d.run_dir
        cls.key = getattr(cls.d, "key", None)
        cls.api = cls.d.api_url.rstrip("/")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop_all()

    def call(self, method, path, body=None, expect=None):
        """(status, body) of an api call with the suite's key; expect asserts the status."""
        status, _, data = http(method, self.api + path, body,
                               {"Authorization": "Bearer " + self.key})
        if expect is not None:
            self.assertEqual(status, expect, data)
        return status, data

    def sync_now(self, provider="google", timeout=120):
        """An immediate sync through the api (POST /v1/sync, 202) and its run as
        GET /v1/sync/runs/{id} shows it once it ended (completed or failed)."""
        _, body = self.call("POST", "/v1/sync", {"provider": provider}, expect=202)
        run_id = body["requests"][0]["run_id"]

        def finished():
            _, run = self.call("GET", f"/v1/sync/runs/{run_id}")
            return run if run and run.get("status") in ("completed", "failed") else None
        return wait_until(finished, timeout=timeout, what=f"the {provider} run {run_id} to end")
