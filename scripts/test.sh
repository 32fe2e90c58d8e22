#!/usr/bin/env bash
# All of Sightline's tests, from a fresh machine that has only the Rust
# toolchain, Python 3, Node and apt. Installs what it needs, then runs:
# formatting, clippy, the Python conformance check of the test vectors,
# the fuzz targets (bounded), the protocol and node benchmarks (quick), and the
# workspace test suite. Fails on the first failing step.
#
# Environment: FUZZ_RUNS_DECODE / FUZZ_RUNS_PARSE (fuzz iterations; fixed
# seed, so a CI run is reproducible; run longer campaigns by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_RUNS_DECODE=${FUZZ_RUNS_DECODE:-300000}
FUZZ_RUNS_PARSE=${FUZZ_RUNS_PARSE:-20000}

step() { printf '\n==> %s\n' "$*"; }

step "tools"
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
# Chromium (Debian's package) and playwright-core drive the web UI test;
# iproute2 builds the network namespaces of the partition test; systemd's
# systemd-analyze checks the unit; curl is used by docs/operators.md.
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || missing="$missing iproute2"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
# jemalloc (the binary's allocator) is built from C with make.
command -v make >/dev/null 2>&1 || missing="$missing make"
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq $missing >/dev/null
fi
# playwright-core (web UI test) and dclint (compose file) from npm; hadolint
# and yamllint from PyPI, pinned.
(cd tests/browser && npm ci --no-audit --no-fund --silent)
TOOLS="$ROOT/target/tools-venv"
[ -x "$TOOLS/bin/python" ] || python3 -m venv "$TOOLS"
"$TOOLS/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-tools.txt
cargo nextest --version | head -1
cargo fuzz --version
/usr/bin/chromium --version
"$TOOLS/bin/hadolint" --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (pedantic, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "independent conformance check of protocol/test-vectors (Python, from SPEC.md)"
VENV="$ROOT/target/conformance-venv"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r protocol/conformance/requirements.txt
"$VENV/bin/python" protocol/conformance/check_vectors.py | tail -n 3
"$VENV/bin/python" protocol/metadata/generate.py --check

step "fuzz targets: build, then a fixed-seed run of each from the seed corpus"
# cargo-fuzz needs nightly-only flags (sanitizers); this machine has one
# stable toolchain, so allow them explicitly for this build only.
(
    cd protocol/fuzz
    export RUSTC_BOOTSTRAP=1
    cargo fuzz build -O
    for target in decode parse_number sync_decode csv_import; do
        runs=$FUZZ_RUNS_DECODE
        # Targets that parse phone numbers run libphonenumber's regexes: slower.
        case "$target" in parse_number | csv_import) runs=$FUZZ_RUNS_PARSE ;; esac
        corpus="$ROOT/target/fuzz-corpus/$target"
        mkdir -p "$corpus"
        cp -n seeds/"$target"/* "$corpus"/ 2>/dev/null || true
        cargo fuzz run -O "$target" "$corpus" -- \
            -runs="$runs" -seed=1 -max_total_time=120 -max_len=1100 -print_final_stats=1 2>&1 \
            | grep -E '^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY)' || true
        # A crash leaves an artifact and a non-zero exit from cargo fuzz run;
        # check for artifacts explicitly because of the pipe above.
        if ls artifacts/"$target"/crash-* >/dev/null 2>&1; then
            echo "fuzz target $target crashed: see protocol/fuzz/artifacts/$target" >&2
            exit 1
        fi
    done
)

step "protocol benchmark (quick; figures are not judged here, see BENCHMARKS.md)"
cargo bench -p sightline-protocol --bench protocol --locked -- --quick

step "node benchmark harness (quick: 20,000 records; figures are not judged here)"
cargo bench -p sightline-tests --bench node --locked -- --quick | tail -n 12

step "scale benchmark harness (quick: 20,000 current reports with re-reports and withdrawals; a node that missed 5,000 catches up)"
cargo bench -p sightline-tests --bench node --locked -- --scale --quick | tail -n 10

step "set reconciliation benchmark (quick: 20,000 reports; checks the differences it finds)"
cargo bench -p sightline-tests --bench reconcile --locked -- --quick

step "sled layout benchmark (quick: 20,000 records per layout; what sled costs per tree, not judged here)"
cargo bench -p sightline-tests --bench sled_layout --locked -- --quick | tail -n 15

step "campaigns under a hostile member (quick: 10,000 planted records; fails if the operations merge)"
cargo bench -p sightline-tests --bench campaigns --locked -- --quick

step "gateway check benchmark (quick: 100,000 listed numbers; checks/s against the raw HMAC rate, measured false positives)"
cargo bench -p sightline-gateway --bench check --locked -- --quick | tail -n 6

step "demo (README's main command) runs"
cargo run -q -p sightline --locked -- demo --check

step "the baseline release's binary for the rolling-upgrade test (tests/upgrade-baseline)"
baseline=$(grep -v '^#' tests/upgrade-baseline | head -n 1)
rm -rf target/baseline && mkdir -p target/baseline/src
git archive "$baseline" | tar -x -C target/baseline/src
# The shared target directory reuses every dependency already built; the
# release's own crates build under their own path, then its binary is set
# aside before this tree's build replaces target/debug/sightline.
cargo build -q --locked -p sightline --manifest-path target/baseline/src/Cargo.toml --target-dir target
cp target/debug/sightline target/baseline/sightline
export SIGHTLINE_BASELINE_BIN="$PWD/target/baseline/sightline"
"$SIGHTLINE_BASELINE_BIN" --version

step "workspace tests (nextest) and doc tests"
cargo test --workspace --doc --locked -q 2>&1 | tail -n 2
# The system tests (root for network namespaces and tmpfs, Chromium, the
# container linters, systemd-analyze) are #[ignore]d for plain `cargo test`,
# which lists them; everything they need is installed above.
cargo nextest run --workspace --locked --profile ci --run-ignored all
