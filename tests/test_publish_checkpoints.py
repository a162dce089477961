"""The commit log's checkpoints: what `latest_commits` reads equals the whole log, at any point.

`publish` writes a checkpoint (the latest rows of every table, partition and owner) beside each
commit, so the launcher reads one checkpoint and the commits after it, not every commit ever
made. These tests publish small staged files date after date and compare `live_files` from the
checkpointed reader with `live_files` from the whole log, also when a checkpoint is missing or
cut short.
"""

from __future__ import annotations

import datetime as dt
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

from invrecon.pipelines import publish

D0 = dt.date(2026, 11, 1)


def _publish_day(out: pathlib.Path, run_date: dt.date, *, event_dates: list[dt.date]) -> None:
    """Stage one runs file and one movements file per event date, then publish them."""
    attempt = publish.new_attempt()
    staging = pathlib.Path(publish.Layout(str(out)).staging(run_date, attempt))
    (staging / "runs").mkdir(parents=True)
    pq.write_table(pa.table({"run_date": [run_date]}), staging / "runs" / "part-0.parquet")
    (staging / "movements").mkdir()
    for d in event_dates:
        pq.write_table(pa.table({"event_date": [d]}), staging / "movements" / f"event_date={d}--part-0.parquet")
    publish.publish(output=str(out), staging=str(staging), tables=("runs", "movements"), run_id=f"{run_date}-x",
                    run_date=run_date, attempt=attempt)


def _same_as_the_log(out: pathlib.Path) -> dict:
    live = publish.live_files(publish.latest_commits(str(out)))
    assert live == publish.live_files(publish.read_commits(str(out)))
    return live


def test_the_checkpointed_reader_sees_what_the_whole_log_says_run_after_run(tmp_path):
    out = tmp_path / "out"
    for k in range(6):
        d = D0 + dt.timedelta(days=k)
        _publish_day(out, d, event_dates=[d, d - dt.timedelta(days=1)])
        _same_as_the_log(out)
    # A re-run of an earlier date that no longer has a late event: its old movements file is
    # tombstoned by the commit, and the checkpoint must carry the tombstone.
    _publish_day(out, D0 + dt.timedelta(days=2), event_dates=[D0 + dt.timedelta(days=2)])
    live = _same_as_the_log(out)
    assert ("movements", f"event_date={D0 + dt.timedelta(days=1)}", D0 + dt.timedelta(days=2)) not in live
    checkpoints = sorted(p.name for p in (out / "_commits" / "_checkpoints").iterdir())
    assert checkpoints == ["000000000006.parquet", "000000000007.parquet"]  # the two newest are kept
    assert len(list((out / "_commits").glob("*.parquet"))) == 7  # the whole log stays, for audit and the views


def test_a_missing_or_cut_short_checkpoint_falls_back_to_the_commits(tmp_path):
    out = tmp_path / "out"
    for k in range(4):
        _publish_day(out, D0 + dt.timedelta(days=k), event_dates=[D0 + dt.timedelta(days=k)])
    folder = out / "_commits" / "_checkpoints"
    newest = folder / "000000000004.parquet"
    newest.write_bytes(newest.read_bytes()[:20])  # cut short: the previous checkpoint and commit 4 answer
    _same_as_the_log(out)
    for p in folder.iterdir():
        p.unlink()  # none at all (an output written before checkpoints existed): the whole log answers
    _same_as_the_log(out)
    _publish_day(out, D0 + dt.timedelta(days=4), event_dates=[D0 + dt.timedelta(days=4)])
    _same_as_the_log(out)
    assert [p.name for p in folder.iterdir()] == ["000000000005.parquet"]
