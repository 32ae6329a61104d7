"""auth deletes expired sign-in and OAuth states and old ended sessions, the api deletes
Idempotency-Key replies past PANEL_API_IDEMPOTENCY_TTL_HOURS: in batches, counted in
retention_pruned_rows_total{table=...}; young rows stay. (The merger's tables:
test_merger_retention.py.)"""
import unittest

import harness
import suite

OLD = "400 days"
COMMON = {"PANEL_RETENTION_INTERVAL_S": "1", "PANEL_RETENTION_BATCH": "7"}


def states(tenant, label, n, expired_ago):
    harness.psql(
        "INSERT INTO signin_states (state_hash, provider, browser_hash, nonce, verifier_sealed,"
        " verifier_key_id, created_at, expires_at) SELECT :'l' || g || '-' || :'t', 'google',"
        " 'b', 'n', '\\x00'::bytea, 'k1', now() - :'a'::interval, now() - :'a'::interval"
        " FROM generate_series(1, :n) g", l=label, t=tenant, n=n, a=expired_ago)
    harness.psql(
        "INSERT INTO oauth_states (state_hash, tenant_id, provider, admin, redirect_uri,"
        " created_at, expires_at) SELECT :'l' || g || '-' || :'t', :'t', 'google', 'a',"
        " 'http://x/cb', now() - :'a'::interval, now() - :'a'::interval"
        " FROM generate_series(1, :n) g", l=label, t=tenant, n=n, a=expired_ago)


class RetentionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()

    def test_auth_prunes_old_states_and_sessions(self):
        tenant = harness.new_tenant("ret")
        states(tenant, "old", 20, OLD)
        states(tenant, "young", 3, "1 day")
        account = harness.admin_account(tenant, f"a-{tenant}@example.org")
        for _ in range(21):
            harness.new_session(tenant, "x", account_id=account)
        rows = [r[0] for r in harness.psql(
            "SELECT id_hash FROM admin_sessions WHERE tenant_id = :'t' ORDER BY id_hash",
            t=tenant)]
        # expired long ago, ended long ago, alive, ended two days ago
        old, ended, live, recent = rows[:12], rows[12:17], rows[17:19], rows[19:]
        harness.psql("UPDATE admin_sessions SET created_at = now() - :'a'::interval,"
                     " expires_at = now() - :'a'::interval + interval '12 hours'"
                     " WHERE id_hash = ANY(string_to_array(:'h', ','))",
                     a=OLD, h=",".join(old))
        harness.psql("UPDATE admin_sessions SET ended_at = now() - :'a'::interval"
                     " WHERE id_hash = ANY(string_to_array(:'h', ','))",
                     a=OLD, h=",".join(ended))
        harness.psql("UPDATE admin_sessions SET ended_at = now() - interval '2 days'"
                     " WHERE id_hash = ANY(string_to_array(:'h', ','))", h=",".join(recent))
        auth = suite.start_auth(dict(COMMON, PANEL_RETENTION_STATES_HOURS="8760",
                                     PANEL_RETENTION_SESSIONS_DAYS="30"))
        try:
            harness.wait_until(lambda: suite.count(
                "SELECT count(*) FROM admin_sessions WHERE tenant_id = :'t'", t=tenant) == 4
                and suite.count("SELECT count(*) FROM oauth_states WHERE tenant_id = :'t'",
                          t=tenant) == 3, timeout=60, what="old sessions and states to go")
            counts = {t: suite.retention_pruned(auth, t)
                      for t in ("signin_states", "oauth_states", "admin_sessions")}
        finally:
            auth.stop()
        self.assertEqual(counts, {"signin_states": 20, "oauth_states": 20,
                                  "admin_sessions": 17})
        self.assertEqual(suite.count("SELECT count(*) FROM signin_states WHERE state_hash LIKE"
                               " 'young%' || :'t'", t=tenant), 3)
        self.assertEqual(suite.count("SELECT count(*) FROM signin_states WHERE state_hash LIKE"
                               " 'old%' || :'t'", t=tenant), 0)
        self.assertEqual(sorted(r[0] for r in harness.psql(
            "SELECT id_hash FROM admin_sessions WHERE tenant_id = :'t'", t=tenant)),
            sorted(live + recent))

    def test_api_prunes_idempotency_replies_past_their_ttl(self):
        tenant = harness.new_tenant("ret")
        harness.psql(
            "INSERT INTO idempotency_keys (tenant_id, caller, idem_key, request_hash, status,"
            " response, created_at) SELECT :'t', 'key:x', 'old' || g, 'h', 200, '{}',"
            " now() - :'a'::interval FROM generate_series(1, 30) g", t=tenant, a=OLD)
        harness.psql(
            "INSERT INTO idempotency_keys (tenant_id, caller, idem_key, request_hash, status,"
            " response, created_at) SELECT :'t', 'key:x', 'young' || g, 'h', 200, '{}',"
            " now() - interval '29 days' FROM generate_series(1, 4) g", t=tenant)
        api = suite.start_api(extra=dict(COMMON, PANEL_API_IDEMPOTENCY_TTL_HOURS="720"))
        try:
            harness.wait_until(lambda: suite.count(
                "SELECT count(*) FROM idempotency_keys WHERE tenant_id = :'t'", t=tenant) == 4,
                timeout=60, what="old idempotency replies to go")
            n = suite.retention_pruned(api, "idempotency_keys")
        finally:
            api.stop()
        self.assertEqual(n, 30)
        self.assertEqual(sorted(r[0] for r in harness.psql(
            "SELECT idem_key FROM idempotency_keys WHERE tenant_id = :'t'", t=tenant)),
            ["young1", "young2", "young3", "young4"])


if __name__ == "__main__":
    unittest.main()
