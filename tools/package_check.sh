#!/usr/bin/env bash
# `make package-check`: the distribution a Dataflow / Flink / Spark worker (or a launcher host) would
# install works on its own (DESIGN.md §2 "Packaging", issue 10 item 7):
#   1. build the sdist and the wheel from this checkout (`python -m build --no-isolation`, with the
#      build venv's pinned setuptools and build);
#   2. check the wheel's contents (tools/wheel_contents.py: only `invrecon...` import names, every
#      module, the expectation suites and templates inside, no committed world data) and the sdist's;
#   3. make a fresh venv in a temporary folder outside the checkout, install requirements.lock
#      there (offline, from a wheelhouse cache: see below), then the wheel with --no-deps; `pip check`;
#   4. from a folder outside the checkout: `invrecon --help`, `invrecon batch` on the committed world
#      (exit 0, SUCCEEDED, as many discrepancies as its ground truth), `invrecon report` on it.
#
# Wheelhouse: pip does not keep the wheels it downloads here (the index answers uncacheable), so
# the pinned wheels are kept in $INVRECON_WHEELHOUSE (default ~/.cache/invrecon/wheelhouse) and
# installed with --no-index. The first run on a machine fills it from the package index (~1.5 min,
# 290 MB); later runs need no network. The temporary folder is on /dev/shm when that has room
# (PACKAGE_CHECK_TMP=DIR to choose), else $TMPDIR; set KEEP_WORK=1 to keep it.
#
# Environment: BUILD_PY (default .venv/bin/python, made by `make setup`), PYTHON (the interpreter
# of the fresh venv, default python3), RUN_DATE (default 2026-11-30).
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOUT=$(pwd -P)
BUILD_PY=${BUILD_PY:-$CHECKOUT/.venv/bin/python}
PYTHON=${PYTHON:-python3}
RUN_DATE=${RUN_DATE:-2026-11-30}
WORLD=$CHECKOUT/fixtures/world
WHEELHOUSE=${INVRECON_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/invrecon/wheelhouse}
# The fresh venv is ~1.2 GB of small files: on a tmpfs it installs in about half the time and is
# removed in a second (a disk took 60 s and 25 s here). PACKAGE_CHECK_TMP overrides the choice.
if [[ -z "${PACKAGE_CHECK_TMP:-}" && -d /dev/shm && -w /dev/shm ]] \
   && (( $(df -Pk /dev/shm | awk 'NR == 2 {print $4}') > 4 * 1024 * 1024 )); then
  PACKAGE_CHECK_TMP=/dev/shm
fi
WORK=$(mktemp -d "${PACKAGE_CHECK_TMP:-${TMPDIR:-/tmp}}/invrecon-package-check.XXXXXX")
T0=$SECONDS
passed=0

finish() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "package-check: kept $WORK for inspection" >&2
  elif [[ -z "${KEEP_WORK:-}" ]]; then
    rm -rf "$WORK"
  else
    echo "package-check: kept $WORK"
  fi
}
trap finish EXIT

step() { printf '[%3ds] %s\n' $((SECONDS - T0)) "$*"; }
ok() { passed=$((passed + 1)); printf '[%3ds]   ok: %s\n' $((SECONDS - T0)) "$*"; }
fail() {
  printf '[%3ds]   FAILED: %s\n' $((SECONDS - T0)) "$*" >&2
  echo "package-check: $passed passed, 1 failed"
  exit 1
}

[[ -x "$BUILD_PY" ]] || fail "$BUILD_PY not found: run \`make setup\` first"
touch "$WORK/started"

step "build sdist and wheel"
"$BUILD_PY" -m build --no-isolation --outdir "$WORK/dist" "$CHECKOUT" >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; fail "python -m build (log: $WORK/build.log)"; }
WHEEL=$(ls "$WORK"/dist/invrecon-*.whl)
SDIST=$(ls "$WORK"/dist/invrecon-*.tar.gz)
ok "built $(basename "$WHEEL") and $(basename "$SDIST")"

step "check the wheel's and the sdist's contents"
"$BUILD_PY" "$CHECKOUT/tools/wheel_contents.py" contents "$CHECKOUT" "$WHEEL" "$SDIST" >&2 \
  || fail "contents of the distribution (problems above)"
ok "only invrecon.* inside; every module, $(ls "$CHECKOUT"/expectations/*.json | wc -l) suites and the templates present; no world data"

step "fill the wheelhouse $WHEELHOUSE"
mkdir -p "$WHEELHOUSE"
mapfile -t missing < <("$BUILD_PY" "$CHECKOUT/tools/wheel_contents.py" missing-wheels "$CHECKOUT/requirements.lock" "$WHEELHOUSE")
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "         ${#missing[@]} pinned wheels not there yet: fetching them once from the package index"
  "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$WHEELHOUSE" "${missing[@]}" \
    >"$WORK/wheelhouse.log" 2>&1 || { grep -v '^WARNING: Location' "$WORK/wheelhouse.log" | tail -20 >&2; fail "pip wheel into $WHEELHOUSE"; }
  rm -f "$WHEELHOUSE"/*.tar.gz "$WHEELHOUSE"/*.zip
fi
ok "wheelhouse holds every pin of requirements.lock"

step "fresh venv in $WORK/venv: requirements.lock (offline) and the wheel (--no-deps)"
"$PYTHON" -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
PIP=("$VPY" -m pip --disable-pip-version-check --quiet)
"${PIP[@]}" install --no-index --find-links "$WHEELHOUSE" --no-deps --no-compile -r "$CHECKOUT/requirements.lock" \
  >"$WORK/install.log" 2>&1 || { tail -20 "$WORK/install.log" >&2; fail "pip install -r requirements.lock"; }
"${PIP[@]}" install --no-index --no-deps --no-compile "$WHEEL" >>"$WORK/install.log" 2>&1 \
  || { tail -20 "$WORK/install.log" >&2; fail "pip install $(basename "$WHEEL")"; }
"${PIP[@]}" check >&2 || fail "pip check: the wheel's dependencies are not met by requirements.lock"
ok "installed; pip check: no broken requirements"

# Everything below runs from a folder outside the checkout, in the fresh venv only.
mkdir -p "$WORK/elsewhere"
cd "$WORK/elsewhere"
run() { env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV PATH="$WORK/venv/bin:/usr/local/bin:/usr/bin:/bin" "$@"; }

step "import names"
run "$VPY" - "$WORK/venv" <<'EOF' >&2 || fail "import names (above)"
import importlib.resources, importlib.util, pathlib, sys
venv = pathlib.Path(sys.argv[1]).resolve()
import invrecon, invrecon.pipelines.cli
problems = []
if venv not in pathlib.Path(invrecon.__file__).resolve().parents:
    problems.append(f"invrecon imported from {invrecon.__file__}, not from the fresh venv")
for bare in ("pipelines", "transforms", "schemas", "expectations", "fixtures"):
    if importlib.util.find_spec(bare) is not None:
        problems.append(f"a top-level `{bare}` is importable")
suites = sorted(p.name for p in importlib.resources.files("invrecon.expectations").iterdir() if p.name.endswith(".json"))
if not suites:
    problems.append("no expectation suites in invrecon.expectations")
if not importlib.resources.files("invrecon.pipelines").joinpath("templates", "report.html.j2").is_file():
    problems.append("invrecon/pipelines/templates/report.html.j2 is not there")
print("\n".join(problems) or f"  invrecon from {pathlib.Path(invrecon.__file__).parent}; suites {suites}")
sys.exit(1 if problems else 0)
EOF
ok "invrecon.* from the fresh venv; no top-level pipelines/transforms/schemas/expectations/fixtures"

step "invrecon --help"
run invrecon --help >"$WORK/help.txt" 2>&1 || fail "invrecon --help exited $?"
grep -q "batch" "$WORK/help.txt" || fail "invrecon --help does not list batch"
ok "invrecon --help"

step "invrecon batch --config $WORLD/config.yaml --run-date $RUN_DATE --output $WORK/out"
t=$SECONDS
rc=0
run invrecon batch --config "$WORLD/config.yaml" --run-date "$RUN_DATE" --output "$WORK/out" \
  >"$WORK/batch.out" 2>"$WORK/batch.err" || rc=$?
[[ $rc -eq 0 ]] || { tail -20 "$WORK/batch.err" >&2; fail "invrecon batch exited $rc"; }
head -1 "$WORK/batch.out"
grep -q "SUCCEEDED" "$WORK/batch.out" || { cat "$WORK/batch.out" >&2; fail "the batch summary does not say SUCCEEDED"; }
total=$(awk '$1 == "total" {print $2}' "$WORK/batch.out")
truth=$(($(wc -l <"$WORLD/ground_truth/discrepancies.csv") - 1))
[[ "$total" == "$truth" ]] || fail "the batch found ${total:-no} discrepancies, the world's ground truth has $truth"
ok "batch exit 0 in $((SECONDS - t)) s, SUCCEEDED, $total discrepancies as in ground_truth/discrepancies.csv"

step "invrecon report"
run invrecon report --config "$WORLD/config.yaml" --run-date "$RUN_DATE" --output "$WORK/out" \
  >"$WORK/report.out" 2>"$WORK/report.err" || { tail -20 "$WORK/report.err" >&2; fail "invrecon report exited non-zero"; }
for f in "discrepancy_report_$RUN_DATE.html" "discrepancy_report_$RUN_DATE.xlsx" "discrepancies_$RUN_DATE.csv"; do
  [[ -s "$WORK/out/reports/$RUN_DATE/$f" ]] || fail "invrecon report wrote no $f"
done
ok "report exit 0: html, xlsx and csv written"

written=$(find "$CHECKOUT/fixtures" -newer "$WORK/started" -type f -not -name '*.pyc' | head -5)
[[ -z "$written" ]] || fail "the run wrote into the checkout: $written"
ok "nothing written into the checkout's fixtures/"

echo "package-check: done in $((SECONDS - T0)) s"
echo "package-check: $passed passed, 0 failed"
