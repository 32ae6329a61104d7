"""Migrations: `panelctl migrate` applies every migration file not yet recorded, including one
numbered below the newest applied (branches developed in parallel land out of order); a
database where such a file was skipped would lack its tables while reporting the right
version."""
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse
import uuid

from harness import ROOT, binary, psql, require_env


class MigrationsTest(unittest.TestCase):
    def setUp(self):
        require_env()
        self.db = "mig_" + uuid.uuid4().hex[:10]
        psql(f"CREATE DATABASE {self.db}")
        url = urllib.parse.urlsplit(os.environ["PANEL_PG_URL"])
        self.url = urllib.parse.urlunsplit(url._replace(path="/" + self.db))
        self.dir = tempfile.mkdtemp(prefix="panel-migrations-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        psql(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")

    def migrate(self):
        env = dict(os.environ, PANEL_PG_URL=self.url, PANEL_MIGRATIONS_DIR=self.dir)
        return subprocess.run([binary("panelctl"), "migrate"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    def recorded(self):
        p = subprocess.run(["psql", self.url, "-X", "-A", "-t", "-c",
                            "SELECT version FROM schema_migrations ORDER BY 1"],
                           capture_output=True, text=True, check=True)
        return [int(v) for v in p.stdout.split()]

    def write(self, name, sql):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(sql)

    def test_a_migration_numbered_below_the_newest_applied_is_still_applied(self):
        # Own numbered files (not the product's), so the test does not depend on which real
        # migrations happen to be independent of each other.
        self.write("0001_first.sql", "CREATE TABLE first_table (id int);")
        self.write("0003_third.sql", "CREATE TABLE third_table (id int);")
        self.migrate()  # exit status 1: not this build's version; what matters is what ran
        self.assertEqual(self.recorded(), [1, 3])

        self.write("0002_second.sql", "CREATE TABLE second_table (id int);")
        second = self.migrate()
        self.assertIn("1 migration applied now", second.stdout, second.stderr)
        self.assertEqual(self.recorded(), [1, 2, 3])
        p = subprocess.run(["psql", self.url, "-X", "-A", "-t", "-c",
                            "SELECT to_regclass('public.second_table') IS NOT NULL"],
                           capture_output=True, text=True, check=True)
        self.assertEqual(p.stdout.strip(), "t")

        third = self.migrate()
        self.assertIn("0 migrations applied now", third.stdout, third.stderr)

    def sql(self, text):
        p = subprocess.run(["psql", self.url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-c", text], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [line.split("|") for line in p.stdout.splitlines() if line]

    def test_a_directory_connected_to_two_districts_does_not_stop_the_upgrade(self):
        """Before 0016 one Entra directory could be connected to two districts. The upgrade
        must not fail on that (0016's unique index would), and neither district may keep
        reading the directory: both connections are stopped with a message for the admins,
        a district with its own directory keeps its connection."""
        real = os.path.join(ROOT, "db", "migrations")
        files = sorted(f for f in os.listdir(real) if f.endswith(".sql"))
        for f in files:
            if int(f[:4]) < 16:
                shutil.copy(os.path.join(real, f), self.dir)
        self.migrate()
        self.sql("INSERT INTO tenants (tenant_id, display_name) VALUES ('da', 'A'), "
                 "('db', 'B'), ('dc', 'C')")
        self.sql("INSERT INTO connections (tenant_id, provider, status, provider_tenant, "
                 "grant_sealed, grant_key_id) VALUES "
                 "('da', 'azure', 'connected', 'AAAA-dir', '\\x01', 'k1'), "
                 "('db', 'azure', 'connected', 'aaaa-DIR', '\\x02', 'k1'), "
                 "('dc', 'azure', 'connected', 'cccc-dir', '\\x03', 'k1')")
        for f in files:
            if int(f[:4]) >= 16:
                shutil.copy(os.path.join(real, f), self.dir)
        out = self.migrate()
        self.assertIn(16, self.recorded(), out.stdout + out.stderr)
        self.assertEqual(self.recorded()[-1], int(files[-1][:4]), out.stdout + out.stderr)
        rows = {r[0]: r[1:] for r in self.sql(
            "SELECT tenant_id, status, coalesce(provider_tenant, ''), "
            "(grant_sealed IS NULL)::text, coalesce(status_message, '') FROM connections "
            "WHERE provider = 'azure'")}
        for t in ("da", "db"):
            self.assertEqual(rows[t][:3], ["revoked", "", "true"], t)
            self.assertIn("more than one district", rows[t][3])
        self.assertEqual(rows["dc"][:3], ["connected", "cccc-dir", "false"])


if __name__ == "__main__":
    unittest.main()
