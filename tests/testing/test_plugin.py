"""syncd.testing's pytest plugin, as a user's project sees it: each test here writes a user's test
file into a temporary project (pytester) and runs pytest on it in a new process, with the plugin
loaded by its ``pytest11`` entry point alone (nothing in the project names it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

RESULTS = "results.jsonl"


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    env_pg = os.environ.pop("SYNCD_TEST_PG_URL", None)  # the user's project decides its backend
    try:
        return pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", f"--basetemp={pytester.path / 'bt'}", *args
        )
    finally:
        if env_pg is not None:
            os.environ["SYNCD_TEST_PG_URL"] = env_pg


def _results(pytester: pytest.Pytester) -> list[dict]:
    path = pytester.path / RESULTS
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


RECORD = f"""
import json, os
def record(**values):
    values["worker"] = os.environ.get("PYTEST_XDIST_WORKER", "main")
    values["pid"] = os.getpid()
    with open({RESULTS!r}, "a") as f:
        f.write(json.dumps(values) + "\\n")
"""


def test_the_fixtures_do_what_their_reference_says(pytester: pytest.Pytester) -> None:
    """R3, R6, R9: a tenant, an environment, a full sync, Graph writes through the fake's write API,
    a delta sync; the rows, events, diagnosis and in-step check read the result back."""
    pytester.makepyfile(
        RECORD
        + """
import httpx, pytest

def test_tenant_environment_and_sync(syncd_tenant, syncd_environment):
    assert syncd_tenant.graph_url.startswith("http://127.0.0.1:")
    with syncd_tenant.client() as client:
        assert client.get("organization").status_code == 200
    env = syncd_environment("prod")
    report = env.sync()
    assert (report.kind, report.outcome) == ("full", "succeeded"), report.error
    assert report.counts["created"] > 0
    env.assert_in_step()

    admins = set().union(*syncd_tenant.admins().values())
    assert admins
    enabled = [
        r for r in env.rows()
        if r["syncd_kind"] == "regular" and not r["isdisabled"] and r["azureactivedirectoryobjectid"] not in admins
    ]
    member = syncd_tenant.user(enabled[0]["azureactivedirectoryobjectid"])
    other = syncd_tenant.user(enabled[1]["domainname"])
    assert env.row(member)["isdisabled"] is False
    syncd_tenant.disable(member)
    syncd_tenant.remove_licences(other["userPrincipalName"])
    report = env.sync("delta")
    assert (report.kind, report.outcome) == ("delta", "succeeded"), report.error
    assert env.row(member["id"].upper())["isdisabled"] is True
    assert env.row(other["userPrincipalName"].upper())["isdisabled"] is True
    env.assert_in_step()
    events = env.events(report.run_id)
    assert {e["azureactivedirectoryobjectid"] for e in events} == {member["id"], other["id"]}
    checks = env.diagnose(member)["checks"]
    assert any(c["rule"] == "R3" and not c["passed"] for c in checks), checks

    deleted = syncd_tenant.soft_delete(other)
    syncd_tenant.restore(deleted)
    syncd_tenant.update(member, accountEnabled=True, jobTitle="Chief Tester")
    assert env.sync("delta").outcome == "succeeded"
    assert env.row(member)["jobtitle"] == "Chief Tester" and env.row(member)["isdisabled"] is False
    assert env.row(other)["isdisabled"] is True  # restored, still without a licence (R6)
    assert len(env.rows()) >= 100
    record(ok=True)

def test_churn_faults_and_counters(syncd_tenant, syncd_environment):
    env = syncd_environment("prod")
    assert env.sync().outcome == "succeeded"
    summary = syncd_tenant.churn(40, seed=5)
    assert summary
    syncd_tenant.faults(throttle_ratio=0.3, retry_after=0, delta_repeat_ratio=0.5, seed=2)
    report = env.sync("delta")
    assert report.outcome == "succeeded", report.error
    counters = syncd_tenant.counters()
    assert counters["throttled"] > 0 and counters["requests"] > counters["throttled"]
    syncd_tenant.clear_faults()
    env.assert_in_step()
    syncd_tenant.expire_delta_tokens()
    report = env.sync("delta")
    assert (report.kind, report.outcome) == ("full", "succeeded"), report  # 410: a full read again
    with pytest.raises(Exception, match="no_such_fault"):
        syncd_tenant.faults(no_such_fault=1)

def test_not_in_step_is_a_readable_assertion(syncd_tenant, syncd_environment):
    env = syncd_environment("prod")
    env.sync()
    row = next(r for r in env.rows() if r["syncd_kind"] == "regular")
    syncd_tenant.update(row["azureactivedirectoryobjectid"], jobTitle="Someone Else")
    with pytest.raises(AssertionError) as info:
        env.assert_in_step()
    assert "update" in str(info.value) and "Someone Else" in str(info.value)
    assert row["domainname"] in str(info.value)
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=3)


def test_the_marker_sizes_the_tenant_and_the_seed_makes_it_the_same(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        RECORD
        + """
import pytest

@pytest.mark.syncd_tenant(users=150, seed=4)
def test_a(syncd_tenant):
    record(test="a", ids=sorted(u["id"] for u in syncd_tenant.users()))

@pytest.mark.syncd_tenant(users=150, seed=4)
def test_b(syncd_tenant):
    syncd_tenant.soft_delete(syncd_tenant.users()[0])  # not seen by any other test
    record(test="b", ids=sorted(u["id"] for u in syncd_tenant.users()))

@pytest.mark.syncd_tenant(users=150, seed=4)
def test_c(syncd_tenant):
    record(test="c", ids=sorted(u["id"] for u in syncd_tenant.users()))

@pytest.mark.syncd_tenant(users=60, seed=9)
def test_d(syncd_tenant):
    record(test="d", ids=sorted(u["id"] for u in syncd_tenant.users()))

def test_default(syncd_tenant):
    record(test="default", ids=sorted(u["id"] for u in syncd_tenant.users()))

@pytest.mark.syncd_tenant(users=10, colour="red")
def test_bad_marker(syncd_tenant):
    pass
"""
    )
    result = _run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=5, errors=1)
    result.stdout.fnmatch_lines(["*syncd_tenant takes users=, seed= and group_size= only*colour*"])
    by = {r["test"]: r["ids"] for r in _results(pytester)}
    assert len(by["a"]) == 150 and by["a"] == by["c"]
    assert len(by["b"]) == 149 and set(by["b"]) < set(by["a"])
    assert len(by["d"]) == 60 and not set(by["d"]) & set(by["a"])
    assert len(by["default"]) == 300


def test_syncd_database_on_postgresql_with_the_option(pytester: pytest.Pytester, pg_server: str) -> None:
    """The same test file on PostgreSQL: each test a database of its own, all dropped at the end."""
    pytester.makepyfile(
        RECORD
        + """
def test_one(syncd_database, syncd_environment, syncd_database_templates):
    assert syncd_database.startswith("postgresql+psycopg://")
    record(prefix=syncd_database_templates.prefix)
    env = syncd_environment("prod")
    assert env.sync().outcome == "succeeded"
    env.assert_in_step()
    record(url=syncd_database, rows=len(env.rows()))

def test_two(syncd_database, syncd_environment):
    env = syncd_environment("prod")  # the same name: a database of its own
    record(url=syncd_database, rows=len(env.rows()))
"""
    )
    plain = pg_server.replace("postgresql+psycopg://", "postgresql://")
    result = _run(pytester, f"--syncd-pg-url={plain}")
    result.assert_outcomes(passed=2)
    prefix, one, two = _results(pytester)
    assert one["url"] != two["url"] and one["rows"] > two["rows"] > 0
    assert _syncd_databases(pg_server, prefix["prefix"]) == set()


def test_xdist_workers_share_nothing(pytester: pytest.Pytester) -> None:
    """Two workers: each its own server, tenant copies and databases; a write in one test is seen
    by no other test."""
    tests = "\n".join(
        f"""
def test_{i}(syncd_tenant, syncd_database):
    before = len(syncd_tenant.users())
    syncd_tenant.soft_delete(syncd_tenant.users()[{i}])
    record(graph=syncd_tenant.graph_url, db=syncd_database, before=before, file=str(syncd_tenant.path))
"""
        for i in range(8)
    )
    pytester.makepyfile(RECORD + tests)
    result = _run(pytester, "-n", "2")
    result.assert_outcomes(passed=8)
    results = _results(pytester)
    workers = {r["worker"] for r in results}
    assert workers == {"gw0", "gw1"}
    graph_by_worker = {w: {r["graph"] for r in results if r["worker"] == w} for w in workers}
    assert all(len(urls) == 1 for urls in graph_by_worker.values())
    assert graph_by_worker["gw0"] != graph_by_worker["gw1"]
    assert {r["before"] for r in results} == {300}
    assert len({r["db"] for r in results}) == len({r["file"] for r in results}) == 8
    assert not list((pytester.path / "bt").rglob("syncd-tenant-templates"))  # removed at the end


def test_a_directory_that_is_not_the_fake_on_loopback_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import pytest

class Remote:
    graph_url = "https://graph.microsoft.com/v1.0"

@pytest.fixture
def remote_tenant():
    return Remote()
"""
    )
    pytester.makepyfile(
        """
import http.server, threading, pytest
import syncd.testing
from syncd.testing.environments import SyncdEnvironment
from syncd.testing.safety import UnsafeDirectoryError

def test_real_graph(syncd_database, remote_tenant):
    with pytest.raises(UnsafeDirectoryError, match="never to a real tenant"):
        SyncdEnvironment(syncd_database, remote_tenant.graph_url, "prod")

def test_loopback_but_not_the_fake(syncd_database):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1.0"
        with pytest.raises(UnsafeDirectoryError, match="not syncd's fake tenant"):
            with syncd.testing.environment(url):
                pass
    finally:
        server.shutdown()

def test_nothing_listening(syncd_database):
    with pytest.raises(UnsafeDirectoryError, match="no fake tenant answers"):
        SyncdEnvironment(syncd_database, "http://127.0.0.1:9/v1.0", "prod")

def test_overriding_the_tenant_fixture_cannot_escape(syncd_environment):
    pass
"""
    )
    (pytester.path / "conftest.py").write_text(
        (pytester.path / "conftest.py").read_text()
        + """
@pytest.fixture
def syncd_tenant():
    return Remote()
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*UnsafeDirectoryError: refusing directory URL 'https://graph.microsoft.com/v1.0'*"]
    )


@pytest.mark.slow
def test_the_daemon_fixture_and_teardown_leave_nothing_behind(
    pytester: pytest.Pytester, pg_server: str
) -> None:
    """syncd run as a real process syncs an environment made by the factory; after the session no
    process, file or database of the plugin is left."""
    pytester.makepyfile(
        RECORD
        + """
import time, pytest

@pytest.mark.syncd_daemon(delta_interval_seconds=5)
def test_daemon(syncd_tenant, syncd_environment, syncd_daemon, syncd_database_templates):
    env = syncd_environment("prod")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not env.rows_synced():
        time.sleep(0.2)
    with syncd_daemon.client() as client:
        assert client.get("/readyz").status_code == 200
    record(pid=syncd_daemon.pid, db=syncd_database_url(env), tenant=str(syncd_tenant.path),
           prefix=syncd_database_templates.prefix)

def syncd_database_url(env):
    return env.database_url
"""
    )
    # rows_synced: whether a run has written the directory's users (a helper of this test file)
    (pytester.path / "conftest.py").write_text(
        """
from syncd.testing.environments import SyncdEnvironment

def _rows_synced(self):
    return any(r["syncd_kind"] == "regular" for r in self.rows())

SyncdEnvironment.rows_synced = _rows_synced
"""
    )
    plain = pg_server.replace("postgresql+psycopg://", "postgresql://")
    for args in ((), (f"--syncd-pg-url={plain}",)):
        (pytester.path / RESULTS).unlink(missing_ok=True)
        result = _run(pytester, *args)
        result.assert_outcomes(passed=1)
        (record,) = _results(pytester)
        with pytest.raises(ProcessLookupError):
            os.kill(record["pid"], 0)
        assert not Path(record["tenant"]).exists()
        leftovers = [p for p in (pytester.path / "bt").rglob("*") if p.is_file()]
        assert leftovers == [], leftovers
        assert _syncd_databases(pg_server, record["prefix"]) == set()


def test_without_pytest_fixtures(pytester: pytest.Pytester) -> None:
    """The context managers for unittest and scripts: a tenant and an environment, then nothing left."""
    pytester.makepyfile(
        RECORD
        + """
import unittest
import syncd.testing

class Sync(unittest.TestCase):
    def test_sync(self):
        with syncd.testing.fake_tenant(users=80, seed=2) as tenant:
            with syncd.testing.environment(tenant, "prod", security_group="Dataverse Users") as env:
                report = env.sync()
                self.assertEqual(report.outcome, "succeeded", report.error)
                members = set(tenant.members("Dataverse Users"))
                synced = {r["azureactivedirectoryobjectid"] for r in env.rows() if r["syncd_kind"] == "regular"}
                self.assertTrue(synced)
                self.assertLessEqual(synced, members | {u["id"] for u in tenant.users()})
                record(path=str(tenant.path), db=env.database_url)
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    (record,) = _results(pytester)
    assert not Path(record["path"]).exists()
    assert not Path(record["db"].removeprefix("sqlite:///")).exists()


def _syncd_databases(pg_admin_url: str, prefix: str) -> set[str]:
    """The databases on the server whose names start with ``prefix`` (one inner session's)."""
    engine = create_engine(pg_admin_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT datname FROM pg_database WHERE starts_with(datname, :p)")
            return set(conn.scalars(query, {"p": prefix}))
    finally:
        engine.dispose()


def test_a_projects_conftest_replaces_a_fixture(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """pytest-postgresql's way: each layer is a fixture of its own, replaceable by name; here a
    project keeps its databases in a folder of its own, and the other fixtures use them."""
    folder = tmp_path / "our-databases"
    pytester.makeconftest(
        f"""
import pytest
from syncd.testing.databases import DatabaseTemplates

@pytest.fixture
def syncd_database(syncd_database_templates):
    from pathlib import Path
    folder = Path({str(folder)!r})
    folder.mkdir(exist_ok=True)
    url = syncd_database_templates.fresh(folder)
    yield url

@pytest.fixture
def syncd_tenant(syncd_tenant_templates, syncd_graph_server, tmp_path):
    from syncd.testing.tenants import FakeTenant
    template = syncd_tenant_templates.path(40, 8)
    with FakeTenant.copy_of(template, tmp_path, syncd_graph_server, users=40, seed=8) as tenant:
        yield tenant
"""
    )
    pytester.makepyfile(
        f"""
def test_ours(syncd_database, syncd_environment, syncd_tenant):
    assert syncd_database.startswith("sqlite:///" + {str(folder)!r})
    assert len(syncd_tenant.users()) == 40
    env = syncd_environment("prod")
    assert env.database_url == syncd_database
    assert env.sync().outcome == "succeeded"
"""
    )
    _run(pytester).assert_outcomes(passed=1)
    assert len(list(folder.glob("*.db"))) == 1  # the project's fixture kept it; the plugin's would not


def test_hostile_options_are_refused_in_one_line_before_anything_runs(pytester: pytest.Pytester) -> None:
    """Markers, settings and keys a user can get wrong: each refused naming the bad value, and no
    setting can point syncd elsewhere than the test's database and fake tenant."""
    pytester.makepyfile(
        """
import pytest
from syncd.errors import DatabaseNotAtHead, SyncdError
from syncd.testing.tenants import GraphRequestError

@pytest.mark.syncd_daemon(directory_url="https://graph.microsoft.com/v1.0")
def test_daemon_to_graph(syncd_daemon):
    pass

@pytest.mark.syncd_daemon(database_url="sqlite:////tmp/elsewhere.db")
def test_daemon_elsewhere(syncd_daemon):
    pass

@pytest.mark.syncd_daemon(Directory_Url="https://graph.microsoft.com/v1.0")
def test_daemon_to_graph_in_another_case(syncd_daemon):
    pass

@pytest.mark.syncd_tenant(users=10, group_size=11)
def test_group_bigger_than_tenant(syncd_tenant):
    pass

@pytest.mark.syncd_daemon(http_port=1)
def test_daemon_port(syncd_daemon):
    pass

@pytest.mark.syncd_daemon(no_such_setting=1)
def test_daemon_unknown(syncd_daemon):
    pass

@pytest.mark.syncd_tenant(users="abc")
def test_users_text(syncd_tenant):
    pass

@pytest.mark.syncd_tenant(users=True)
def test_users_bool(syncd_tenant):
    pass

@pytest.mark.syncd_tenant(users=10, group_size="5")
def test_group_size_text(syncd_tenant):
    pass

def test_environment_settings(syncd_environment):
    for name in ("directory_url", "Directory_Url", "DIRECTORY_URL"):
        with pytest.raises(ValueError, match="'directory_url' cannot be given"):
            syncd_environment("prod", settings={name: "https://graph.microsoft.com/v1.0"})
    with pytest.raises(ValueError, match="'database_url' cannot be given"):
        syncd_environment("prod", settings={"DATABASE_URL": "sqlite:////tmp/elsewhere.db"})
    with pytest.raises(ValueError, match="given twice"):
        syncd_environment("prod", settings={"batch_size": 10, "BATCH_SIZE": 20})
    with pytest.raises(SyncdError, match="unknown security group '00000000-0000-0000-0000-000000000000'"):
        syncd_environment("prod", security_group="00000000-0000-0000-0000-000000000000")
    env = syncd_environment("prod")  # nothing of the refused ones was written
    with pytest.raises(ValueError, match="unknown run kind 'fast'"):
        env.sync("fast")
    with pytest.raises(TypeError):
        env.sync(dry_run="yes")

def test_keys(syncd_tenant, syncd_environment):
    upn = "o'neil#1~x^@" + syncd_tenant.domain
    for refused in ("a/b@", "a?b@", "a%2Fb@"):  # not in a userPrincipalName, as Graph says
        with pytest.raises(GraphRequestError, match="400.*userPrincipalName"):
            syncd_tenant.create_user(userPrincipalName=refused + syncd_tenant.domain, displayName="x")
    made = syncd_tenant.create_user(userPrincipalName=upn, displayName="O'Neil", givenName="O", surname="N")
    assert syncd_tenant.user(upn)["id"] == made["id"]
    syncd_tenant.disable(upn)
    syncd_tenant.soft_delete(upn)
    syncd_tenant.restore(upn.upper())  # by the userPrincipalName it had
    assert syncd_tenant.user(upn)["id"] == made["id"]
    with pytest.raises(GraphRequestError, match="404"):
        syncd_tenant.user("../groups")
    for bad in ("", "  ", None):
        with pytest.raises(ValueError):
            syncd_tenant.user(bad)
    with pytest.raises(GraphRequestError, match="must be at most"):
        syncd_tenant.faults(latency_ms=10**12)
    env = syncd_environment("prod")
    env.sync()
    row = next(r for r in env.rows() if r["syncd_kind"] == "regular")
    oid = row["azureactivedirectoryobjectid"]
    for key in (oid, oid.upper(), "{" + oid + "}", oid.replace("-", ""), row["domainname"].upper()):
        assert env.row(key)["systemuserid"] == row["systemuserid"], key
"""
    )
    (pytester.path / "conftest.py").write_text("")
    result = _run(pytester)
    result.assert_outcomes(passed=2, errors=9)
    result.stdout.fnmatch_lines(
        [
            "*syncd_daemon: setting 'directory_url' cannot be given to syncd.testing*",
            "*syncd_daemon: setting 'database_url' cannot be given*",
            "*syncd_daemon: setting 'directory_url' cannot be given to syncd.testing*",
            "*syncd_tenant: a fake tenant's group_size is 0 to 10, not 11*",
            "*syncd_daemon: setting 'http_port' cannot be given to the syncd_daemon*",
            "*syncd_daemon: invalid setting no_such_setting=1*",
            "*syncd_tenant: a fake tenant's users is a whole number, not 'abc'*",
            "*syncd_tenant: a fake tenant's users is a whole number, not True*",
            "*syncd_tenant: a fake tenant's group_size is a whole number, not '5'*",
        ],
        consecutive=False,
    )
    assert not Path("/tmp/elsewhere.db").exists()


def test_a_projects_unmigrated_database_and_a_basetemp_with_a_question_mark(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
import pytest

@pytest.fixture
def syncd_database(tmp_path):
    return f"sqlite:///{tmp_path}/empty.db"
"""
    )
    pytester.makepyfile(
        """
import pytest
from syncd.errors import DatabaseNotAtHead

def test_unmigrated(syncd_environment):
    with pytest.raises(DatabaseNotAtHead, match="run `syncd db upgrade`"):
        syncd_environment("prod")
"""
    )
    _run(pytester).assert_outcomes(passed=1)
    (pytester.path / "conftest.py").unlink()
    odd = pytester.path / "odd?q"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--basetemp={odd}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot name the SQLite file*'?' starts a URL's query*"])
    assert not (pytester.path / "odd").exists()  # nothing made at the path cut at '?'


@pytest.mark.slow
def test_a_killed_test_run_leaves_no_daemon_and_its_databases_go_with_the_next_run(
    pytester: pytest.Pytester, pg_server: str
) -> None:
    """A CI timeout kills pytest (SIGTERM: no teardown runs): the daemon dies with it (Linux), and
    the next session on the same PostgreSQL drops the killed session's databases."""
    import signal
    import subprocess
    import sys
    import time

    pytester.makepyfile(
        test_hangs=RECORD
        + """
import time

def test_hangs(syncd_daemon, syncd_environment, syncd_database_templates):
    syncd_environment("prod").sync()
    record(pid=syncd_daemon.pid, prefix=syncd_database_templates.prefix)
    time.sleep(120)
"""
    )
    plain = pg_server.replace("postgresql+psycopg://", "postgresql://")
    env = {k: v for k, v in os.environ.items() if k != "SYNCD_TEST_PG_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--syncd-pg-url={plain}", "-q"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not _results(pytester) and time.monotonic() < deadline:
            time.sleep(0.2)
        (record,) = _results(pytester)
        assert _syncd_databases(pg_server, record["prefix"])
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        proc.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(record["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(record["pid"], signal.SIGKILL)
        raise AssertionError("the daemon outlived the killed test run")
    assert _syncd_databases(pg_server, record["prefix"])  # left behind by the killed run...
    pytester.makepyfile(test_hangs="def test_next(syncd_database):\n    pass\n")
    _run(pytester, f"--syncd-pg-url={plain}").assert_outcomes(passed=1)
    assert _syncd_databases(pg_server, record["prefix"]) == set()  # ...and swept by the next


@pytest.mark.slow
def test_a_proxy_of_the_machine_is_not_used_for_the_fake(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY set where the tests run: the fixtures, the environments' runs and the daemon
    still talk to the fake on loopback directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    pytester.makepyfile(
        """
import time, pytest

@pytest.mark.syncd_daemon(delta_interval_seconds=5)
def test_through_no_proxy(syncd_tenant, syncd_environment, syncd_daemon):
    env = syncd_environment("prod")
    report = env.sync()
    assert report.outcome == "succeeded", report.error
    with syncd_daemon.client() as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = client.get("/api/runs").json()
            if any(r["trigger"] != "cli" for r in runs):
                break
            time.sleep(0.5)
    assert any(r["trigger"] != "cli" and r["outcome"] == "succeeded" for r in runs), runs
"""
    )
    _run(pytester).assert_outcomes(passed=1)


@pytest.mark.slow
def test_killing_an_xdist_run_stops_its_daemons(pytester: pytest.Pytester) -> None:
    """pytest -n 2 killed while two tests with a syncd_daemon hang: the daemons' parents (the
    workers) live on in their tests, but the daemons stop as pytest itself is gone."""
    import signal
    import subprocess
    import sys
    import time

    pytester.makepyfile(
        RECORD
        + "".join(
            f"""
def test_hangs_{i}(syncd_daemon):
    record(pid=syncd_daemon.pid)
    import time
    time.sleep(90)
"""
            for i in range(2)
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "SYNCD_TEST_PG_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "-q"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while len(_results(pytester)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = [r["pid"] for r in _results(pytester)]
        assert len(pids) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 30
        alive = set(pids)
        while alive and time.monotonic() < deadline:
            for pid in list(alive):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    alive.discard(pid)
            time.sleep(0.2)
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
        assert not alive, "daemons outlived the killed test run"
    finally:
        proc.kill()
