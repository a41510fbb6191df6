#!/usr/bin/env bash
# Conclave against Janus (Debian's janus, videoroom plugin) under the identical load from
# conclave-load, both in one loopback-only network namespace, at several load levels.
# Prints one table: forwarded packets, server CPU, packets per CPU second, loss, latency,
# memory per participant, and the Conclave/Janus ratios; plus the raw forwarding baseline
# of this machine. Needs root (network namespaces). Installs what it needs.
#
#   bench/sfu-vs-janus.sh                      # default levels
#   LEVELS="2x5 8x6" DURATION=10 bench/sfu-vs-janus.sh
#   VIDEO_KBPS=1000 bench/sfu-vs-janus.sh
#   MEDIA_THREADS=1 bench/sfu-vs-janus.sh      # Conclave's media threads (0 = one per core)
set -euo pipefail
cd "$(dirname "$0")/.."

LEVELS="${LEVELS:-2x5 6x5 10x6}"
DURATION="${DURATION:-10}"
VIDEO_KBPS="${VIDEO_KBPS:-500}"
MEDIA_THREADS="${MEDIA_THREADS:-0}"
NS="conclave-bench-$$"
WORK="$(mktemp -d /tmp/conclave-bench.XXXXXX)"

need=()
command -v janus >/dev/null 2>&1 || need+=(janus)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release -q -p conclave -p conclave-load

conclave_pid=""
cleanup() {
  [ -n "$conclave_pid" ] && kill "$conclave_pid" 2>/dev/null || true
  bench/janus-netns.sh stop "$NS" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

janus_pid="$(bench/janus-netns.sh start "$NS" "$WORK/janus" | tail -n 1)"
ip netns exec "$NS" target/release/conclave serve --listen 127.0.0.1:0 --media-port 0 \
  --data-dir "$WORK/conclave" --log warn --media-threads "$MEDIA_THREADS" >"$WORK/conclave.out" 2>"$WORK/conclave.err" &
conclave_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$WORK/conclave.out" 2>/dev/null && break
  sleep 0.1
done
url="$(grep -o 'https://[0-9.:]*' "$WORK/conclave.out")"
[ -n "$url" ] || { echo "conclave did not start:"; cat "$WORK/conclave.err"; exit 1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "conclave $url (pid $conclave_pid, media threads: $MEDIA_THREADS, 0 = one per core), janus http://127.0.0.1:8088/janus (pid $janus_pid)"
echo "load: ${VIDEO_KBPS} kbit/s video at 30 fps in <=1200-byte packets + 50 audio packets/s per publisher; ${DURATION} s per run"
ip netns exec "$NS" target/release/raw-forward 5 --json >"$WORK/raw.json"

for level in $LEVELS; do
  rooms="${level%x*}"; people="${level#*x}"
  for target in conclave janus; do
    if [ "$target" = conclave ]; then
      args=(--url "$url" --server-pid "$conclave_pid")
    else
      args=(--janus "http://127.0.0.1:8088/janus" --server-pid "$janus_pid")
    fi
    echo "  $target $level ..." >&2
    ip netns exec "$NS" target/release/conclave-load "${args[@]}" --rooms "$rooms" \
      --participants "$people" --duration "$DURATION" --video-kbps "$VIDEO_KBPS" --json \
      >"$WORK/$target-$level.json" 2>"$WORK/$target-$level.err" \
      || { echo "$target $level failed:"; tail -5 "$WORK/$target-$level.err"; }
  done
done

python3 - "$WORK" $LEVELS <<'PY'
import json, os, sys
work, levels = sys.argv[1], sys.argv[2:]
raw = json.load(open(os.path.join(work, "raw.json")))
def load(t, l):
    p = os.path.join(work, f"{t}-{l}.json")
    try:
        return json.load(open(p))
    except Exception:
        return None
hdr = ("level", "server", "fwd pkt/s", "CPU %", "pkt/CPU-s", "loss %", "p50 ms", "p99 ms", "KiB/part")
print()
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
ratios = []
for l in levels:
    rows = {}
    for t in ("conclave", "janus"):
        r = load(t, l)
        rows[t] = r
        if r is None:
            print(f"| {l} | {t} | failed | | | | | | |")
            continue
        fwd = r["received_packets"] + r["lost_packets"]
        cpu = r.get("server_cpu_secs") or 0.0
        per = r.get("forwarded_per_cpu_sec") or 0.0
        print(f"| {l} | {t} | {fwd / r['duration_secs']:.0f} | {cpu / r['duration_secs'] * 100:.0f} | "
              f"{per:.0f} | {r['loss_ratio'] * 100:.3f} | {r['latency']['p50_us'] / 1000:.2f} | "
              f"{r['latency']['p99_us'] / 1000:.2f} | {r.get('rss_per_participant_kib') or 0:.0f} |")
    c, j = rows["conclave"], rows["janus"]
    if c and j and j.get("forwarded_per_cpu_sec") and c.get("forwarded_per_cpu_sec"):
        ratios.append((l, c["forwarded_per_cpu_sec"] / j["forwarded_per_cpu_sec"],
                       c["forwarded_per_cpu_sec"] / raw["per_cpu_sec"]))
print()
print(f"raw baseline (recv + AES-128-GCM seal + sendto, 1200 B): {raw['per_cpu_sec']:.0f} packets per CPU second")
for l, r, f in ratios:
    print(f"{l}: Conclave/Janus packets per CPU second = {r:.2f}x; Conclave reaches {f * 100:.0f} % of the raw baseline")
PY
