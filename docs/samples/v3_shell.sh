#!/usr/bin/env bash
# etcd 3.6 v3 discovery from a shell suite: the command's etcd v3 API, driven over HTTP.
set -euo pipefail

coproc FAKE { exec etcd-discovery-fake --port 0 --v3-port 0; }
trap 'kill "$FAKE_PID" 2>/dev/null; wait "$FAKE_PID" || true' EXIT
read -r URL <&"${FAKE[0]}"
V3="$URL/_fake/v3"

# A token for two members: etcd's --discovery-endpoints and --discovery-token values.
TOKEN=$(curl -fsS -X POST "$V3/tokens" -d '{"size": 2, "token": "demo"}')
ENDPOINTS=$(jq -r .endpoints <<<"$TOKEN")
export ETCDCTL_API=3
etcdctl --endpoints "$ENDPOINTS" get --print-value-only /_etcd/registry/demo/_config/size

# Two members register (as etcd 3.6 does); a third finds the cluster full: 409.
for n in 0 1 2; do
  curl -sS -o /dev/null -w '%{http_code}\n' -X POST "$V3/tokens/demo/members" \
    -d "{\"name\": \"m$n\", \"peer_urls\": \"http://10.0.0.$n:2380\"}"
done
curl -fsS "$V3/tokens/demo" | jq -r .initial_cluster

# A fault rule: the next Range answers a gRPC status; then it has fired once.
ID=$(curl -fsS -X POST "$V3/faults" \
  -d '{"action": "fail", "code": "FAILED_PRECONDITION", "method": "Range", "times": 1}' | jq .id)
etcdctl --endpoints "$ENDPOINTS" get /_etcd/registry/demo/_config/size >/dev/null 2>&1 \
  || echo "etcdctl failed"
curl -fsS "$V3/faults/$ID" | jq -c '{fired}'

# The v3 journal: what the clients asked (the control API's own writes are not there).
curl -fsS "$V3/calls" | jq -r '.calls[] | "\(.method) \(.key) \(.code)"'

# A reset empties the v3 endpoint too.
curl -fsS -o /dev/null -X POST "$URL/_fake/reset"
curl -fsS "$V3/tokens" | jq '.tokens | length'
