"""The streaming stock-event pipeline: `invrecon stream --config CFG --events SOURCE`.

Reads stock events (DESIGN.md §5) from Pub/Sub, Kafka or a replay of JSON Lines files, stamps
them with `occurred_at`, canonicalizes them with the batch's kernels, de-duplicates them by
event_id in state, quarantines those later than the allowed lateness, keeps a running position
per (sku, location) seeded from the latest published `inventory_snapshot` under `<output>` (the
launcher finds its Parquet files in the commit log, the graph reads them: `transforms.seeds`),
and writes, as Parquet under `<output>/stream/`:

    movements/event_date=D/         the canonical event archive (the batch's MOVEMENT schema)
    position_changes/window_date=D/ one row per (window, sku, location) pane
    availability/event_date=D/      availability figures published on the bus (POSITION schema)
    quarantine/event_date=D/        every rejected payload, raw text and reason code
    alerts/snapshot_date=D/         divergence and availability-above-ATP alerts (ALERTS schema)

Sources (`--events`):
    file://GLOB                                 bounded replay, runs locally (FnApiRunner)
    pubsub://projects/P/subscriptions/S         (or .../topics/T) ReadFromPubSub, streaming
    kafka://HOST:PORT/TOPIC                     ReadFromKafka; needs --expansion_service

Locally:

    invrecon stream --config fixtures/world/config.yaml \\
        --events 'file://fixtures/world/inputs/events/2026-11-30/*.jsonl' --output /tmp/x

The optional `streaming:` config section (validated with the rest of the config by
`invrecon.schemas.config.Streaming`; an unknown key or a bad value is a ConfigError, exit 2):

    streaming:
      window_minutes: 15            # fixed windows of position changes
      allowed_lateness_minutes: 60  # later events -> quarantine `late_event`
      early_firing_seconds: 30      # speculative panes while a window is open
      dedup_ttl_hours: 48           # how long an event_id is remembered
      alert_systems: [store, commerce]
      min_alert_abs: 0              # floor (units) under the top-level `tolerances` for alerts
      gate_shards: 16               # hash buckets of the keyed steps (parallelism, batch size)
      events: pubsub://...          # default --events
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import socket
import sys
import time
from typing import Any

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from invrecon.pipelines.batch_plan import cutoff_for
from invrecon.pipelines.beam_args import UsageError, check_beam_args
from invrecon.pipelines.cli import BEAM_EPILOG, HelpFormatter, fail
from invrecon.pipelines.config import Config, ConfigError, load_config
from invrecon.pipelines.progress import Progress
from invrecon.pipelines.publish import Layout, latest_commits, live_files
from invrecon.schemas.tables import STREAM_TABLES
from invrecon.transforms.canonical import CrosswalkError, load_crosswalks, load_items
from invrecon.transforms.readers.common import SourceSpec
from invrecon.transforms.reconcile.classify import Tolerance
from invrecon.transforms.seeds import ReadSeeds
from invrecon.transforms.stream import (
    ALERTS_TAG,
    AVAILABILITY_TAG,
    MOVEMENTS_TAG,
    QUARANTINE_TAG,
    CrosswalkFiles,
    RawChunk,
    RawEvent,
    RunningPosition,
    StockEvents,
    StreamParams,
    WindowPositionChanges,
    WriteParquetFiles,
    as_position_table,
    read_event_chunks,
)
from invrecon.transforms.textfiles import iter_line_chunks

__all__ = ["SeedSnapshot", "StreamJob", "build", "latest_snapshot", "local_runner", "main", "plan_job", "streaming_params"]

PROG = "invrecon stream"  # how its one-line errors start

log = logging.getLogger("invrecon.stream")

# streaming: keys that StreamParams takes as they are (the schema has validated them).
_PARAM_KEYS = ("window_minutes", "allowed_lateness_minutes", "early_firing_seconds", "dedup_ttl_hours", "min_alert_abs", "gate_shards")
# Seconds to wait for a Kafka expansion service to accept a connection before giving up.
EXPANSION_CONNECT_TIMEOUT = 3.0


@dataclasses.dataclass(frozen=True)
class SeedSnapshot:
    """The published inventory_snapshot the positions start from: what the graph's `ReadSeeds` reads.

    Args:
      snapshot_date: the snapshot's date.
      files: fsspec URLs of its Parquet files.
      rows: positions in those files (from their footers).
      as_of_micros: the date's cut-off (µs, UTC): every seed is as of it.
    """

    snapshot_date: dt.date
    files: tuple[str, ...]
    rows: int
    as_of_micros: int


@dataclasses.dataclass(frozen=True)
class StreamJob:
    """Everything the graph needs, resolved once in `plan_job`."""

    params: StreamParams
    spec: SourceSpec
    sku_crosswalk: str
    location_crosswalk: str
    items: str
    events: str  # the --events URL
    files: tuple[str, ...]  # file replay only
    output: str  # <output>/stream
    seed: SeedSnapshot | None = None  # None: positions start at 0
    expansion_service: str | None = None

    @property
    def bounded(self) -> bool:
        return self.events.startswith("file://")


def streaming_params(cfg: Config, *, run_id: str = "") -> StreamParams:
    """The `streaming:` section of the config (validated by `load_config`) as StreamParams.

    Raises:
      ConfigError: naming the file and the key path, for what only the settings together can
        tell (`streaming.dedup_ttl_hours` must cover a window and its lateness).
    """
    section = cfg.streaming
    kw: dict[str, Any] = {k: getattr(section, k) for k in _PARAM_KEYS if getattr(section, k) is not None}
    systems = section.alert_systems if section.alert_systems is not None else ["store", "commerce"]
    # The nightly's tolerance rules (validated by load_config) judge the stream's alerts too.
    tolerances = tuple(Tolerance(match=tuple(sorted(t.match.items())), abs=t.abs, pct=t.pct) for t in cfg.tolerances)
    try:
        return StreamParams(
            **kw, record_system=cfg.record_system, timezone=cfg.timezone, alert_systems=tuple(systems),
            tolerances=tolerances, run_id=run_id,
            source=next((s.name for s in cfg.sources if s.kind == "events"), "stock_events"),
        )
    except ValueError as e:
        raise ConfigError(f"{cfg.uri}: {str(e).replace('`', '`streaming.', 1)}") from None


def _expand_files(events: str) -> list[str]:
    pattern = events[len("file://"):]
    fs, _, _ = fsspec.get_fs_token_paths(pattern)
    paths = sorted(fs.glob(pattern)) if any(c in pattern for c in "*?[") else ([pattern] if fs.exists(pattern) else [])
    return [p for p in paths if not fs.isdir(p)]


def latest_snapshot(output: str, timezone: str) -> SeedSnapshot | None:
    """The latest published inventory_snapshot under `output`, found through the commit log.

    Metadata only, on any fsspec filesystem: the commit files and the footers of one date's
    snapshot files; the rows are read by the graph (`transforms.seeds.ReadSeeds`). A snapshot's
    on_hand is the record system's figure rolled to that date's cut-off, so each seed is as of the
    cut-off: the stream ignores (for the position) events at or before it. A date whose files
    hold no rows is passed over for the one before it.

    Returns:
      None when nothing was ever published there (the positions start at 0).

    Raises:
      RuntimeError: a published snapshot file cannot be read (naming it).
    """
    layout = Layout(output)
    by_date: dict[dt.date, list[str]] = {}
    for (table, partition, _), files in live_files(latest_commits(output)).items():
        if table == "inventory_snapshot":
            by_date.setdefault(dt.date.fromisoformat(partition.split("=", 1)[1]), []).extend(files)
    fs = layout.fs
    for day in sorted(by_date, reverse=True):
        paths = [f"{layout.root}/{rel}" for rel in sorted(by_date[day])]
        urls = tuple(fs.unstrip_protocol(path) for path in paths)
        rows = 0
        for path, url in zip(paths, urls):
            try:
                with fs.open(path, "rb") as f:
                    rows += pq.read_metadata(f).num_rows
            except (OSError, pa.ArrowException) as e:
                raise RuntimeError(f"{url}: cannot read this published inventory_snapshot file to seed positions: {e}") from None
        if rows:
            as_of = int(cutoff_for(day, timezone).timestamp() * 1_000_000)
            return SeedSnapshot(snapshot_date=day, files=urls, rows=rows, as_of_micros=as_of)
    return None


def _check_kafka(events: str, expansion_service: str | None) -> None:
    rest = events[len("kafka://"):]
    if "/" not in rest or not rest.split("/", 1)[1]:
        raise UsageError(f"--events {events!r}: expected kafka://HOST:PORT/TOPIC")
    if not expansion_service:
        raise UsageError(
            "--events kafka://... uses Beam's cross-language ReadFromKafka, which needs Beam's Java "
            "expansion service at pipeline construction and cannot download it here: pass "
            "--expansion_service HOST:PORT (a running expansion service) or --expansion_service "
            "/path/to/beam-sdks-java-io-expansion-service-<version>.jar"
        )
    if expansion_service.endswith(".jar"):
        if not os.path.isfile(expansion_service):
            raise UsageError(f"--expansion_service {expansion_service}: no such jar file")
        return
    host, _, port = expansion_service.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--expansion_service {expansion_service!r}: expected HOST:PORT or a path to a .jar")
    try:
        socket.create_connection((host, int(port)), timeout=EXPANSION_CONNECT_TIMEOUT).close()
    except OSError as e:
        raise UsageError(f"--expansion_service {expansion_service}: no expansion service reachable there ({e})") from None


def plan_job(cfg: Config, *, events: str, output: str, expansion_service: str | None = None, seed: bool = True) -> StreamJob:
    """Resolve the stream: source, files (replay), run id, seeds, parameters.

    Raises:
      UsageError: a bad --events / --expansion_service (exit 2).
      ConfigError: a bad `streaming:` section (exit 2).
    """
    files: list[str] = []
    if events.startswith("file://"):
        files = _expand_files(events)
        if not files:
            raise UsageError(f"--events {events}: no files match")
        digest = hashlib.sha256(cfg.sha256.encode())
        for f in files:
            digest.update(f"{f}\0{os.path.getsize(f) if os.path.exists(f) else 0}\n".encode())
        run_id = f"stream-{digest.hexdigest()[:12]}"
    elif events.startswith("pubsub://"):
        from apache_beam.io.gcp.pubsub import parse_subscription, parse_topic

        path = events[len("pubsub://"):]
        try:
            (parse_topic if "/topics/" in path else parse_subscription)(path)
        except ValueError as e:
            raise UsageError(f"--events {events!r}: {e}; expected pubsub://projects/P/subscriptions/S or pubsub://projects/P/topics/T") from None
        run_id = f"stream-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    elif events.startswith("kafka://"):
        _check_kafka(events, expansion_service)
        run_id = f"stream-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    else:
        raise UsageError(f"--events {events!r}: expected file://GLOB, pubsub://projects/P/subscriptions/S or kafka://HOST:PORT/TOPIC")
    params = streaming_params(cfg, run_id=run_id)
    snapshot = latest_snapshot(output, cfg.timezone) if seed else None
    if snapshot is not None:
        log.info("seeds: inventory_snapshot %s under %s, %d positions in %d files, as of its cut-off (read in the graph)",
                 snapshot.snapshot_date, output, snapshot.rows, len(snapshot.files))
    elif seed:
        log.warning("no published inventory_snapshot under %s: positions start at 0", output)
    else:
        log.info("--no-seed: positions start at 0")
    spec = SourceSpec(name=params.source, kind="events", system=None, timezone=cfg.timezone)
    return StreamJob(
        params=params, spec=spec, sku_crosswalk=cfg.sku_crosswalk, location_crosswalk=cfg.location_crosswalk,
        items=cfg.items, events=events, files=tuple(files), output=f"{output}/stream", seed=snapshot,
        expansion_service=expansion_service,
    )


def _pubsub_event(msg, *, events: str) -> RawEvent:
    data = msg.data if hasattr(msg, "data") else msg
    text = data.decode("utf-8", errors="replace").strip()
    mid = getattr(msg, "message_id", None)
    return RawEvent(text, events, f"message {mid}" if mid else "message", None)


def _kafka_event(kv, *, events: str) -> RawEvent:
    key, value = kv
    text = (value or b"").decode("utf-8", errors="replace").strip()
    return RawEvent(text, events, f"key {key.decode('utf-8', errors='replace')}" if key else "record", None)


def read_source(p: beam.Pipeline, job: StreamJob):
    """The RawEvent PCollection of the job's --events source."""
    if job.bounded:
        tz = job.params.timezone
        return (
            p
            | "ListEventFiles" >> beam.Create(list(enumerate(job.files)))
            | "ReadEventChunks" >> beam.FlatMapTuple(lambda i, uri: read_event_chunks(uri, timezone=tz, file_index=i)).with_output_types(RawChunk)
        )
    if job.events.startswith("pubsub://"):
        from apache_beam.io.gcp.pubsub import ReadFromPubSub

        path = job.events[len("pubsub://"):]
        kind = "subscription" if "/subscriptions/" in path else "topic"
        return (
            p
            | "ReadPubSub" >> ReadFromPubSub(**{kind: path}, with_attributes=True)
            | "PubSubToRaw" >> beam.Map(_pubsub_event, events=job.events)
        )
    from apache_beam.io.kafka import ReadFromKafka

    servers, topic = job.events[len("kafka://"):].split("/", 1)
    service = job.expansion_service
    if service and service.endswith(".jar"):
        from apache_beam.transforms.external import JavaJarExpansionService

        service = JavaJarExpansionService(service)
    return (
        p
        | "ReadKafka" >> ReadFromKafka(consumer_config={"bootstrap.servers": servers}, topics=[topic], expansion_service=service)
        | "KafkaToRaw" >> beam.Map(_kafka_event, events=job.events)
    )


def build(p: beam.Pipeline, job: StreamJob, *, raw=None) -> dict:
    """Build the stream graph on `p`; `raw` replaces the source (tests pass a TestStream).

    Returns the main PCollections (movements, quarantine, updates, position_changes, alerts).
    """
    raw = read_source(p, job) if raw is None else raw
    crosswalks = CrosswalkFiles(sku=job.sku_crosswalk, location=job.location_crosswalk)
    events = raw | "StockEvents" >> StockEvents(params=job.params, spec=job.spec, crosswalks=crosswalks, bounded=job.bounded)
    seed = job.seed
    seeds = p | "ReadSeeds" >> ReadSeeds(files=seed.files if seed else (), as_of_micros=seed.as_of_micros if seed else 0)
    positions = {"seeds": seeds, MOVEMENTS_TAG: events[MOVEMENTS_TAG], AVAILABILITY_TAG: events[AVAILABILITY_TAG]} | "RunningPosition" >> RunningPosition(
        params=job.params, items=job.items, crosswalks=crosswalks, bounded=job.bounded
    )
    changes = positions["updates"] | "WindowPositionChanges" >> WindowPositionChanges(params=job.params, early_panes=not job.bounded)
    prefix = job.params.run_id
    outputs = {
        "movements": events[MOVEMENTS_TAG],
        "quarantine": events[QUARANTINE_TAG],
        "alerts": positions[ALERTS_TAG],
        "position_changes": changes,
        "availability": events[AVAILABILITY_TAG] | "FiguresAsPositions" >> beam.Map(as_position_table).with_output_types(pa.Table),
    }
    for name, pcoll in outputs.items():
        schema, partition = STREAM_TABLES[name]
        label = "".join(w.title() for w in name.split("_"))
        pcoll | f"Write{label}" >> WriteParquetFiles(root=job.output, table=name, schema=schema, partition=partition, prefix=prefix)
    outputs["updates"] = positions["updates"]
    return outputs


def local_runner():
    """The in-process FnApiRunner for a bounded replay, without its state cache.

    That cache weighs every state write with objsize, which walks all module globals: about
    1 ms a write with the gcp extra loaded, 10x the replay's own work per event. The runner's
    state lives in this process anyway, so reads stay cheap without it.
    """
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner, worker_handlers

    worker_handlers.STATE_CACHE_SIZE_MB = 0
    return FnApiRunner()


def _clear_previous(job: StreamJob) -> None:
    """A replay re-run replaces its own files (same run id), nothing else."""
    fs, _, _ = fsspec.get_fs_token_paths(job.output)
    for table in STREAM_TABLES:
        for path in fs.glob(f"{job.output}/{table}/*/{job.params.run_id}-*.parquet"):
            fs.rm(path)


def replay_counts(job: StreamJob) -> dict[str, int]:
    """read (non-blank lines) and what the replay wrote, for the conservation check."""
    import duckdb

    read = 0
    for uri in job.files:
        with fsspec.open(uri, "rb") as f:
            read += sum(len(numbers) for numbers, _ in iter_line_chunks(f))
    con = duckdb.connect()
    counts = {"read": read}
    for table in STREAM_TABLES:
        pattern = f"{job.output}/{table}/*/{job.params.run_id}-*.parquet"
        fs, _, _ = fsspec.get_fs_token_paths(pattern)
        counts[table] = con.execute(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchone()[0] if fs.glob(pattern) else 0
    con.close()
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="invrecon stream", description="Run the streaming stock-event pipeline.",
                                     formatter_class=HelpFormatter, epilog=BEAM_EPILOG)
    parser.add_argument("--config", required=True, help="config YAML (fsspec URL)")
    parser.add_argument("--events", help="file://GLOB, pubsub://projects/P/subscriptions/S or kafka://HOST:PORT/TOPIC; default the config's `streaming.events`")
    parser.add_argument("--output", help="override the config's output folder")
    parser.add_argument("--expansion_service", "--expansion-service", dest="expansion_service",
                        help="Kafka only: HOST:PORT of a running Beam Java expansion service, or a local jar")
    parser.add_argument("--no-seed", action="store_true", help="start positions at 0 instead of the latest published inventory_snapshot")
    parser.add_argument("--fail-on-alert", action="store_true", help="exit 5 when an alert fired (replay)")
    parser.add_argument("--quiet", action="store_true", help="no summary on stdout")
    return parser


def _parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """invrecon's flags, and the rest once they are all Beam pipeline options (else UsageError)."""
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    return args, check_beam_args(rest, prog=parser.prog, own=parser)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code of DESIGN.md §3."""
    try:
        args, beam_args = _parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        load_crosswalks(cfg.sku_crosswalk, cfg.location_crosswalk)  # fail fast, exit 2
        load_items(cfg.items)
        events = args.events or cfg.streaming.events
        if not events:
            raise UsageError("--events is required (or set `streaming.events` in the config)")
        output = (args.output or cfg.output).rstrip("/")
        job = plan_job(cfg, events=events, output=output, expansion_service=args.expansion_service, seed=not args.no_seed)
    except (ConfigError, CrosswalkError) as e:
        return fail(PROG, f"config error: {e}")
    except UsageError as e:
        return fail(PROG, e)
    except RuntimeError as e:
        return fail(PROG, e, 1)
    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner
    if not job.bounded:
        options.view_as(StandardOptions).streaming = True
    if runner is None and job.bounded:
        runner = local_runner()
    seed = job.seed
    log.info("stream %s: %s, seeds %d (snapshot %s), window %g min, lateness %g min", job.params.run_id, job.events,
             seed.rows if seed else 0, seed.snapshot_date if seed else None, job.params.window_minutes, job.params.allowed_lateness_minutes)
    if job.bounded:
        _clear_previous(job)
        return _replay(job, runner, options, args)
    try:
        with beam.Pipeline(runner=runner, options=options) as p:
            build(p, job)
    except Exception as e:  # noqa: BLE001 - construction problems of remote sources are usage errors
        if "expansion" in str(e).lower() or "java" in str(e).lower():
            return fail(PROG, f"--expansion_service {job.expansion_service}: {e}")
        raise
    return 0


def _replay(job: StreamJob, runner, options: PipelineOptions, args: argparse.Namespace) -> int:
    """Replay the job's event files to the end, with a live progress line on a terminal; the exit code."""
    seed = job.seed
    t0 = time.monotonic()
    with Progress(label="invrecon stream", total_files=len(job.files)) as progress:
        progress.run_id = job.params.run_id
        progress.begin("replay")
        with beam.Pipeline(runner=runner, options=options) as p:
            build(p, job)
        counts = replay_counts(job)
        progress.end(files_read=len(job.files), events_read=counts["read"], panes=counts["position_changes"], alerts=counts["alerts"])
    written = counts["movements"] + counts["availability"]
    conserved = counts["read"] == written + counts["quarantine"]
    if not args.quiet:
        print(f"invrecon stream {job.events}  run {job.params.run_id}  {'OK' if conserved else 'CONSERVATION VIOLATED'}  ({time.monotonic() - t0:.1f} s)")
        print(f"  seeded from inventory_snapshot {seed.snapshot_date if seed else '(none: positions start at 0)'}: {seed.rows if seed else 0} positions")
        print(f"  read {counts['read']} = movements {counts['movements']} + availability {counts['availability']} + quarantined {counts['quarantine']}")
        print(f"  position change panes {counts['position_changes']}, alerts {counts['alerts']}")
        print(f"  outputs: {job.output}/<table>/  (Parquet)")
    if not conserved:
        log.error("conservation violated: %s", counts)
        return 1
    if args.fail_on_alert and counts["alerts"]:
        return 5
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
