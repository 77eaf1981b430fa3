#!/usr/bin/env bash
# The quickstart of docs/quickstart.md as one script, against a running
# `plugboard serve`: a marketer with a campaign and the example scorer, a
# buyer with a target and a bid, SIPp calls routed to the buyer, and the
# call records read back. Needs curl, python3 and sipp.
#
#   K=<operator key> docs/quickstart.sh
#
# PB_HTTP (http://127.0.0.1:8080), PB_SIP (127.0.0.1:5060), BUYER_PORT (5070),
# CALLS (3) and HOLD_MS (2000) change the defaults.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
API=${PB_HTTP:-http://127.0.0.1:8080}/v1
SIP=${PB_SIP:-127.0.0.1:5060}
BUYER_PORT=${BUYER_PORT:-5070}
CALLS=${CALLS:-3}
HOLD_MS=${HOLD_MS:-2000}
SCORER=${SCORER:-$ROOT/target/policies/geo-history-scorer.wasm}
: "${K:?set K to the operator key that plugboard admin bootstrap printed}"

field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
call() { # method key path [curl args...]
  local method=$1 key=$2 path=$3
  shift 3
  curl -sS --fail-with-body -X "$method" -H "Authorization: Bearer $key" "$@" "$API$path"
}
json() { call "$1" "$2" "$3" -H 'Content-Type: application/json' -d "$4"; }

echo "== tenants"
MARKETER=$(json POST "$K" /tenants '{"name": "acme", "role": "marketer"}' | field api_key)
BUYER=$(json POST "$K" /tenants '{"name": "buyer1", "role": "bidder"}' | field api_key)

echo "== campaign, buyer, target, bid"
CAMPAIGN=$(json POST "$MARKETER" /campaigns '{"name": "solar", "numbers": ["+18005550100"]}' | field id)
BIDDER=$(json POST "$BUYER" /bidders '{"name": "Buyer One"}' | field id)
TARGET=$(json POST "$BUYER" "/bidders/$BIDDER/targets" \
  "{\"uri\": \"sip:sales@127.0.0.1:$BUYER_PORT\", \"ring_timeout_s\": 20, \"max_concurrent\": 10}" | field id)
json POST "$BUYER" /bids "{\"campaign_id\": \"$CAMPAIGN\", \"target_id\": \"$TARGET\",
  \"amount_micros\": 25000000, \"min_quality\": 0, \"min_duration_s\": 90}" > /dev/null

echo "== scorer"
UPLOAD=$(call POST "$MARKETER" "/policies?world=scorer" --data-binary "@$SCORER")
POLICY=$(echo "$UPLOAD" | field id)
VERSION=$(echo "$UPLOAD" | field version)
json PUT "$MARKETER" "/policies/$POLICY/deployment" \
  "{\"active\": \"$VERSION\", \"canary\": null, \"shadow\": null}" > /dev/null
json PATCH "$MARKETER" "/campaigns/$CAMPAIGN" "{\"scorer_policy_id\": \"$POLICY\"}" > /dev/null

echo "== $CALLS calls: SIPp as the carrier, SIPp as the buyer on port $BUYER_PORT"
LOGS=$(mktemp -d)
sipp -sn uas -i 127.0.0.1 -p "$BUYER_PORT" -m "$CALLS" -nostdin -timeout 60s \
  > "$LOGS/buyer.out" 2>&1 &
BUYER_PID=$!
sleep 0.5
sipp -sf "$ROOT/tests/data/sipp/caller_hangs_up.xml" -key caller +14155550123 \
  -s +18005550100 -i 127.0.0.1 -m "$CALLS" -d "$HOLD_MS" -nostdin -timeout 60s \
  -timeout_error "$SIP" > "$LOGS/carrier.out" 2>&1 || {
  echo "SIPp's calls failed; see $LOGS" >&2
  exit 1
}
wait "$BUYER_PID" || true
echo "all $CALLS calls completed"

echo "== the call records (GET /v1/calls?campaign_id=$CAMPAIGN)"
sleep 0.5
call GET "$MARKETER" "/calls?campaign_id=$CAMPAIGN" | python3 -c "
import json, sys
calls = json.load(sys.stdin)['calls']
for c in calls:
    winner = (c['winner'] or {}).get('bid_id')
    print(c['id'], 'outcome=%s quality=%s winner=%s duration_s=%s billable=%s payout_micros=%s tags=%s' % (
        c['outcome'], c['quality'], winner, c['duration_s'], c['billable'], c['payout_micros'],
        ','.join(c['trace']['tags'])))
print(len(calls), 'calls')
"
