"""Fault scenarios shared by tests/e2e/test_reliability_quick.py (small) and tests/soak.py
(large). Each scenario returns a dict of what it did and found; the callers assert on it.

The scenarios drive the merger with synthetic fetcher runs (suite.run_events) because it is
the one writer of directory data: the same run is applied once without faults to a baseline
tenant and once under faults to another tenant with the same district domain, and the two
canonical dumps (suite.canonical_dump) and public event counts must be equal."""
import collections
import os
import random
import signal
import subprocess
import time
import urllib.parse

import harness
import suite
from harness import wait_outbox_drained

SOAK_DOMAIN = "soak.k12.example"


def infra(cmd, what):
    """scripts/pg.sh or scripts/kafka.sh start|stop for the servers tests/run.py started."""
    env = dict(os.environ)
    # The clients keep their URLs: restart on the same port.
    if what == "pg":
        env["PANEL_PG_PORT"] = urllib.parse.urlsplit(os.environ["PANEL_PG_URL"]).port.__str__()
    else:
        env["PANEL_KAFKA_PORT"] = os.environ["PANEL_KAFKA_BROKERS"].split(",")[0].rsplit(":", 1)[1]
    p = subprocess.run(["sh", f"scripts/{what}.sh", cmd], cwd=harness.ROOT, env=env,
                       capture_output=True, text=True, timeout=180)
    if p.returncode != 0:
        raise RuntimeError(f"{what}.sh {cmd} failed: {p.stderr[-2000:]}")


def outbox_ids(tenant):
    return {r[0] for r in harness.psql(
        "SELECT event_id FROM outbox WHERE tenant_id = :'t'", t=tenant)}


def event_summary(tenant):
    """Per topic and change kind, how many public events; plus their ids and keys."""
    # Counts and keys are of distinct events; ids lists every delivery, so a redelivered
    # event id (the relay publishing a row twice) shows up as a duplicate in compare().
    seen = {}
    delivered = suite.public_events(tenant)
    for e in delivered:
        seen.setdefault(e[3], e)
    evs = list(seen.values())
    counts = collections.Counter((topic, kind) for topic, _, kind, _ in evs)
    ids = [e[3] for e in delivered]
    keys = collections.Counter((topic, key, kind) for topic, key, kind, _ in evs)
    return counts, ids, keys


def baseline(events_for, merger_env=None):
    """Apply the runs events_for(tenant) returns to a fresh tenant with no faults."""
    tenant = harness.new_tenant("base")
    m = suite.start_merger(merger_env)
    try:
        runs = events_for(tenant)
        for evs in runs:
            suite.publish(tenant, evs)
            suite.wait_run(tenant, evs[0]["run_id"], timeout=600)
        wait_outbox_drained(tenant)
    finally:
        m.stop()
    return tenant


def compare(base, other):
    """Differences between two tenants' results (empty when equal)."""
    problems = []
    a, b = suite.canonical_dump(base), suite.canonical_dump(other)
    for table in a:
        if a[table] != b[table]:
            missing = len(set(map(tuple, a[table])) - set(map(tuple, b[table])))
            extra = len(set(map(tuple, b[table])) - set(map(tuple, a[table])))
            problems.append(f"{table}: {len(a[table])} rows vs {len(b[table])} "
                            f"({missing} missing, {extra} unexpected)")
    ca, ids_a, _ = event_summary(base)
    cb, ids_b, keys_b = event_summary(other)
    if ca != cb:
        problems.append(f"public events differ: {dict(ca)} vs {dict(cb)}")
    outbox = outbox_ids(other)
    published = set(ids_b)
    if outbox != published:
        problems.append(f"outbox ids vs published ids: {len(outbox - published)} never "
                        f"published, {len(published - outbox)} not from the outbox")
    return problems, {"rows_lost": sum(max(0, len(a[t]) - len(b[t])) for t in a),
                      "duplicates": sum(n - 1 for n in keys_b.values() if n > 1)
                      + max(0, len(ids_b) - len(set(ids_b)))}


def absolute_problems(tenant, google, azure, devices=0, ous=0, domain=SOAK_DOMAIN):
    """What the tenant must hold after the runs of suite.run_events (Google's people
    `google`, Azure's `azure`, all complete), whatever an uninterrupted run gave: a bug
    present in both runs shows here."""
    want_people = sorted([f"user.{i}@{domain}", f"Bob {i}" if i in azure else f"Robert {i}", "t"]
                         for i in set(google) | set(azure))
    want = {
        "people": want_people,
        "person_sources": sorted([["azure", str(len(azure)), "t"], ["google", str(len(google)),
                                                                    "t"]]),
        "org_units": [[f"id:ou{i:04d}", f"/Students/G{i}"] for i in range(ous)],
        "assets": [[f"dev-{i:05d}", f"SN{i:07d}", "t"] for i in range(devices)],
    }
    got = {
        "people": sorted(harness.psql(
            "SELECT email_norm, display_name, (removed_at IS NULL) FROM people"
            " WHERE tenant_id = :'t'", t=tenant)),
        "person_sources": sorted(harness.psql(
            "SELECT source, count(*), bool_and(removed_at IS NULL) FROM person_sources"
            " WHERE tenant_id = :'t' GROUP BY 1", t=tenant)),
        "org_units": harness.psql("SELECT org_unit_id, path FROM org_units WHERE tenant_id = :'t'"
                                  " AND removed_at IS NULL ORDER BY 1", t=tenant),
        "assets": harness.psql("SELECT device_id, serial_number, in_google FROM assets"
                               " WHERE tenant_id = :'t' ORDER BY 1", t=tenant),
    }
    if not google:
        want["person_sources"] = [r for r in want["person_sources"] if r[0] != "google"]
    if not azure:
        want["person_sources"] = [r for r in want["person_sources"] if r[0] != "azure"]
    return [f"{k}: {len(got[k])} rows, {sum(r not in want[k] for r in got[k])} not expected, "
            f"{sum(r not in got[k] for r in want[k])} missing"
            for k in want if got[k] != want[k]]


def large_sync(tenant, people, devices, ous):
    return [suite.run_events(tenant, "google", range(people), devices=devices, ous=ous,
                             domain=SOAK_DOMAIN),
            suite.run_events(tenant, "azure", range(people // 2, people + people // 4),
                             domain=SOAK_DOMAIN)]


def merger_kills(kills, people=3000, devices=500, ous=20, seed=None, base=None):
    """SIGKILL the merger `kills` times at random points while it applies a large sync, then
    let it finish; compare with an uninterrupted run."""
    rng = random.Random(seed)
    env = {"PANEL_MERGER_BATCH_MAX": "250"}
    events_for = lambda t: large_sync(t, people, devices, ous)  # noqa: E731
    base = base or baseline(events_for, env)
    tenant = harness.new_tenant("kill")
    runs = events_for(tenant)
    for evs in runs:
        suite.publish(tenant, evs)
    done = 0
    restarts = 0
    m = suite.start_merger(env)
    try:
        while done < kills:
            time.sleep(rng.uniform(0.05, 0.6))
            if all(suite.run_status(tenant, r[0]["run_id"]) == "completed" for r in runs):
                break  # applied before the kills ran out: the caller sees kills < asked
            m.kill()
            done += 1
            m.start()
            restarts += 1
        suite.wait_applied(tenant, runs, timeout=600)
        alive = m.proc.poll() is None
    finally:
        m.stop()
    problems, stats = large_sync_problems(base, tenant, people, devices, ous)
    return dict(stats, kills=done, restarts=restarts, alive=alive, problems=problems,
                base=base, tenant=tenant)


def large_sync_problems(base, tenant, people, devices, ous):
    """(problems, stats) of tenant after large_sync's two runs: its differences from base (the
    same runs applied undisturbed) and from what the runs say must be there."""
    problems, stats = compare(base, tenant)
    problems += absolute_problems(tenant, range(people), range(people // 2, people + people // 4),
                                  devices, ous)
    return problems, stats


def infra_restart(which, people=2000, devices=300, ous=10, pause=5.0, base=None):
    """Stop PostgreSQL or Kafka while the merger applies a large sync, start it again; the
    merger must wait, resume and reach the uninterrupted result."""
    env = {"PANEL_MERGER_BATCH_MAX": "250"}
    events_for = lambda t: large_sync(t, people, devices, ous)  # noqa: E731
    base = base or baseline(events_for, env)
    tenant = harness.new_tenant(which[:4])
    runs = events_for(tenant)
    m = suite.start_merger(env)
    try:
        suite.publish(tenant, runs[0])
        if which == "kafka":
            suite.publish(tenant, runs[1])
        harness.wait_until(lambda: int(harness.psql(
            "SELECT count(*) FROM person_sources WHERE tenant_id = :'t'", t=tenant)[0][0]) > 0,
            timeout=120, what="the apply to start")
        infra("stop", which)
        if which == "pg":
            # Events keep arriving while the database is away: the merger must keep them
            # until it can apply them.
            suite.publish(tenant, runs[1])
        time.sleep(pause)
        infra("start", which)
        suite.wait_applied(tenant, runs, timeout=600)
        alive = m.proc.poll() is None
    finally:
        m.stop()
    problems, stats = large_sync_problems(base, tenant, people, devices, ous)
    return dict(stats, restarts=1, alive=alive, problems=problems, base=base, tenant=tenant)


def broken_runs_delete_nothing(people=400):
    """After a complete run, a failed run and an unfinished run that saw only half the
    people delete nothing."""
    tenant = harness.new_tenant("broken")
    m = suite.start_merger()
    try:
        first = suite.run_events(tenant, "google", range(people), devices=20, ous=3)
        suite.apply_run(tenant, first)
        before = suite.canonical_dump(tenant)
        failed = suite.run_events(tenant, "google", range(people // 2), fail=True)
        suite.publish(tenant, failed)
        suite.wait_run(tenant, failed[0]["run_id"], ("failed",))
        partial = suite.run_events(tenant, "google", range(people // 3), complete=False)
        suite.publish(tenant, partial)
        harness.wait_until(lambda: suite.run_status(tenant, partial[0]["run_id"]) == "running",
                           what="the partial run to start")
        m.kill()  # the fetcher died: RunCompleted never comes; a restart must not delete
        m.start()
        # A later complete run of another source proves the merger went past those events.
        probe = suite.run_events(tenant, "azure", range(5))
        suite.publish(tenant, probe)
        suite.wait_run(tenant, probe[0]["run_id"], ("completed",))
        after = suite.canonical_dump(tenant)
    finally:
        m.stop()
    removed = [r for r in after["person_sources"] if r[0] == "google" and r[3] != "t"]
    removed += [r for r in after["assets"] if r not in before["assets"]]
    return {"faults": 2, "removed": len(removed),
            "google_before": len([r for r in before["person_sources"] if r[0] == "google"]),
            "google_after": len([r for r in after["person_sources"]
                                 if r[0] == "google" and r[3] == "t"])}


def sigterm_mid_batch(people=4000, grace=20.0):
    """SIGTERM while a batch is being applied: exits 0 within the grace period; what it
    committed is whole batches (a restart completes the run with the uninterrupted result)."""
    env = {"PANEL_MERGER_BATCH_MAX": "2000"}
    events_for = lambda t: [suite.run_events(t, "google", range(people), domain=SOAK_DOMAIN)]  # noqa: E731
    base = baseline(events_for, env)
    tenant = harness.new_tenant("term")
    runs = events_for(tenant)
    m = suite.start_merger(env)
    try:
        suite.publish(tenant, runs[0])
        harness.wait_until(lambda: int(harness.psql(
            "SELECT count(*) FROM person_sources WHERE tenant_id = :'t'", t=tenant)[0][0]) > 0,
            timeout=120, interval=0.02, what="the first batch")
        t0 = time.time()
        m.proc.send_signal(signal.SIGTERM)
        try:
            code = m.proc.wait(grace)
        except subprocess.TimeoutExpired:
            code = None
        took = time.time() - t0
        if code is None:
            m.kill()
        m.start()
        suite.wait_run(tenant, runs[0][0]["run_id"], ("completed",), timeout=600)
        wait_outbox_drained(tenant)
    finally:
        m.stop()
    problems, stats = compare(base, tenant)
    problems += absolute_problems(tenant, range(people), range(0))
    return dict(stats, exit_code=code, seconds=took, problems=problems)
