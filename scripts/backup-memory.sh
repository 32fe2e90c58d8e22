#!/usr/bin/env bash
# Peak memory of an encrypted backup and restore (BENCHMARKS.md, "Backup and
# restore memory"): one node on loopback, N of its own submissions imported,
# then the node's VmHWM before and after `sightline backup`, the client's
# peak RSS, and `sightline restore`'s peak RSS and time.
#
#   bash scripts/backup-memory.sh [N] [path/to/sightline]
#
# Defaults: N = 100000, the debug binary in target/. Needs /usr/bin/time.
set -euo pipefail
n=${1:-100000}
bin=$(realpath "${2:-target/debug/sightline}")
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
"$bin" network new --name Bench --id bench --out network.toml >/dev/null
"$bin" init --network network.toml --org Bank --dir bank --p2p-port 17499 --web-port 17399 \
    --json >init.json
peer=$(python3 -c 'import json; print(json.load(open("init.json"))["peer_id"])')
"$bin" network add-member --network network.toml --org Bank --peer-id "$peer" --trust 0.5 \
    --addr /ip4/127.0.0.1/tcp/17499 >/dev/null
sed -i 's/^api_requests_per_second = .*/api_requests_per_second = 1000000/' bank/sightline.toml
python3 - "$n" >rows.csv <<'EOF'
import sys
print("number,kind")
for i in range(int(sys.argv[1])):
    print("+1212%03d%04d,smishing" % (200 + i // 10000, i % 10000))
EOF
"$bin" run --config bank/sightline.toml 2>node.log &
pid=$!
"$bin" health --wait 30 --config bank/sightline.toml >/dev/null
"$bin" import rows.csv --config bank/sightline.toml | tail -n 1
# Restart so the peak reflects serving, not the import.
kill "$pid"; wait "$pid" || true
"$bin" run --config bank/sightline.toml 2>>node.log &
pid=$!
"$bin" health --wait 30 --config bank/sightline.toml >/dev/null
hwm() { awk '/VmHWM/ {print $2 " kB"}' "/proc/$pid/status"; }
echo "node peak before backup: $(hwm)"
"$bin" backup-key --out backup.identity | grep '^recipient' >recipient.txt
recipient=$(cut -d' ' -f2 recipient.txt)
for i in 1 2; do
    /usr/bin/time -f "backup $i: client peak %M kB, %e s" \
        "$bin" backup --config bank/sightline.toml --recipient "$recipient" --out "b$i.age" >/dev/null
    echo "node peak after backup $i: $(hwm); archive $(stat -c %s "b$i.age") bytes"
done
kill "$pid"; wait "$pid" || true
mkdir restored
sed "s#^data_dir = .*#data_dir = \"$work/restored/data\"#" bank/sightline.toml >restored/sightline.toml
/usr/bin/time -f "restore: peak %M kB, %e s" \
    "$bin" restore --config restored/sightline.toml --archive b1.age --identity backup.identity
