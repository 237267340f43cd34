#!/usr/bin/env bash
# Voice benchmarks (figures in docs/BENCHMARKS.md):
#  1. latency: a real local speech-to-text node (faster-whisper-server, tiny.en, int8, greedy), 5 s
#     spoken answers, one candidate at a time: end of speech (audio_end) -> first interviewer event,
#     the server's speech-to-text time (transcript.stt_ms) and the engine's own share (the difference);
#  2. load: 50 candidates speaking at once, frames paced in real time, against the fake provider as
#     the speech-to-text node: frames sent vs. frames the server took (dropped must be 0), and the
#     engine's resident memory per speaking session ((peak RSS - RSS before) / 50).
# Needs .ci/install-voice, espeak-ng and sox, and `cargo build --release --workspace`.
# Usage: benches/voice_load.sh [latency|load|all]
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${1:-all}"
BIN=target/release/interview-engine
FAKE=target/release/fake-provider
[[ -x "$BIN" && -x "$FAKE" ]] || { echo "build first: cargo build --release --workspace" >&2; exit 1; }
# shellcheck disable=SC1090
source "${IE_VOICE_HOME:-$HOME/.cache/interview-engine/voice}/env" || { echo "run .ci/install-voice first" >&2; exit 1; }
WORK=$(mktemp -d)
# `start` runs in command substitutions (subshells): the pids it starts are kept in a file.
cleanup() { while read -r p; do kill "$p" 2>/dev/null || true; done <"$WORK/pids"; rm -rf "$WORK"; }
trap cleanup EXIT
: >"$WORK/pids"

# A 5 s spoken answer at 16 kHz (espeak-ng, padded or cut to exactly 5 s).
espeak-ng -v en-us -s 150 -w "$WORK/raw.wav" \
  "I would use a hash map to count each word, then sort the words by their count."
sox "$WORK/raw.wav" -r 16000 -c 1 -b 16 "$WORK/answer.wav" pad 0 5 trim 0 5

# Starts a process whose first stdout line is "listening on URL"; prints the URL.
start() {
  local log="$1"; shift
  "$@" >"$log" 2>"$log.err" &
  echo $! >>"$WORK/pids"
  for _ in $(seq 1 600); do
    if grep -q "listening on" "$log" 2>/dev/null; then
      grep -o 'http://[0-9.:]*' "$log" | head -n1
      return 0
    fi
    sleep 0.2
  done
  echo "did not start: $*" >&2; cat "$log.err" >&2; exit 1
}

engine() { # $1: name, $2: extra config
  mkdir -p "$WORK/$1"
  printf '[server]\nbind = "127.0.0.1:0"\nadmin_token = "bench"\n[storage]\npath = "%s/data"\n%s\n' "$WORK/$1" "$2" >"$WORK/$1/config.toml"
  start "$WORK/$1/out" "$BIN" serve --config "$WORK/$1/config.toml"
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

if [[ "$WHAT" == latency || "$WHAT" == all ]]; then
  WHISPER=$(start "$WORK/whisper.out" "$VOICE_PYTHON" tests/tools/whisper_node.py "$WHISPER_CONFIG")
  URL=$(engine latency "[[stt_nodes]]
name = \"whisper-1\"
url = \"$WHISPER\"
model = \"tiny.en\"
max_concurrency = 2")
  # Warm-up: the model loads at its first request.
  "$BIN" loadtest --url "$URL" --interviews 1 --concurrency 1 --answers-per-interview 2 \
    --audio "$WORK/answer.wav" --admin-token bench >/dev/null
  echo "== latency: real whisper node (tiny.en), 5 s answers, 1 candidate at a time, 50 answers"
  "$BIN" loadtest --url "$URL" --interviews 10 --concurrency 1 --answers-per-interview 5 \
    --audio "$WORK/answer.wav" --admin-token bench
fi

if [[ "$WHAT" == load || "$WHAT" == all ]]; then
  FAKEURL=$(start "$WORK/fake.out" "$FAKE" --bind 127.0.0.1:0)
  URL=$(engine load "[[stt_nodes]]
name = \"fake-stt\"
url = \"$FAKEURL\"
model = \"fake\"
max_concurrency = 64")
  EPID=$(tail -n1 "$WORK/pids")
  BEFORE=$(rss_kib "$EPID")
  PEAK=$BEFORE
  "$BIN" loadtest --url "$URL" --interviews 50 --concurrency 50 --answers-per-interview 3 \
    --audio "$WORK/answer.wav" --admin-token bench >"$WORK/load.txt" &
  LT=$!
  while kill -0 "$LT" 2>/dev/null; do
    R=$(rss_kib "$EPID"); (( R > PEAK )) && PEAK=$R
    sleep 0.25
  done
  wait "$LT" || true
  echo "== load: 50 candidates speaking at once (real time), fake speech-to-text node"
  cat "$WORK/load.txt"
  echo "engine RSS: before ${BEFORE} KiB, peak ${PEAK} KiB: $(( (PEAK - BEFORE) / 50 )) KiB per speaking session"
fi
