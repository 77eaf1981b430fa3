#!/usr/bin/env bash
# HTTP API load: a release `plugboard serve` on a temporary data directory,
# a campaign with a pool of 1,000 numbers, and wrk driving one of
#   MODE=renew  DNI requests renewing visitor sessions (docs/bench/dni.lua)
#   MODE=new    DNI requests from new visitors (assigned, then exhausted)
#   MODE=read   GET /v1/campaigns/{id}, an authenticated read
# Needs wrk and jq (apt-get install -y wrk jq).
# Usage: MODE=renew docs/bench/api.sh [connections] [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNECTIONS=${1:-64}
SECONDS_=${2:-10}
PORT=18090
cargo build --quiet --release -p host --bin plugboard
DATA=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
OP=$(target/release/plugboard admin bootstrap --data-dir "$DATA")
target/release/plugboard serve --data-dir "$DATA" --http-listen 127.0.0.1:$PORT --sip-listen 127.0.0.1:0 --example-policies /nonexistent 2>/dev/null &
SERVER=$!
PB=http://127.0.0.1:$PORT
until curl -sf $PB/healthz >/dev/null; do sleep 0.1; done
MK=$(curl -s -X POST $PB/v1/tenants -H "Authorization: Bearer $OP" -H 'Content-Type: application/json' \
  -d '{"name":"acme","role":"marketer"}' | jq -r .api_key)
CID=$(curl -s -X POST $PB/v1/campaigns -H "Authorization: Bearer $MK" -H 'Content-Type: application/json' \
  -d '{"name":"solar","numbers":["+18005550100"]}' | jq -r .id)
NUMBERS=$(python3 -c 'import json; print(json.dumps(["+1800556%04d" % i for i in range(1000)]))')
curl -s -X PUT $PB/v1/campaigns/$CID/pool -H "Authorization: Bearer $MK" -H 'Content-Type: application/json' \
  -d "{\"numbers\": $NUMBERS, \"ttl_s\": 1800}" >/dev/null
case "${MODE:-renew}" in
  read)
    wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_}s" --latency -H "Authorization: Bearer $MK" $PB/v1/campaigns/$CID ;;
  new|renew)
    DNI_MODE=${MODE:-renew} PB_KEY=$MK wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_}s" --latency \
      -s docs/bench/dni.lua $PB/v1/campaigns/$CID/dni-sessions ;;
  *) echo "MODE must be renew, new or read" >&2; exit 2 ;;
esac
curl -s $PB/metrics | grep '^plugboard_dni_assignments_total'
