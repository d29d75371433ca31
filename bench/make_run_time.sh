#!/usr/bin/env bash
# Seconds from a fresh clone's `make run` to its first /health 200 (the README's figure).
# Warm by default (pip's cache as it is); PIP_NO_CACHE_DIR=1 for a cold one (llama-cpp-python
# then compiles from source). Usage: bash bench/make_run_time.sh [PORT]
set -u
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
PORT=${1:-18765}
CLONE=$(mktemp -d)/slm-api
git clone -q "$REPO" "$CLONE" && cd "$CLONE" || exit 1
start=$(date +%s.%N)
env -u PYTHONPATH -u VIRTUAL_ENV HOST=127.0.0.1 PORT="$PORT" setsid make run >"$CLONE.log" 2>&1 &
MAKE_PID=$!
for _ in $(seq 1 3600); do
  if curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
    echo "make run -> first /health 200: $(echo "$(date +%s.%N) - $start" | bc) s"
    break
  fi
  kill -0 "$MAKE_PID" 2>/dev/null || { echo "make run exited; see $CLONE.log"; exit 1; }
  sleep 0.5
done
kill -TERM -- "-$MAKE_PID"
wait "$MAKE_PID"
rm -rf "$(dirname "$CLONE")"
