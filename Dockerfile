# invrecon worker and launcher image (docs/runners.md).
#
#   docker build -t REGISTRY/invrecon/worker:0.2.0 .
#
# Worker: Beam's SDK harness boot program is the entrypoint, so the image serves as
#   Dataflow:      --sdk_container_image REGISTRY/invrecon/worker:0.2.0
#   Flink / Spark: --environment_type DOCKER --environment_config REGISTRY/invrecon/worker:0.2.0
#                  (or started with `--worker_pool` as a sidecar: --environment_type EXTERNAL)
# Launcher: docker run --rm --entrypoint invrecon REGISTRY/invrecon/worker:0.2.0 batch --config ...
#
# Everything is pinned: the Python and Beam versions must be the launcher's (tests/test_packaging.py
# checks them against requirements.lock and pyproject.toml), the dependencies are requirements.lock,
# and invrecon itself is the wheel built from this checkout. Not built on the development machines
# (they have no Docker engine): build it in CI / Cloud Build.

ARG BEAM_VERSION=2.77.0

# Beam's SDK harness boot program and its files, taken from the official SDK image of the same
# Beam and Python versions (Beam's custom-container recipe for a non-Beam base image).
FROM apache/beam_python3.11_sdk:${BEAM_VERSION} AS beam_sdk

# The invrecon wheel, built from the checkout with the build backend pinned in pyproject.toml.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir --disable-pip-version-check build==1.6.1 \
 && python -m build --wheel --outdir /dist .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1
COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.lock
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps /tmp/dist/invrecon-*.whl \
 && pip check \
 && rm -rf /tmp/dist /tmp/requirements.lock \
 && invrecon --help >/dev/null
WORKDIR /work
ENTRYPOINT ["/opt/apache/beam/boot"]
