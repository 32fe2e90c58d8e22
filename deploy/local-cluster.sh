#!/usr/bin/env bash
# Starts a three-organization Sightline network on this machine the way
# operators set one up: `network new`, then per organization `init` and
# `network add-member`, then three separate `sightline run` processes with
# their own data directories and ports. Waits until all three are connected
# and a test sighting submitted at one node is found at another, prints the
# web URLs, and stops them cleanly on ctrl-c.
#
#   deploy/local-cluster.sh [--check] [--bin PATH] [--base-port N] [--dir DIR]
#
# --check       start, verify, stop; exit 0 on success (used by the tests)
# --bin PATH    the sightline binary (default: $SIGHTLINE or `sightline` on PATH)
# --base-port N p2p ports N..N+2, web ports N+100..N+102 (default 17400)
# --dir DIR     keep the files in DIR (default: a temporary directory, removed)
set -euo pipefail

check=0
bin=${SIGHTLINE:-sightline}
base=17400
dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --check) check=1 ;;
        --bin) bin=$2; shift ;;
        --base-port) base=$2; shift ;;
        --dir) dir=$2; shift ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
remove=0
if [ -z "$dir" ]; then
    dir=$(mktemp -d -t sightline-cluster-XXXXXX)
    remove=1
fi
mkdir -p "$dir"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "$remove" = 1 ]; then rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

json_field() { # FIELD: the first "FIELD": "value" string in stdin
    grep -o "\"$1\": *\"[^\"]*\"" | head -n 1 | sed 's/.*: *"\(.*\)"/\1/'
}

orgs=(bank carrier cert)
names=("Example Bank" "Example Carrier" "National CERT")
trust=(0.8 0.7 0.9)
tokens=()

"$bin" network new --name "Local three-org cluster" --id local-cluster --out "$dir/network.toml" >/dev/null
for i in 0 1 2; do
    p2p=$((base + i))
    web=$((base + 100 + i))
    out=$("$bin" init --network "$dir/network.toml" --org "${names[$i]}" --dir "$dir/${orgs[$i]}" \
        --p2p-port "$p2p" --web-port "$web" --json)
    peer=$(printf '%s' "$out" | json_field peer_id)
    tokens+=("$(printf '%s' "$out" | json_field token)")
    "$bin" network add-member --network "$dir/network.toml" --org "${names[$i]}" --peer-id "$peer" \
        --trust "${trust[$i]}" --addr "/ip4/127.0.0.1/tcp/$p2p" >/dev/null
    # Loopback only: this is a local cluster.
    sed -i 's#/ip4/0.0.0.0/#/ip4/127.0.0.1/#g' "$dir/${orgs[$i]}/sightline.toml"
done

for org in "${orgs[@]}"; do
    "$bin" run --config "$dir/$org/sightline.toml" >"$dir/$org/node.log" 2>&1 &
    pids+=($!)
done

wait_for() { # DESCRIPTION COMMAND...: retry for 60 s
    local what=$1
    shift
    for _ in $(seq 1 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "timed out waiting for: $what (logs in $dir/*/node.log)" >&2
    exit 1
}
connected() { "$bin" status --json --config "$dir/$1/sightline.toml" | grep -q '"connected": 2'; }
for org in "${orgs[@]}"; do wait_for "$org connected to both peers" connected "$org"; done

"$bin" submit "+1 415 555 0100" --kind smishing --channel sms --brand "Cluster check" --confidence 90 \
    --config "$dir/bank/sightline.toml" >/dev/null
reported() { "$bin" lookup "+1 415 555 0100" --json --config "$dir/cert/sightline.toml" | grep -q '"Example Bank"'; }
wait_for "the test sighting to reach National CERT" reported

echo "three nodes connected; a test sighting from Example Bank reached National CERT"
for i in 0 1 2; do
    printf '%-16s http://127.0.0.1:%s/?token=%s\n' "${names[$i]}" $((base + 100 + i)) "${tokens[$i]}"
done
if [ "$check" = 1 ]; then
    exit 0
fi
echo "files in $dir; ctrl-c stops the nodes"
wait
