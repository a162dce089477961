"""The Dataflow job of the stream and of the batch, made offline by Beam's own DataflowRunner.

Nothing is submitted, no credential is read, no socket is opened (the test forbids them). The
runner is run in template mode: with `--template_location FILE` Beam 2.77's DataflowRunner does
everything a submission does (Dataflow's transform overrides, Docker environments with the
worker image, combiner packing, staging of the pipeline and its artifacts, the v1beta3 Job
JSON) and then writes the Job to FILE instead of calling the service.

Why not the other switches: `--dry_run=True` returns before anything is staged or written, and
`--dataflow_job_file FILE` writes the same JSON but then submits it. Staging goes to a local folder
(`--staging_location DIR`); a local folder passes Beam's option validation only when the service
endpoint is not Google's, so `--dataflow_endpoint http://localhost:9` (Beam skips its gs://
checks for a localhost endpoint; nothing is ever sent there: template mode does not submit).
That endpoint only changes the worker pool's `kind` in the JSON ("local" instead of "harness").

Since Dataflow Runner v2 the Job JSON carries no `steps`: the graph travels as the runner-API
pipeline proto staged beside it (`pipeline.pb`), which the JSON names in
`environment.sdkPipelineOptions.options.pipelineUrl` with its sha256 in `pipelineProtoHash`. So
"the job file names every step" is checked through that link: the staged proto holds every
transform label of the graph as built.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pathlib
import socket
import tarfile

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2

from invrecon.pipelines import batch, batch_plan, stock_stream
from invrecon.pipelines.config import load_config
from tests.conftest import ROOT, RUN_DATE, WORLD

pytest.importorskip("apache_beam.runners.dataflow.internal.apiclient", reason="needs apache-beam[gcp]")

IMAGE = "us-central1-docker.pkg.dev/acme-retail/invrecon/worker:0.2.0"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach a host (DNS included) fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"the offline Dataflow job build tried to use the network: {args!r}")

    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            refuse(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, address: refuse(address))
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    # No ambient credentials either: the job is made with --no_auth.
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


def labels(proto: beam_runner_api_pb2.Pipeline) -> set[str]:
    """Every transform label of a runner-API graph (composites and leaves), without the root."""
    roots = set(proto.root_transform_ids)
    return {t.unique_name for tid, t in proto.components.transforms.items() if tid not in roots}


def no_ops(proto: beam_runner_api_pb2.Pipeline) -> set[str]:
    """Labels of transforms that do nothing: no sub-transforms and their input is their output,
    i.e. an identity composite such as `beam.Create`'s `MaybeReshuffle` of a single element.
    Dataflow's batch graph optimizer (pre_optimize: combiner packing, stage sorting) drops them,
    so they are the only labels a batch job may lack."""
    return {
        t.unique_name for t in proto.components.transforms.values()
        if not t.subtransforms and t.outputs and set(t.outputs.values()) <= set(t.inputs.values())
    }


def dataflow_job(tmp_path: pathlib.Path, build, *, streaming: bool, name: str, extra: tuple[str, ...] = ()):
    """Build a graph with `build(p)` on the DataflowRunner in template mode.

    Returns (the labels of the graph's steps, the Job JSON, the staged pipeline proto Dataflow would
    run). Identity composites (`no_ops`) are left out of the labels.
    """
    staging = tmp_path / "staging"
    staging.mkdir()
    job_file = tmp_path / "job.json"
    args = [
        "--runner=DataflowRunner",
        "--project=acme-retail",
        "--region=us-central1",
        f"--job_name={name}",
        f"--temp_location={tmp_path / 'temp'}",
        f"--staging_location={staging}",
        f"--template_location={job_file}",
        "--dataflow_endpoint=http://localhost:9",
        "--no_auth",
        f"--sdk_container_image={IMAGE}",
        "--sdk_location=container",
    ]
    if streaming:
        args.append("--streaming")
    args += extra
    p = beam.Pipeline(options=PipelineOptions(args))
    build(p)
    graph = p.to_runner_api()
    own = labels(graph) - no_ops(graph)
    p.run()  # template mode: stages and writes job_file, submits nothing
    job = json.loads(job_file.read_text())
    options = job["environment"]["sdkPipelineOptions"]["options"]
    staged = pathlib.Path(options["pipelineUrl"])
    assert staged == staging / "pipeline.pb", options["pipelineUrl"]
    blob = staged.read_bytes()
    assert options["pipelineProtoHash"] == hashlib.sha256(blob).hexdigest()
    return own, job, beam_runner_api_pb2.Pipeline.FromString(blob)


def check_job(own: set[str], job: dict, proto: beam_runner_api_pb2.Pipeline, *, streaming: bool, name: str) -> None:
    assert job["name"] == name
    assert job["type"] == ("JOB_TYPE_STREAMING" if streaming else "JOB_TYPE_BATCH")
    assert job["environment"]["sdkPipelineOptions"]["options"].get("streaming", False) is streaming
    pool = job["environment"]["workerPools"][0]
    assert pool["workerHarnessContainerImage"] == IMAGE
    assert {i["containerImage"] for i in pool["sdkHarnessContainerImages"]} == {IMAGE}
    # Every step of the graph is in the job Dataflow would run, under the same name (update-
    # compatible names: `--update` and `--transform_name_mapping` go by them).
    staged = labels(proto)
    missing = sorted(own - staged)
    assert not missing, f"steps of the graph not in the Dataflow job: {missing}"
    # Every step that runs Python code runs in the worker image.
    for env_id, env in proto.components.environments.items():
        assert env.urn == common_urns.environments.DOCKER.urn, env_id
        assert beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image == IMAGE
    assert all(t.environment_id in proto.components.environments for t in proto.components.transforms.values() if t.environment_id)


SEED_STEPS = {"ReadSeeds/ListSeedFiles", "ReadSeeds/SplitRowGroups", "ReadSeeds/SpreadRowGroups", "ReadSeeds/ReadRowGroups"}


@pytest.mark.parametrize("seeded", [False, True], ids=["no-seed", "seeded"])
def test_stream_dataflow_job_names_every_step(tmp_path, request, no_network, seeded):
    """With --no-seed, and seeded from a published output: the workers read the snapshot's files."""
    cfg = load_config(str(WORLD / "config.yaml"))
    output = request.getfixturevalue("committed_run") if seeded else tmp_path / "out"
    job = stock_stream.plan_job(cfg, events="pubsub://projects/acme-retail/subscriptions/stock-events", output=str(output), seed=seeded)
    assert (job.seed is not None) is seeded
    own, job_json, proto = dataflow_job(tmp_path, lambda p: stock_stream.build(p, job), streaming=True, name="invrecon-stream")
    check_job(own, job_json, proto, streaming=True, name="invrecon-stream")
    # Not a vacuous graph: the source, the seed reader, the keyed steps and the sinks are there.
    staged = labels(proto)
    assert any(label.endswith("ReadPubSub") for label in staged)
    assert {"StockEvents/GateLateness/GroupByExpiry", "RunningPosition/ApplyMovements", "WriteMovements/WriteBundles"} <= staged
    assert SEED_STEPS <= staged
    assert len(own) > 40


def test_batch_dataflow_job_names_every_step(tmp_path, no_network):
    cfg = load_config(str(WORLD / "config.yaml"))
    job, inputs = batch_plan.plan_job(cfg, dt.date.fromisoformat(RUN_DATE), output=str(tmp_path / "out"))
    assert inputs
    own, job_json, proto = dataflow_job(tmp_path, lambda p: batch.build(p, job), streaming=False, name="invrecon-batch")
    check_job(own, job_json, proto, streaming=False, name="invrecon-batch")
    # One graph from the files to the staged tables: validation, reconciliation and the settle step.
    staged = labels(proto)
    for step in ("Reconcile", "Validate", "SettleRun"):
        assert any(step in label for label in staged), step
    assert len(own) > 40


def test_setup_file_ships_the_code_the_suites_and_the_templates(tmp_path, no_network):
    """`--setup_file ./setup.py --requirements_file requirements.lock` (docs/runners.md): Beam
    builds the sdist on the launcher (`python -m build --sdist --no-isolation`, offline) and stages
    it as workflow.tar.gz, which every worker pip-installs; it must hold every module, the
    expectation suites and the report template."""
    cfg = load_config(str(WORLD / "config.yaml"))
    job = stock_stream.plan_job(cfg, events="pubsub://projects/acme-retail/subscriptions/stock-events", output=str(tmp_path / "out"), seed=False)
    extra = (f"--setup_file={ROOT / 'setup.py'}", f"--requirements_file={ROOT / 'requirements.lock'}", "--requirements_cache=skip")
    _, job_json, _ = dataflow_job(tmp_path, lambda p: stock_stream.build(p, job), streaming=True, name="invrecon-setup-file", extra=extra)
    packages = {p["name"] for p in job_json["environment"]["workerPools"][0]["packages"]}
    assert {"workflow.tar.gz", "requirements.txt"} <= packages
    assert (tmp_path / "staging" / "requirements.txt").read_text() == (ROOT / "requirements.lock").read_text()
    with tarfile.open(tmp_path / "staging" / "workflow.tar.gz") as tf:
        shipped = {name.split("/", 1)[1] for name in tf.getnames() if "/" in name}
    wanted = {"pyproject.toml", "setup.py", "expectations/position.json", "expectations/movement.json", "expectations/in_transit.json",
              "pipelines/templates/report.html.j2", "pipelines/stock_stream.py", "transforms/stream/__init__.py", "transforms/stream/position.py", "transforms/edi/x12.py"}
    assert wanted <= shipped
    assert not any(name.startswith("fixtures/world/") for name in shipped)
