#!/usr/bin/env bash
# Redis operations per interview turn and per provider call in cluster mode, counted with MONITOR.
#
#   benches/cluster_redis_ops.sh                  # 3 nodes, N=30 interviews (10 per node), Q=4 answers
#   N=60 Q=6 NODES=3 benches/cluster_redis_ops.sh
#
# Starts a redis-server (temporary directory, append-only, fsync always), fake-provider with an
# interviewer key, and NODES engines in cluster mode (balanced mode: one provider evaluation per answer),
# records `redis-cli MONITOR` for the whole run, drives N interviews with `interview-engine loadtest`
# (N/NODES through each node, at once), then prints: round trips (commands a node sent) and commands run
# inside scripts, per answered turn and per provider call, by command; and the idle cost per node
# (heartbeats, lease renewals) from an idle period after the run. Uses target/debug binaries
# (`cargo build -p interview-engine -p fake-provider --bin interview-engine --bin fake-provider`): counts do not depend on the build.
# Everything started here is stopped on exit. Ports are free ones found at start.
set -euo pipefail
N=${N:-30}
Q=${Q:-4}
NODES=${NODES:-3}
IDLE_S=${IDLE_S:-10}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/debug}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cluster_ops.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK" --appendonly yes --appendfsync always --save "" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
until redis-cli -p "$RPORT" PING >/dev/null 2>&1; do sleep 0.05; done

echo '[{"key":"bench-key","reply":"@interviewer"}]' >"$WORK/keys.json"
"$BIN/fake-provider" --bind 127.0.0.1:0 --keys "$WORK/keys.json" >"$WORK/fake.out" 2>/dev/null &
PIDS+=($!)
until grep -q listening "$WORK/fake.out" 2>/dev/null; do sleep 0.05; done
FAKE=$(sed -n 's/^listening on //p' "$WORK/fake.out")

BASES=()
for i in $(seq 1 "$NODES"); do
  mkdir -p "$WORK/n$i"
  cat >"$WORK/n$i/config.toml" <<TOML
[server]
bind = "127.0.0.1:0"
[storage]
path = "$WORK/n$i/data"
[interview]
mode = "balanced"
[cluster]
redis_url = "redis://127.0.0.1:$RPORT/0"
node_id = "n$i"
[providers.fakeai]
format = "openai"
base_url = "$FAKE/v1"
model = "m"
keys_env = "FAKEAI_API_KEYS"
limits = { rpm = 100000, rpd = 10000000, concurrency = 64 }
TOML
  FAKEAI_API_KEYS=bench-key RUST_LOG=warn "$BIN/interview-engine" serve --config "$WORK/n$i/config.toml" >"$WORK/n$i/out" 2>"$WORK/n$i/log" &
  PIDS+=($!)
  until grep -q listening "$WORK/n$i/out" 2>/dev/null; do sleep 0.05; done
  BASES+=("$(sed -n 's/^listening on //p' "$WORK/n$i/out")")
done

cpu() { redis-cli -p "$RPORT" INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ {s+=$2} END {printf "%.3f", s}'; }
CPU0=$(cpu)
T0=$(date +%s.%N)
# MONITOR costs Redis CPU itself: MONITOR=0 measures Redis CPU without it (and counts nothing).
if [ "${MONITOR:-1}" = "1" ]; then
  redis-cli -p "$RPORT" MONITOR >"$WORK/monitor.run" &
else
  : >"$WORK/monitor.run"; sleep 3600 &
fi
MON=$!
PIDS+=($MON)
sleep 0.5
per=$((N / NODES))
LT=()
for b in "${BASES[@]}"; do
  "$BIN/interview-engine" loadtest --url "$b" --interviews "$per" --concurrency "$per" --answers-per-interview "$Q" --json >"$WORK/lt.$(echo "$b" | tr -dc 0-9)" &
  LT+=($!)
done
for p in "${LT[@]}"; do wait "$p"; done
T1=$(date +%s.%N)
CPU1=$(cpu)
sleep 0.5
kill "$MON"; wait "$MON" 2>/dev/null || true
if [ "${MONITOR:-1}" = "1" ]; then redis-cli -p "$RPORT" MONITOR >"$WORK/monitor.idle" &
else : >"$WORK/monitor.idle"; sleep 3600 & fi
MON=$!
PIDS+=($MON)
sleep "$IDLE_S"
kill "$MON"; wait "$MON" 2>/dev/null || true

redis-cli -p "$RPORT" INFO commandstats | tr -d '\r' | grep -E 'cmdstat_(evalsha|lrange|exec|get|set|xadd)' | sed 's/,rejected_calls.*//' | tr '\n' ' ' >"$WORK/cmdstats"
CALLS=$(curl -s "$FAKE/_fake/stats" | python3 -c 'import json,sys; print(sum(v["requests"] for v in json.load(sys.stdin).values()))')
python3 - "$WORK" "$CALLS" "$N" "$Q" "$NODES" "$IDLE_S" "$CPU0" "$CPU1" "$T0" "$T1" <<'PY'
import collections, glob, json, re, sys
work, calls, n, q, nodes, idle_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
cpu_s = float(sys.argv[8]) - float(sys.argv[7])
wall_s = float(sys.argv[10]) - float(sys.argv[9])
done = sum(json.load(open(f))["completed"] for f in glob.glob(work + "/lt.*"))
failed = sum(json.load(open(f))["failed"] for f in glob.glob(work + "/lt.*"))
def count(path):
    """Round trips by command (a MULTI..EXEC pipeline is one), and commands run inside scripts."""
    top, inner = collections.Counter(), collections.Counter()
    in_multi = set()
    for line in open(path, errors="replace"):
        m = re.match(r'^[0-9.]+ \[\d+ ([^\]]+)\] "([A-Za-z]+)"', line)
        if not m:
            continue
        who, cmd = m.group(1), m.group(2).lower()
        if who == "lua":
            inner[cmd] += 1
        elif cmd == "multi":
            in_multi.add(who)
        elif cmd == "exec":
            in_multi.discard(who)
            top["multi/exec pipeline"] += 1
        elif who not in in_multi:
            top[cmd] += 1
    return top, inner
top, inner = count(work + "/monitor.run")
turns = done * q
print(f"interviews completed {done} (failed {failed}), answered turns {turns}, provider calls {calls}, nodes {nodes}")
print(f"round trips (MONITOR={'on' if sum(top.values()) else 'off'}): {sum(top.values())} = {sum(top.values())/turns:.2f} per turn, {sum(top.values())/max(calls,1):.2f} per provider call")
print(f"commands inside scripts: {sum(inner.values())} = {sum(inner.values())/turns:.2f} per turn")
print("round trips by command:", dict(top.most_common()))
print("inside scripts by command:", dict(inner.most_common(12)))
print(f"redis CPU during the run: {cpu_s:.2f} s over {wall_s:.1f} s ({1000*cpu_s/turns:.3f} ms per turn; single-threaded redis: {turns/max(cpu_s,1e-9):.0f} turns per CPU-second)")
itop, iinner = count(work + "/monitor.idle")
print(f"redis commandstats: {open(work + '/cmdstats').read().strip()}")
print(f"idle ({idle_s:.0f} s, {nodes} nodes, sessions finished): {sum(itop.values())/idle_s/nodes:.2f} round trips per node per second", dict(itop.most_common()))
PY
