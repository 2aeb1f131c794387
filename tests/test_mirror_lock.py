"""Coordinated mirrors: one run per target at a time, on a directory and on a
real S3 server (moto, server mode). Every run here is a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from s3fixture import DUMMY_AWS, make_bags, s3_server  # noqa: F401  (fixture)

from archiver.replication.lock import LOCK_FILE, DirectoryLock, MirrorLocked, S3Lock

REPO = Path(__file__).resolve().parent.parent
HOLD = """
import sys, time
from pathlib import Path
from archiver.replication import open_target
from archiver.replication.lock import lock_for
target = open_target(sys.argv[1], sys.argv[2] or None)
lock = lock_for(target)
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
"""


def mirror_cmd(root: Path, target: str, endpoint: str | None, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "archiver.cli", "mirror", str(root), target, "--json", *extra]
    return args + (["--endpoint-url", endpoint] if endpoint else [])


def env() -> dict:
    return {**os.environ, **DUMMY_AWS}


def holder(target: str, endpoint: str | None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, target, endpoint or ""], cwd=REPO, env=env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def release(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=30) == 0


@pytest.fixture(params=["directory", "s3"])
def where(request, tmp_path) -> tuple[str, str | None]:
    if request.param == "directory":
        return str(tmp_path / "target"), None
    server = request.getfixturevalue("s3_server")
    return f"s3://{server.new_bucket()}/copy", server.endpoint_url


def test_second_run_exits_3_while_a_live_run_holds_the_target_then_waits(tmp_path, where):
    target, endpoint = where
    root = tmp_path / "bags"
    make_bags(root, 3)
    proc = holder(target, endpoint)
    try:
        refused = subprocess.run(mirror_cmd(root, target, endpoint), cwd=REPO, env=env(),
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 3, refused.stderr
        document = json.loads(refused.stdout)
        assert "another mirror to" in document["error"] and f"pid {proc.pid}" in document["error"]
        waiting = subprocess.Popen(mirror_cmd(root, target, endpoint, "--wait", "60"), cwd=REPO,
                                   env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "waiting up to 60s" in waiting.stderr.readline()  # type: ignore[union-attr]
    finally:
        release(proc)
    stdout, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 0 and json.loads(stdout)["mirrored"] == 3


def test_two_concurrent_runs_never_interleave(tmp_path, where):
    target, endpoint = where
    root = tmp_path / "bags"
    make_bags(root, 20)
    runs = [subprocess.Popen(mirror_cmd(root, target, endpoint, "--wait", "120"), cwd=REPO, env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    reports = [json.loads(run.communicate(timeout=240)[0]) for run in runs]
    assert [r["exit_code"] for r in reports] == [0, 0]
    # Serialised: one run sent every bag, the other found every bag present.
    assert sorted((r["mirrored"], r["present"]) for r in reports) == [(0, 20), (20, 0)]


def test_a_dead_owners_lock_is_taken_over_with_a_warning(tmp_path, where):
    target, endpoint = where
    root = tmp_path / "bags"
    make_bags(root, 2)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = {"host": socket.gethostname(), "pid": int(gone.stdout), "run_id": "dead-run",
             "expires": "2999-01-01T00:00:00Z"}
    write_lock(target, endpoint, stale)
    run = subprocess.run(mirror_cmd(root, target, endpoint), cwd=REPO, env=env(), capture_output=True,
                         text=True, timeout=120)
    report = json.loads(run.stdout)
    assert run.returncode == 0, run.stderr
    assert report["lock_taken_over"]["run_id"] == "dead-run" and report["mirrored"] == 2


def test_an_expired_lease_of_another_host_is_taken_over_but_a_live_one_is_not(tmp_path, where):
    target, endpoint = where
    root = tmp_path / "bags"
    make_bags(root, 1)
    live = {"host": "elsewhere.example", "pid": 1, "run_id": "remote-run", "expires": "2999-01-01T00:00:00Z"}
    write_lock(target, endpoint, live)
    refused = subprocess.run(mirror_cmd(root, target, endpoint), cwd=REPO, env=env(), capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 3 and "elsewhere.example" in json.loads(refused.stdout)["error"]
    write_lock(target, endpoint, {**live, "expires": "2001-01-01T00:00:00Z"})
    run = subprocess.run(mirror_cmd(root, target, endpoint), cwd=REPO, env=env(), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and json.loads(run.stdout)["lock_taken_over"]["run_id"] == "remote-run"


def write_lock(target: str, endpoint: str | None, owner: dict) -> None:
    body = json.dumps(owner).encode()
    if endpoint is None:
        path = Path(target) / LOCK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return
    from archiver.replication import make_client

    bucket, _, prefix = target[len("s3://"):].partition("/")
    make_client(endpoint).put_object(Bucket=bucket, Key=f"{prefix}/{LOCK_FILE}", Body=body)


def test_of_two_lock_attempts_in_one_process_only_one_wins(tmp_path, s3_server):
    first, second = DirectoryLock(tmp_path), DirectoryLock(tmp_path)
    first.acquire()
    with pytest.raises(MirrorLocked, match="another mirror"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()
    assert not (tmp_path / LOCK_FILE).exists()
    client, bucket = s3_server.client(), s3_server.new_bucket()
    one, two = S3Lock(client, bucket, "p"), S3Lock(client, bucket, "p")
    one.acquire()
    with pytest.raises(MirrorLocked):
        two.acquire()
    one.release()
    two.acquire()
    two.release()


def test_a_live_run_renews_its_lease_so_it_is_never_taken_for_stale(tmp_path, where):
    target, endpoint = where
    root = tmp_path / "bags"
    make_bags(root, 1)
    short = {**env(), "ARCHIVER_MIRROR_LEASE": "1.5"}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, target, endpoint or ""], cwd=REPO, env=short,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        time.sleep(4)  # well past the first lease: only renewals keep it
        refused = subprocess.run(mirror_cmd(root, target, endpoint), cwd=REPO, env=short,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 3, refused.stdout + refused.stderr
    finally:
        release(proc)


def test_a_run_never_removes_a_lock_that_is_no_longer_its_own(tmp_path, s3_server):
    client, bucket = s3_server.client(), s3_server.new_bucket()
    mine = S3Lock(client, bucket, "p", lease=60)
    mine.acquire()
    key = f"p/{LOCK_FILE}"
    client.put_object(Bucket=bucket, Key=key, Body=b'{"run_id": "someone-else"}')  # taken over meanwhile
    mine.release()
    assert json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())["run_id"] == "someone-else"
    theirs = DirectoryLock(tmp_path, lease=60)
    theirs.acquire()
    (tmp_path / LOCK_FILE).unlink()
    (tmp_path / LOCK_FILE).write_text('{"run_id": "someone-else"}')
    theirs.release()
    assert "someone-else" in (tmp_path / LOCK_FILE).read_text()


def test_a_run_whose_lock_was_taken_over_knows_it(tmp_path, s3_server):
    from archiver.errors import StorageError

    client, bucket = s3_server.client(), s3_server.new_bucket()
    for lock, steal in [(S3Lock(client, bucket, "p", lease=0.6),
                         lambda: client.put_object(Bucket=bucket, Key=f"p/{LOCK_FILE}", Body=b"{}")),
                        (DirectoryLock(tmp_path, lease=0.6),
                         lambda: (tmp_path / LOCK_FILE).unlink())]:
        lock.acquire()
        lock.ensure_held()
        steal()
        time.sleep(0.8)  # past one renewal (every lease / 3)
        with pytest.raises(StorageError, match="was lost"):
            lock.ensure_held()
        lock.release()
