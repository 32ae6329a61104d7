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


if __name__ == "__main__":
    unittest.main()
