#!/usr/bin/env bash
# Tests for provision.sh against the fake discovery service, in plain shell.
#
# Starts `etcd-discovery-fake --port 0`, reads the URL it prints once it listens, seeds
# and inspects it through its control API (/_fake/...), moves its clock past the 7-day
# TTL of an etcd 0.4 registration, injects a 503 outage to check the script's retries
# (a fault rule added and deleted by its id, the requests counted with /_fake/calls/count),
# then stops it. Needs bash, curl and jq. FAKE overrides the command that starts the fake.
set -euo pipefail
cd "$(dirname "$0")"

if [ -n "${FAKE:-}" ]; then
  read -r -a fake_cmd <<<"$FAKE"
elif command -v etcd-discovery-fake >/dev/null 2>&1; then
  fake_cmd=(etcd-discovery-fake)
else
  fake_cmd=(python3 -m pytest_etcd_discovery)
fi

failures=0
log="$(mktemp)"
check() { # check DESCRIPTION EXPECTED ACTUAL
  if [ "$2" == "$3" ]; then
    echo "ok   - $1"
  else
    echo "FAIL - $1: expected [$2], got [$3]"
    failures=$((failures + 1))
  fi
}

# The fake prints its base URL as its first line once it accepts connections.
coproc FAKE_PROC { exec "${fake_cmd[@]}" --port 0; }
fake_pid=$FAKE_PROC_PID
trap 'kill -TERM "$fake_pid" 2>/dev/null || true; rm -f "$log"' EXIT
read -r -t 30 -u "${FAKE_PROC[0]}" URL || { echo "the fake printed no URL" >&2; exit 1; }
echo "# fake at $URL (pid $fake_pid)"

# control METHOD PATH [JSON]: a control-API call; its JSON answer on stdout.
control() {
  curl -sS --fail-with-body -X "$1" "$URL/_fake/$2" ${3:+--data "$3"}
}

export DISCOVERY_URL="$URL" RETRIES=4 RETRY_DELAY=0.1

echo "# seeding and inspecting"
check "the control API is up" "ok" "$(control GET health | jq -r .status)"
seeded="$(control POST tokens '{"size": 3, "members": ["infra0"], "state": "started"}')"
token_url="$(jq -r .url <<<"$seeded")"
check "a seeded token lists its member" "infra0" "$(./provision.sh members "$token_url" | paste -sd,)"
new_url="$(./provision.sh new 5)"
check "new hands out a token on the service" "$URL/" "${new_url%/*}/"
check "the control API sees its size" "5" \
  "$(control GET tokens | jq -r --arg u "$new_url" '.tokens[] | select(.url == $u) | .size')"

echo "# a 7-day registration expires when the clock moves 7 days"
control POST clock/freeze >/dev/null
./provision.sh register "$new_url" node1 http://10.0.0.1:7001
./provision.sh register "$new_url" node2 http://10.0.0.2:7001
check "both machines registered" "node1,node2" "$(./provision.sh members "$new_url" | paste -sd,)"
check "with the full TTL left" "604800,604800" \
  "$(control GET tokens | jq -r --arg u "$new_url" \
    '[.tokens[] | select(.url == $u) | .members[].ttl] | join(",")')"
control POST clock/advance '{"seconds": 604799}' >/dev/null
check "one second before the TTL they are still there" "2" \
  "$(./provision.sh members "$new_url" | wc -l | tr -d ' ')"
control POST clock/advance '{"seconds": 1}' >/dev/null
check "at the TTL they are gone" "" "$(./provision.sh members "$new_url")"
check "a bad advance is a 400 with a message" "seconds must be >= 0 (a clock cannot go back), got -5" \
  "$(curl -sS -X POST "$URL/_fake/clock/advance" --data '{"seconds": -5}' | jq -r .message)"

echo "# a 503 outage: the script retries"
outage_id="$(control POST faults '{"status": 503, "route": "new", "times": 2}' | jq .id)"
since="$(control GET calls | jq .next)"
retried_url="$(./provision.sh new 3 2>"$log")"
check "new succeeds after the outage" "$URL/" "${retried_url%/*}/"
check "after two retries" "2" "$(grep -c retrying "$log")"
check "the fault fired twice" "3 2" "$(control GET "faults/$outage_id" | jq -r '"\(.seen) \(.fired)"')"
check "the journal shows the outage" "503,503,200" \
  "$(control GET "calls?since=$since" | jq -r '[.calls[].status] | join(",")')"
check "the journal filters on the server" "503,503" \
  "$(control GET "calls?since=$since&route=new&status=500-599" | jq -r '[.calls[].status] | join(",")')"
counted="$(control POST calls/count "{\"route\": \"new\", \"status\": 503, \"since\": $since, \"times\": 2}")"
check "the count endpoint counts the two 503s" "2 null" "$(jq -r '"\(.count) \(.message)"' <<<"$counted")"
check "and names the closest miss and why" "status 200, not 503" \
  "$(jq -r '.closest[0].missed | join("; ")' <<<"$counted")"
control DELETE "faults/$outage_id" >/dev/null
check "deleting the rule by its id leaves none" "0" "$(control GET faults | jq '.faults | length')"
check "a deleted id is a 404" "404" \
  "$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$URL/_fake/faults/$outage_id")"
control POST faults '{"status": 503, "route": "new"}' >/dev/null
if ./provision.sh new 3 2>"$log"; then status=0; else status=$?; fi
check "a lasting outage makes the script fail" "1" "$status"
check "after RETRIES attempts" "provision: GET $URL/new?size=3: still failing after 4 attempts, last: 503 Service Unavailable" \
  "$(tail -1 "$log")"

echo "# reset"
control POST reset >/dev/null
check "reset leaves no token" "0" "$(control GET tokens | jq '.tokens | length')"
check "and no fault" "0" "$(control GET faults | jq '.faults | length')"

kill -TERM "$fake_pid"
wait "$fake_pid" && stopped=0 || stopped=$?
trap - EXIT
rm -f "$log"
check "the fake stops cleanly on SIGTERM" "0" "$stopped"

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
