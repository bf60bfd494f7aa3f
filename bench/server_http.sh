#!/usr/bin/env bash
# REST API throughput with wrk, plain and TLS, keep-alive, rate limit off,
# 1,000 tokens stored:
#   GET one token · GET /v1/registrationTokens?limit=100 · POST a token
# Usage: bench/server_http.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seconds=${2:-10}
threads=2
conns=32
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

run_server() {  # run_server NAME [flags…] → sets url, auth
  local name=$1; shift
  "$build/server/paddock-server" --data-dir "$work/$name" --listen 127.0.0.1:0 --rate-limit 0 \
    --log-level warn "$@" 2>"$work/$name.log" &
  server_pid=$!
  for _ in $(seq 100); do
    [[ -f $work/$name/admin-key.json ]] && grep -q . "$work/$name/admin-key.json" && break
    sleep 0.1
  done
  # The listening line is logged at info; ask the kernel for the port instead.
  for _ in $(seq 100); do
    port=$(ss -ltnpH 2>/dev/null | grep "pid=$server_pid," | grep -o '127.0.0.1:[0-9]*' | cut -d: -f2 | head -1)
    [[ -n $port ]] && break
    sleep 0.1
  done
  local scheme=https
  [[ " $* " == *" --no-tls "* ]] && scheme=http
  url=$scheme://127.0.0.1:$port
  auth=$(/usr/bin/python3 -c 'import json,sys,base64; k=json.load(open(sys.argv[1])); print(base64.b64encode((k["accessKey"]+":"+k["secretKey"]).encode()).decode())' "$work/$name/admin-key.json")
}

seed() {  # 1,000 tokens through the API
  /usr/bin/python3 - "$url" "$auth" <<'PY'
import sys, json, urllib.request, ssl
url, auth = sys.argv[1], sys.argv[2]
ctx = ssl._create_unverified_context()
for i in range(1000):
    req = urllib.request.Request(url + "/v1/projects/1p1/registrationTokens", data=json.dumps({"name": f"t{i}"}).encode(),
                                 headers={"Authorization": "Basic " + auth}, method="POST")
    urllib.request.urlopen(req, context=ctx).read()
PY
}

# The server's CPU time so far, in clock ticks (utime + stime).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
clk_tck=$(getconf CLK_TCK)

# bench LABEL wrk-args…: one wrk run, its rate and p99, and the server's CPU
# per request (steadier than the rate when wrk shares the server's cores).
bench() {
  local label=$1 out rps p99 requests before after
  shift
  before=$(cpu_ticks)
  out=$(wrk -t$threads -c$conns -d${seconds}s --latency -H "Authorization: Basic $auth" "$@")
  after=$(cpu_ticks)
  rps=$(grep -o 'Requests/sec: *[0-9.]*' <<<"$out" | grep -o '[0-9.]*$')
  p99=$(grep -E '^ +99%' <<<"$out" | awk '{print $2}')
  requests=$(grep -o '[0-9]* requests in' <<<"$out" | awk '{print $1}')
  printf '%-32s %10s req/s   p99 %-9s server %6.1f µs CPU/request\n' "$label" "$rps" "$p99" \
    "$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" 'BEGIN { print t * 1e6 / hz / n }')"
}

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"name":"bench"}'
wrk.headers["Content-Type"] = "application/json"
LUA

for mode in plain tls; do
  if [[ $mode == plain ]]; then run_server plain --no-tls; else run_server tls; fi
  seed
  one="$url/v1/projects/1p1/registrationTokens/1t500"
  bench "$mode GET one token" "$one"
  bench "$mode GET list limit=100" "$url/v1/registrationTokens?limit=100"
  bench "$mode POST token" -s "$work/post.lua" "$url/v1/projects/1p1/registrationTokens"
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
done
