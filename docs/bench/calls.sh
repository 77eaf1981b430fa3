#!/usr/bin/env bash
# Calls per second: SIPp (carrier) → system under test → SIPp (buyer), for
# Plugboard (the example scorer on every call, 10 static bids, and with
# POLICIES=all — the default — 10 bidder strategy modules and the example
# selector too) and for
# Kamailio as a plain stateful proxy (tm + rr), in the same run, with the
# same SIPp settings. Each rate runs STEP_S seconds of calls; the highest rate
# with zero failed calls counts. Then both run at half Plugboard's highest
# rate, and the carrier's INVITE → 200 OK time (the buyer's 5 ms included;
# SIPp measures in whole milliseconds) is reported for each, with the delay
# Plugboard reports itself (inbound INVITE handled → outbound INVITE sent,
# from its /metrics histogram; time spent in the socket's queue is not in it).
#
# Needs sipp, kamailio, curl, jq (apt-get install -y sip-tester kamailio jq).
# Then, under attack: another tenant's scorer spins to its deadline on every
# one of HOSTILE_RATE calls a second (default 100) while the carrier calls
# again at half the highest rate, and once at the highest rate.
# Usage: docs/bench/calls.sh   (RATES="500 1000 …", STEP_S=5, KAMAILIO_CHILDREN=1,
# SKIP_KAMAILIO=1, POLICIES=scorer, HOSTILE_RATE=0 — no attack —,
# TENANT_CPU_PERCENT=25 — each tenant's share of policy CPU —,
# BUYER_TRANSPORT=tcp — both systems reach the buyer over TCP — and KEEP=1
# — keep the logs — change what it does)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RATES=${RATES:-"250 500 750 1000 1250 1500 1750 2000 2500 3000 3500 4000"}
STEP_S=${STEP_S:-5}
KAMAILIO_CHILDREN=${KAMAILIO_CHILDREN:-1}
# Each call is answered, held HOLD_MS, hung up (0 lets a multi-worker proxy
# reorder the ACK and the BYE it relays, which SIPp counts as a failed call).
HOLD_MS=${HOLD_MS:-20}
HTTP_PORT=18081 PB_PORT=15060 KAM_PORT=15062 BUYER_PORT=15070 CARRIER_PORT=15061
SIPP_COMMON=(-i 127.0.0.1 -nostdin -buff_size 16777216 -max_recv_loops 5000 -max_sched_loops 5000)

cargo build --quiet --release -p host --bin plugboard
cargo xtask policies > /dev/null 2>&1
cargo xtask guests > /dev/null 2>&1
HOSTILE_RATE=${HOSTILE_RATE:-100}
HOSTILE_PORT=15063
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

# The buyer: SIPp answers every call (180, 5 ms, 200) and takes the BYE.
BUYER_TRANSPORT=${BUYER_TRANSPORT:-udp}
BUYER_SIPP=() TARGET_PARAMS="" KAM_TCP=()
if [ "$BUYER_TRANSPORT" = tcp ]; then
  BUYER_SIPP=(-t t1) TARGET_PARAMS=";transport=tcp"
  KAM_TCP=(-e "s/disable_tcp=yes/disable_tcp=no/" -e 's/"sip:BUYER"/"sip:BUYER;transport=tcp"/'
    -e 's/^listen=udp:KAMAILIO_LISTEN$/listen=udp:KAMAILIO_LISTEN\nlisten=tcp:KAMAILIO_LISTEN/')
fi
sipp -sf docs/bench/buyer.xml "${SIPP_COMMON[@]}" "${BUYER_SIPP[@]}" -p $BUYER_PORT > "$WORK/buyer.out" 2>&1 &
PIDS+=($!)

# Plugboard, set up as in docs/quickstart.md, with ten bids.
OP=$(target/release/plugboard admin bootstrap --data-dir "$WORK/pb")
# TENANT_CPU_PERCENT sets tenant_policy_cpu_percent (100: no tenant is held
# to less than the whole node).
# The whole load comes from one carrier address, so its INVITE rate limit
# (sip_invite_rate, default 2,000/s with bursts of twice that) is raised
# past the highest rate tried; otherwise the ramp measures the limit.
cat > "$WORK/plugboard.toml" <<EOF
tenant_policy_cpu_percent = ${TENANT_CPU_PERCENT:-25}
sip_invite_rate = 100000
EOF
target/release/plugboard serve --config "$WORK/plugboard.toml" --data-dir "$WORK/pb" \
  --http-listen 127.0.0.1:$HTTP_PORT --sip-listen 127.0.0.1:$PB_PORT \
  --example-policies /nonexistent 2> "$WORK/plugboard.log" &
PIDS+=($!)
PB_PID=$!
API=http://127.0.0.1:$HTTP_PORT/v1
until curl -sf http://127.0.0.1:$HTTP_PORT/healthz > /dev/null; do
  kill -0 $PB_PID 2>/dev/null || { cat "$WORK/plugboard.log"; exit 1; }
  sleep 0.1
done
post() { curl -sf -X "$1" "$API$2" -H "Authorization: Bearer $3" -H 'Content-Type: application/json' -d "$4"; }
# Uploads <file> (in target/policies unless a path) as a <world> policy of
# key <key> and makes it active; prints its id.
deploy() {
  local upload file=$3
  [[ $file == */* ]] || file=target/policies/$file
  upload=$(curl -sf -X POST "$API/policies?world=$1" -H "Authorization: Bearer $2" \
    --data-binary @"$file")
  post PUT "/policies/$(echo "$upload" | jq -r .id)/deployment" "$2" \
    "{\"active\":\"$(echo "$upload" | jq -r .version)\"}" > /dev/null
  echo "$upload" | jq -r .id
}
MK=$(post POST /tenants "$OP" '{"name":"acme","role":"marketer"}' | jq -r .api_key)
BK=$(post POST /tenants "$OP" '{"name":"buyer","role":"bidder"}' | jq -r .api_key)
CID=$(post POST /campaigns "$MK" '{"name":"solar","numbers":["+18005550100"]}' | jq -r .id)
# The buyer is a load generator: when it drops calls at an overloaded
# step, pausing its targets (three misses in a row, for five minutes) would
# refuse every later call with 480 and measure nothing, so they never pause.
BID=$(post POST /bidders "$BK" '{"name":"Buyer"}' | jq -r .id)
for i in $(seq 1 10); do
  TID=$(post POST "/bidders/$BID/targets" "$BK" \
    "{\"uri\":\"sip:sales$i@127.0.0.1:$BUYER_PORT$TARGET_PARAMS\",\"ring_timeout_s\":20,\"max_concurrent\":100000,\"miss_limit\":0}" | jq -r .id)
  post POST /bids "$BK" "{\"campaign_id\":\"$CID\",\"target_id\":\"$TID\",\"amount_micros\":${i}000000,\"min_quality\":0,\"min_duration_s\":0}" > /dev/null
done
POLICY=$(deploy scorer "$MK" geo-history-scorer.wasm)
post PATCH "/campaigns/$CID" "$MK" "{\"scorer_policy_id\":\"$POLICY\"}" > /dev/null
POLICIES=${POLICIES:-all}
if [ "$POLICIES" = all ]; then
  # Ten bidders bidding through the example strategy module (one upload),
  # each with its own target, and the example selector on the campaign.
  MODULE=$(deploy bidder "$BK" state-hour-bidder.wasm)
  for i in $(seq 1 10); do
    MB=$(post POST /bidders "$BK" "{\"name\":\"Module $i\",\"strategy_policy_id\":\"$MODULE\"}" | jq -r .id)
    post POST "/bidders/$MB/targets" "$BK" \
      "{\"uri\":\"sip:module$i@127.0.0.1:$BUYER_PORT$TARGET_PARAMS\",\"ring_timeout_s\":20,\"max_concurrent\":100000,\"miss_limit\":0}" > /dev/null
  done
  SELECTOR=$(deploy selector "$MK" answer-rate-selector.wasm)
  post PATCH "/campaigns/$CID" "$MK" "{\"selector_policy_id\":\"$SELECTOR\"}" > /dev/null
fi
# The hostile tenant: its scorer spins to its deadline on every call to
# its number (the test guest does so for +18005550666); no bids, so 480.
HK=$(post POST /tenants "$OP" '{"name":"mallory","role":"marketer"}' | jq -r .api_key)
SPINNER=$(deploy scorer "$HK" target/test-guests/hostile-scorer.wasm)
post POST /campaigns "$HK" "{\"name\":\"spin\",\"numbers\":[\"+18005550666\"],\"scorer_policy_id\":\"$SPINNER\"}" > /dev/null
[ -n "${SETUP_ONLY:-}" ] && { echo "plugboard pid $PB_PID"; sleep 100000; }

# Kamailio with the same buyer.
sed "${KAM_TCP[@]}" -e "s/KAMAILIO_LISTEN/127.0.0.1:$KAM_PORT/g" -e "s/BUYER/127.0.0.1:$BUYER_PORT/" \
  -e "s/CHILDREN/$KAMAILIO_CHILDREN/" docs/bench/kamailio.cfg > "$WORK/kamailio.cfg"
kamailio -f "$WORK/kamailio.cfg" -DD -E -m 512 -M 64 -P "$WORK/kamailio.pid" > "$WORK/kamailio.log" 2>&1 &
PIDS+=($!)
sleep 1

# One step: STEP_S seconds of calls at `rate` to `target`; true if none
# failed. More arguments go to SIPp.
step() {
  local target=$1 rate=$2
  shift 2
  local calls=$((rate * STEP_S))
  sipp -sf "$ROOT/tests/data/sipp/caller_hangs_up.xml" "${SIPP_COMMON[@]}" -p $CARRIER_PORT \
    -key caller +14155550123 -s +18005550100 -r "$rate" -m "$calls" -l $((rate * 4)) -d "$HOLD_MS" \
    -timeout $((STEP_S + 40))s -timeout_error "$@" "$target" > "$WORK/carrier.out" 2>&1
}

# One step at `rate` to `target`, SIPp writing each call's INVITE → 200 OK
# time; prints their p50 and p99.
answer_times() {
  rm -f "$WORK"/caller_hangs_up_*_rtt.csv
  (cd "$WORK" && step "$1" "$2" -trace_rtt -rtt_freq 100) || echo -n "(calls failed) "
  python3 - "$WORK"/caller_hangs_up_*_rtt.csv <<'PY'
import os, sys
# SIPp writes no file when no call completed (the glob stays as it is).
lines = open(sys.argv[1]).readlines()[1:] if os.path.exists(sys.argv[1]) else []
times = sorted(float(line.split(';')[1]) for line in lines)
q = lambda p: times[min(len(times) - 1, int(len(times) * p))]
print(f"calls={len(times)} p50={q(0.5):.0f}ms p99={q(0.99):.0f}ms" if times else "no call completed")
PY
}

# The highest rate of RATES with no failed call.
ramp() {
  local target=$1 best=0
  for rate in $RATES; do
    if step "$target" "$rate"; then best=$rate; else break; fi
    sleep 1
  done
  echo "$best"
}

# p50 and p99 of a histogram from two /metrics scrapes: the upper bound of
# the bucket where each falls.
quantiles() {
  python3 - "$1" "$2" <<'PY'
import re, sys
def buckets(path):
    out = {}
    for line in open(path):
        m = re.match(r'plugboard_post_dial_delay_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out
before, after = buckets(sys.argv[1]), buckets(sys.argv[2])
delta = [(float(le) if le != "+Inf" else float("inf"), after[le] - before.get(le, 0)) for le in after]
delta.sort()
total = delta[-1][1]
def q(p):
    for le, count in delta:
        if count >= p * total:
            return le * 1000
print(f"calls={total} p50<={q(0.5):.2f}ms p99<={q(0.99):.2f}ms")
PY
}

echo "ramping Plugboard (127.0.0.1:$PB_PORT) …"
PB_BEST=$(ramp 127.0.0.1:$PB_PORT)
KAM_BEST=0
if [ -z "${SKIP_KAMAILIO:-}" ]; then
  echo "ramping Kamailio (127.0.0.1:$KAM_PORT, children=$KAMAILIO_CHILDREN) …"
  KAM_BEST=$(ramp 127.0.0.1:$KAM_PORT)
fi
HALF=$((PB_BEST / 2))
curl -sf -H "Authorization: Bearer $OP" http://127.0.0.1:$HTTP_PORT/metrics > "$WORK/before.txt"
PB_ANSWER=$(answer_times 127.0.0.1:$PB_PORT "$HALF")
curl -sf -H "Authorization: Bearer $OP" http://127.0.0.1:$HTTP_PORT/metrics > "$WORK/after.txt"
PDD=$(quantiles "$WORK/before.txt" "$WORK/after.txt")
KAM_ANSWER=skipped
[ -z "${SKIP_KAMAILIO:-}" ] && KAM_ANSWER=$(answer_times 127.0.0.1:$KAM_PORT "$HALF")

# The same at half the highest rate, and a step at the highest, while the
# hostile tenant's calls arrive from another carrier.
attack() {
  sipp -sf "$ROOT/tests/data/sipp/caller_refused.xml" "${SIPP_COMMON[@]}" -p $HOSTILE_PORT \
    -key caller +14155550199 -s +18005550666 -r "$HOSTILE_RATE" -m $((HOSTILE_RATE * (STEP_S + 3))) \
    -timeout $((STEP_S + 40))s 127.0.0.1:$PB_PORT > "$WORK/hostile.out" 2>&1 &
  ATTACKER=$!
  sleep 1
}
# Policy runs the host did not make because their tenant's share of CPU was
# spent: the hostile scorer's, and every other policy's.
cpu_share_skips() {
  curl -sf -H "Authorization: Bearer $OP" http://127.0.0.1:$HTTP_PORT/metrics | python3 -c '
import sys
spinner, hostile, others = sys.argv[1], 0, 0
for line in sys.stdin:
    if line.startswith("plugboard_policy_invocations_total{") and "outcome=\"cpu_share\"" in line:
        count = int(float(line.rsplit(" ", 1)[1]))
        if "policy=\"%s\"" % spinner in line:
            hostile += count
        else:
            others += count
print("the hostile scorer %d, every other policy %d" % (hostile, others))' "$SPINNER"
}
ATTACKED_ANSWER=skipped ATTACKED_BEST=skipped
SKIPS_CALM=$(cpu_share_skips)
if [ "$HOSTILE_RATE" -gt 0 ]; then
  sleep 1
  PB_CALM=$(answer_times 127.0.0.1:$PB_PORT "$HALF")
  sleep 1
  attack
  ATTACKED_ANSWER=$(answer_times 127.0.0.1:$PB_PORT "$HALF")
  wait $ATTACKER || true
  sleep 1
  attack
  if step 127.0.0.1:$PB_PORT "$PB_BEST"; then ATTACKED_BEST=passed; else ATTACKED_BEST=failed; fi
  wait $ATTACKER || true
fi
SKIPS_END=$(cpu_share_skips)
# utime + stime, in clock ticks, from /proc (ps rounds to whole seconds).
CPU=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f s", ($14 + $15) / hz }' /proc/$PB_PID/stat)
# What the records of the run hold: the whole record and the policies'
# inputs kept for replay, in bytes of JSON, over the last page of calls.
SIZES=$(curl -sf -H "Authorization: Bearer $OP" "http://127.0.0.1:$HTTP_PORT/v1/calls?campaign_id=$CID&limit=100" | python3 -c '
import json, sys
calls = json.load(sys.stdin)["calls"]
sizes = lambda pick: sorted(len(json.dumps(pick(c), separators=(",", ":"))) for c in calls)
whole, inputs = sizes(lambda c: c), sizes(lambda c: c.get("inputs"))
mid = lambda v: v[len(v) // 2] if v else 0
print("%d records: whole %d B median, %d max; inputs %d B median, %d max" % (len(calls), mid(whole), whole[-1] if whole else 0, mid(inputs), inputs[-1] if inputs else 0))')
echo
echo "highest rate with zero failed calls (steps of ${STEP_S}s: $RATES)"
echo "  plugboard  $PB_BEST calls/s  (policies: $POLICIES)"
echo "  kamailio   $KAM_BEST calls/s  (tm + rr, children=$KAMAILIO_CHILDREN)"
python3 -c "print('  ratio      %.2fx' % ($PB_BEST / max($KAM_BEST, 1)))"
echo "INVITE → 200 OK at the carrier at $HALF calls/s (the buyer answers after 5 ms):"
echo "  plugboard  $PB_ANSWER"
echo "  kamailio   $KAM_ANSWER"
echo "post-dial delay Plugboard reports at $HALF calls/s: $PDD"
echo "another tenant's scorer spinning to its deadline on $HOSTILE_RATE calls/s:"
echo "  INVITE → 200 OK at $HALF calls/s, without: ${PB_CALM:-skipped}"
echo "  INVITE → 200 OK at $HALF calls/s, with:    $ATTACKED_ANSWER"
echo "  $PB_BEST calls/s with zero failed calls, with: $ATTACKED_BEST"
echo "policy runs skipped for a spent CPU share, before the attack: $SKIPS_CALM"
echo "  and after it: $SKIPS_END"
echo "plugboard CPU time over the run: $CPU"
echo "call records: $SIZES"
