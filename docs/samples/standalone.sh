#!/usr/bin/env bash
# The fake from a shell script; any language with an HTTP client works the same way.
set -euo pipefail

# Start the fake on a free port; it prints its base URL once it accepts connections.
coproc FAKE { exec etcd-discovery-fake --port 0; }
trap 'kill "$FAKE_PID" 2>/dev/null; wait "$FAKE_PID" || true' EXIT
read -r URL <&"${FAKE[0]}"

# The seed workflow: a token, two members registering, the token read back.
TOKEN_URL=$(curl -fsS "$URL/new?size=2")
for n in 0 1; do
  curl -fsS -o /dev/null -X PUT "$TOKEN_URL/infra$n?prevExist=false" \
       -d "value=infra$n=http://10.0.0.$((n + 1)):2380"
done
curl -fsS "$TOKEN_URL" | grep -o '"value":"[^"]*"'

# Registering the same member again is refused as etcd refuses it: 412, error 105.
curl -sS -o /dev/null -w '%{http_code}\n' -X PUT "$TOKEN_URL/infra0?prevExist=false" \
     -d value=x
