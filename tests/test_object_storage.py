"""`invrecon batch` on object storage, for real (issue 10 §3), and on `file://` and `memory://`.

A local S3: moto's server in its own process, on 127.0.0.1, talked to over HTTP by s3fs (and by
DuckDB through s3fs). The committed world is uploaded to a bucket and the batch reads its config,
crosswalks, items and inputs from there and publishes there; every published table, read back
through the commit log, must hold the rows of the same world run to a local folder
(`committed_run`). Nothing in the product is stubbed: credentials are dummies that only moto
sees, and `AWS_ENDPOINT_URL` (botocore's own setting) points s3fs at it. The S3 tests skip when
moto or s3fs is not installed (`pip install -e .[test,s3]`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import fsspec
import pytest

from invrecon.pipelines import sql
from invrecon.pipelines.publish import live_files, read_commits
from invrecon.pipelines.warehouse import connect
from tests.conftest import RUN_DATE, WORLD, published_rows, run_batch, warehouse

BUCKET = "invrecon-test"
S3_WORLD = f"s3://{BUCKET}/world"
S3_OUT = f"s3://{BUCKET}/out"


@dataclasses.dataclass(frozen=True)
class LocalS3:
    endpoint: str
    env: dict[str, str]  # what a process needs to reach it (set in this one while the module runs)
    fs: object  # s3fs.S3FileSystem


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(endpoint: str, proc: subprocess.Popen, log: pathlib.Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(endpoint, timeout=2).close()
            return
        except urllib.error.HTTPError:  # it answered
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"moto server not answering on {endpoint} after {timeout_s} s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> LocalS3:
    """moto's S3 server on a free port of 127.0.0.1, a bucket, and the committed world in it."""
    pytest.importorskip("moto.server", reason="moto[s3], flask and flask-cors are needed for the local S3 server")
    s3fs = pytest.importorskip("s3fs", reason="s3fs is the S3 backend of fsspec")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        # Never a profile, a credentials file or a proxy of this machine: only 127.0.0.1.
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
    }
    try:
        _wait_until_up(endpoint, proc, log)
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                mp.delenv(k, raising=False)
            s3fs.S3FileSystem.clear_instance_cache()  # an instance made before would keep its endpoint
            fs = s3fs.S3FileSystem()
            fs.mkdir(BUCKET)
            for path in sorted(WORLD.rglob("*")):
                rel = path.relative_to(WORLD)
                if path.is_file() and rel.parts[0] != "out":
                    fs.put_file(str(path), f"{BUCKET}/world/{rel.as_posix()}")
            yield LocalS3(endpoint=endpoint, env=env, fs=fs)
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def s3_run(s3, tmp_path_factory) -> tuple[int, pathlib.Path]:
    """The batch run in-process from the bucket's world into the bucket; (exit code, local warehouse)."""
    db = tmp_path_factory.mktemp("s3-warehouse") / "local.duckdb"
    return run_batch(f"{S3_WORLD}/config.yaml", output=S3_OUT, extra=["--warehouse", str(db)]), db


def test_batch_to_s3_publishes_the_rows_of_the_local_run(s3, s3_run, committed_run):
    code, db = s3_run
    assert code == 0
    local = published_rows(committed_run)
    assert len(local["discrepancies"]) == 22 and all(local[t] for t in ("inventory_snapshot", "movements", "quarantine", "runs"))
    remote = published_rows(S3_OUT, world=S3_WORLD)
    for table in local:
        assert remote[table] == local[table], table
    # Same config bytes and input files (by name and checksum): the same run id, wherever they live.
    assert remote["runs"][0]["run_id"] == local["runs"][0]["run_id"]
    # Everything is in the bucket (the data files the commit names, the commit log) and no
    # staging is left; only the warehouse file is local.
    assert s3.fs.find(f"{BUCKET}/out/_staging") == []
    files = [f for f in read_commits(S3_OUT).column("file").to_pylist() if f]
    assert files and all(s3.fs.exists(f"{BUCKET}/out/{f}") for f in files)
    assert not (pathlib.Path.cwd() / "s3:").exists()
    # The local warehouse file answers from the Parquet in the bucket.
    con = connect(str(db))
    try:
        assert con.execute("SELECT count(*) FROM discrepancies").fetchall() == [(22,)]
        assert con.execute("SELECT count(DISTINCT run_id) FROM runs").fetchall() == [(1,)]
    finally:
        con.close()


def test_cli_reruns_into_s3_and_a_new_process_queries_the_warehouse(s3, s3_run, committed_run, tmp_path):
    """The installed CLI in its own process, re-running the date into the same bucket output."""
    _, db = s3_run
    cli = [sys.executable, "-m", "invrecon.pipelines.cli"]
    env = {**os.environ, **s3.env}
    run = subprocess.run(
        [*cli, "batch", "--config", f"{S3_WORLD}/config.yaml", "--run-date", RUN_DATE, "--output", S3_OUT,
         "--warehouse", str(db), "--buckets", "4", "--quiet"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    # The re-run replaced the date's partitions: the same rows, not twice as many.
    remote = published_rows(S3_OUT, world=S3_WORLD)
    local = published_rows(committed_run)
    for table in local:
        assert remote[table] == local[table], table
    assert sorted(set(read_commits(S3_OUT).column("seq").to_pylist())) == [1, 2]
    # The first run's data files, which no commit names any more, were deleted from the bucket.
    live = {f for files in live_files(read_commits(S3_OUT)).values() for f in files}
    stored = {p.removeprefix(f"{BUCKET}/out/") for p in s3.fs.find(f"{BUCKET}/out") if p.endswith(".parquet")}
    # Beside the live files: the commit log, and one empty file per table schema (`_schemas/`, read by the views).
    assert {p for p in stored if not p.startswith(("_commits/", "_schemas/"))} == live
    query = subprocess.run([*cli, "sql", "--warehouse", str(db), "--csv", "SELECT count(*) AS n FROM discrepancies"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert query.returncode == 0, query.stderr[-4000:]
    assert query.stdout.splitlines() == ["n", str(len(local["discrepancies"]))]
    # An analyst without the batch's file: a new local warehouse over the bucket's output.
    fresh = tmp_path / "analyst.duckdb"
    query = subprocess.run([*cli, "sql", "--warehouse", str(fresh), "--output", S3_OUT, "--csv",
                            "SELECT count(*) AS n, count(DISTINCT run_id) AS runs FROM discrepancies"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert query.returncode == 0, query.stderr[-4000:]
    assert query.stdout.splitlines() == ["n,runs", f"{len(local['discrepancies'])},1"]


def test_batch_to_a_file_url(committed_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_batch(WORLD / "config.yaml", output=f"file://{out}") == 0
    assert published_rows(f"file://{out}") == published_rows(committed_run)
    assert not (out / "_staging").exists() or not any((out / "_staging").iterdir())
    con = warehouse(out)  # the default warehouse of a file:// output is <folder>/warehouse.duckdb
    try:
        assert con.execute("SELECT count(*) FROM discrepancies").fetchall() == [(22,)]
    finally:
        con.close()
    # `invrecon sql --output`: a warehouse of one's own over a published output.
    capsys.readouterr()
    assert sql.main(["--warehouse", str(tmp_path / "mine.duckdb"), "--output", f"file://{out}", "--csv", "SELECT count(*) AS n FROM discrepancies"]) == 0
    assert capsys.readouterr().out.splitlines() == ["n", "22"]


def test_sql_output_needs_a_warehouse_and_a_published_folder(tmp_path, capsys):
    assert sql.main(["--config", str(WORLD / "config.yaml"), "--output", str(tmp_path), "SELECT 1"]) == 2
    assert "--output needs --warehouse" in capsys.readouterr().err
    assert sql.main(["--warehouse", str(tmp_path / "w.duckdb"), "--output", str(tmp_path / "empty"), "SELECT 1"]) == 2
    assert "nothing published there" in capsys.readouterr().err
    assert not (tmp_path / "w.duckdb").exists()


def test_batch_to_memory_in_process(committed_run):
    root = f"invrecon-{uuid.uuid4().hex[:8]}"
    out = f"memory://{root}/out"
    fs = fsspec.filesystem("memory")
    try:
        assert run_batch(WORLD / "config.yaml", output=out) == 0
        assert published_rows(out) == published_rows(committed_run)
        assert fs.find(f"/{root}/out/_staging") == []
    finally:
        if fs.exists(f"/{root}"):
            fs.rm(f"/{root}", recursive=True)


def test_gs_urls_have_their_fsspec_backend_installed():
    """`gs://` (Dataflow's storage) is read and written through gcsfs, pinned in requirements.lock.

    No GCS server runs here: this checks the backend resolves and names paths as the commit log
    expects, without credentials or network (`token="anon"` makes no request).
    """
    import gcsfs

    assert fsspec.get_filesystem_class("gs") is gcsfs.GCSFileSystem
    fs, path = fsspec.core.url_to_fs("gs://retailer-recon/out", token="anon")
    assert isinstance(fs, gcsfs.GCSFileSystem) and path == "retailer-recon/out"
