#!/usr/bin/env bash
# Checking what a client asked, from a shell script: WireMock-style verification.
set -euo pipefail

coproc FAKE { exec etcd-discovery-fake --port 0; }
trap 'kill "$FAKE_PID" 2>/dev/null; wait "$FAKE_PID" || true' EXIT
read -r URL <&"${FAKE[0]}"

# A fault rule, named by the id the fake gives it: the first /new answers 503.
ID=$(curl -fsS -X POST "$URL/_fake/faults" -d '{"status": 503, "route": "new", "times": 1}' | jq .id)

# The client under test (here: curl, retrying once) asks for a token and registers.
TOKEN_URL=$(curl -fs --retry 1 --retry-delay 0 "$URL/new?size=1")
curl -fsS -o /dev/null -X PUT "$TOKEN_URL/infra0?prevExist=false" -d value=infra0=http://10.0.0.1:2380

# The rule fired once; delete it by its id.
curl -fsS "$URL/_fake/faults/$ID" | jq -c '{seen, fired}'
curl -fsS -o /dev/null -X DELETE "$URL/_fake/faults/$ID"

# Exactly one registration? The count, and the closest misses with why.
curl -fsS -X POST "$URL/_fake/calls/count" -d '{"method": "PUT", "route": "machine", "times": 1}' \
  | jq -c '{count, message}'
curl -fsS -X POST "$URL/_fake/calls/count" -d '{"method": "DELETE", "route": "machine"}' \
  | jq -r '.count, (.closest[] | "\(.call.method) \(.call.status): \(.missed | join("; "))")'

# The journal filtered on the server: the 5xx answers.
curl -fsS "$URL/_fake/calls?status=500-599" | jq -r '.calls[] | "\(.status) \(.path)"'
