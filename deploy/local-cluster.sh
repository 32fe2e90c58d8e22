#!/usr/bin/env bash
# Starts the three-organization example network (deploy/examples/three-orgs)
# on this machine as three separate `sightline run` processes, each with its
# own data directory and ports. Waits until all three are connected and a
# test sighting submitted at one node is found at another, prints the web
# URLs, and stops the nodes cleanly (SIGTERM) on ctrl-c.
#
#   deploy/local-cluster.sh [--check] [--bin PATH] [--port-offset K] [--dir DIR]
#
# --check          start, verify, stop; exit 0 on success (used by the tests)
# --bin PATH       the sightline binary (default: $SIGHTLINE or `sightline` on PATH)
# --port-offset K  add K to every port of the example (p2p 7401-7403, web 7301-7303)
# --dir DIR        work in DIR and keep it (default: a temporary directory, removed)
#
# The example's files are copied to the working directory and the node keys
# installed there with mode 0600 (the node refuses keys others can read).
set -euo pipefail

check=0
bin=${SIGHTLINE:-sightline}
offset=0
dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --check) check=1 ;;
        --bin) bin=$2; shift ;;
        --port-offset) offset=$2; shift ;;
        --dir) dir=$2; shift ;;
        -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
example=$(cd "$(dirname "$0")/examples/three-orgs" && pwd)
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

orgs=(bank carrier cert)
names=("Example Bank" "Example Carrier" "National CERT")

cp "$example/network.toml" "$dir/"
for i in 1 2 3; do
    org=${orgs[$((i - 1))]}
    cp "$example/$org.toml" "$dir/"
    if [ ! -e "$dir/$org/node.key" ]; then
        install -D -m 0600 "$example/keys/$org.key" "$dir/$org/node.key"
    fi
    if [ "$offset" != 0 ]; then
        p2p=$((7400 + i + offset))
        web=$((7300 + i + offset))
        sed -i -E "s#/(tcp|udp)/740$i\b#/\1/$p2p#g; s#127\.0\.0\.1:730$i\b#127.0.0.1:$web#g" \
            "$dir/network.toml" "$dir/$org.toml"
    fi
done

for org in "${orgs[@]}"; do
    "$bin" run --config "$dir/$org.toml" >"$dir/$org.log" 2>&1 &
    pids+=($!)
done

wait_for() { # DESCRIPTION COMMAND...: retry for 60 s
    local what=$1
    shift
    for _ in $(seq 1 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "timed out waiting for: $what (logs in $dir/*.log)" >&2
    exit 1
}
for org in "${orgs[@]}"; do
    "$bin" health --wait 60 --config "$dir/$org.toml" >/dev/null
done
connected() { "$bin" status --json --config "$dir/$1.toml" | grep -q '"connected": 2'; }
for org in "${orgs[@]}"; do wait_for "$org connected to both peers" connected "$org"; done

"$bin" submit "+1 415 555 0100" --kind smishing --channel sms --brand "Cluster check" --confidence 90 \
    --config "$dir/bank.toml" >/dev/null
reported() { "$bin" lookup "+1 415 555 0100" --json --config "$dir/cert.toml" | grep -q '"Example Bank"'; }
wait_for "the test sighting to reach National CERT" reported

echo "three nodes connected; a test sighting from Example Bank reached National CERT"
for i in 1 2 3; do
    org=${orgs[$((i - 1))]}
    token=$(grep -m 1 '^token = .*analyst' "$dir/$org.toml" | cut -d '"' -f 2)
    printf '%-16s http://127.0.0.1:%s/  sign in with %s\n' "${names[$((i - 1))]}" $((7300 + i + offset)) "$token"
done
if [ "$check" = 1 ]; then
    exit 0
fi
echo "files in $dir; ctrl-c stops the nodes"
wait
