#!/usr/bin/env bash
# Provider calls per completed interview and cache hit rates, per interview mode, against the fake provider.
#
#   benches/mode_costs.sh                      # N=500 interviews, C=100 at a time, every mode
#   N=40 C=20 MODES="economy balanced" benches/mode_costs.sh
#
# Builds the release binaries, starts `fake-provider --persona interviewer` (grades, resume analyses and
# follow-up questions derived from each request, so scores vary per answer) with a few keys, then for each
# mode starts `interview-engine serve` on a fresh storage directory (the cache starts cold every time),
# runs `interview-engine loadtest --mode <mode> --json` against it and prints one line per mode from the
# loadtest's figures (the deltas of /api/optimization_stats). Everything started here is killed on exit.
#
# Environment: N, C (interviews, concurrency), MODES, KEYS (fake keys, default 8), FAKE_LATENCY_MS (per
# answer, default 20), RESUME=0 (no synthetic resumes), SERVER_LOG (the servers' RUST_LOG, default warn),
# CARGO_TARGET_DIR, KEEP=1 (keep the work directory and its logs), RPD (a daily request limit per key, told
# to both the fake and the engine: `RPD=400 MODES=auto benches/mode_costs.sh` shows auto stepping down).
set -euo pipefail

N=${N:-500}
C=${C:-100}
MODES=${MODES:-"economy balanced adaptive auto"}
KEYS=${KEYS:-8}
FAKE_LATENCY_MS=${FAKE_LATENCY_MS:-20}
RESUME=${RESUME:-1}
RPD=${RPD:-}
ADMIN_TOKEN="bench-admin-token"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET/release"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mode_costs.XXXXXX")

FAKE_PID=""
SERVER_PID=""

stop() {
    local pid=$1
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}

cleanup() {
    local status=$?
    stop "$SERVER_PID"
    stop "$FAKE_PID"
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits (30 s at most) for the `listening on http://ADDR` line a binary prints first; echoes the URL.
wait_listening() {
    local out=$1 pid=$2 what=$3
    for _ in $(seq 300); do
        if [[ -s "$out" ]]; then
            local line
            line=$(head -n1 "$out")
            if [[ "$line" == "listening on "* ]]; then
                echo "${line#listening on }"
                return 0
            fi
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$what exited before listening; its log:" >&2
            cat "${out%.out}.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    echo "$what did not start within 30 s" >&2
    return 1
}

echo "building release binaries (target: $TARGET)..." >&2
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p interview-engine -p fake-provider --bin interview-engine --bin fake-provider

# The fake provider: KEYS keys without limits, each answering after FAKE_LATENCY_MS.
key_list=""
{
    echo "["
    for i in $(seq "$KEYS"); do
        sep=$([[ $i -lt $KEYS ]] && echo "," || echo "")
        limits=$([[ -n "$RPD" ]] && echo ", \"limits\": {\"rpd\": $RPD}" || echo "")
        echo "  {\"key\": \"bench-key-$i\", \"latency_ms\": $FAKE_LATENCY_MS$limits}$sep"
        key_list+="${key_list:+,}bench-key-$i"
    done
    echo "]"
} >"$WORK/keys.json"
"$BIN/fake-provider" --bind 127.0.0.1:0 --keys "$WORK/keys.json" --persona interviewer \
    >"$WORK/fake.out" 2>"$WORK/fake.log" &
FAKE_PID=$!
FAKE_URL=$(wait_listening "$WORK/fake.out" "$FAKE_PID" fake-provider)
echo "fake-provider --persona interviewer at $FAKE_URL with $KEYS keys (latency ${FAKE_LATENCY_MS} ms)" >&2

fake_requests() {
    curl -fsS "$FAKE_URL/_fake/stats" | jq '[.[] | .requests // 0] | add // 0'
}

resume_flag=()
if [[ "$RESUME" == 1 ]]; then
    resume_flag=(--resume)
fi

printf '\n%-9s %-10s %-16s %-8s %-14s %-11s %s\n' mode completed calls/interview calls tokens/intvw fake_reqs \
    "cache hit rate (hits/lookups) | dedup saves | turn latency p50/p99 ms"
for mode in $MODES; do
    dir="$WORK/$mode"
    mkdir -p "$dir"
    cat >"$dir/config.toml" <<EOF
[server]
bind = "127.0.0.1:0"
admin_token = "$ADMIN_TOKEN"

[storage]
path = "$dir/data"

[providers.fakeai]
format = "openai"
base_url = "$FAKE_URL/v1"
model = "fake-model"
priority = 1
keys_env = "FAKEAI_API_KEYS"
limits = { rpm = 100000${RPD:+, rpd = $RPD} }
EOF
    echo "mode $mode: fresh storage $dir/data, so the cache starts cold" >&2
    # Only the fake keys in the environment: real provider keys of the caller are never used.
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" RUST_LOG="${SERVER_LOG:-warn}" FAKEAI_API_KEYS="$key_list" \
        "$BIN/interview-engine" serve --config "$dir/config.toml" >"$dir/server.out" 2>"$dir/server.log" &
    SERVER_PID=$!
    url=$(wait_listening "$dir/server.out" "$SERVER_PID" "interview-engine serve")

    fake_before=$(fake_requests)
    status=0
    "$BIN/interview-engine" loadtest --url "$url" --interviews "$N" --concurrency "$C" --mode "$mode" \
        --admin-token "$ADMIN_TOKEN" "${resume_flag[@]}" --json >"$dir/report.json" 2>"$dir/loadtest.log" || status=$?
    fake_after=$(fake_requests)
    stop "$SERVER_PID"
    SERVER_PID=""

    if ! jq -e . "$dir/report.json" >/dev/null 2>&1; then
        echo "mode $mode: loadtest failed (exit $status):" >&2
        cat "$dir/loadtest.log" >&2
        exit 1
    fi
    # One tab-separated row from the report, printed in columns.
    row=$(jq -r --arg n "$N" '
        def pct: if . == null then "-" else (. * 1000 | round / 10 | tostring) + "%" end;
        def num: if . == null then "-" else (. * 100 | round / 100 | tostring) end;
        [
          "\(.completed)/\($n)",
          (.provider_calls_per_interview | num),
          (.provider_calls // "-" | tostring),
          (.provider_tokens_per_interview | if . == null then "-" else (round | tostring) end),
          (((.cache // {}) | to_entries | map(select(.value.hits + .value.misses > 0)
             | "\(.key) \(.value.hit_rate | pct) (\(.value.hits)/\(.value.hits + .value.misses))") | join(", ")
             | if . == "" then "no lookups" else . end)
           + " | dedup \(.dedup_saves // "-")"
           + " | \(.turn_latency_ms.p50 | num)/\(.turn_latency_ms.p99 | num)")
        ] | @tsv' "$dir/report.json")
    IFS=$'\t' read -r completed per_interview calls tokens rest <<<"$row"
    printf '%-9s %-10s %-16s %-8s %-14s %-11s %s\n' "$mode" "$completed" "$per_interview" "$calls" "$tokens" \
        "$((fake_after - fake_before))" "$rest"
    if [[ $status -ne 0 ]]; then
        jq -r '"  \(.failed) failed: \(.failures | join("; "))"' "$dir/report.json"
    fi
done
