#!/usr/bin/env bash
# A script that calls https://discovery.etcd.io itself, pointed at the fake by --env-file.
set -euo pipefail
dir=$(mktemp -d)

coproc FAKE { exec etcd-discovery-fake --port 0 --env-file "$dir/fake.env"; }
trap 'kill "$FAKE_PID" 2>/dev/null; wait "$FAKE_PID" || true; rm -rf "$dir"' EXIT
read -r URL <&"${FAKE[0]}"  # printed once the env file is written
set -a; . "$dir/fake.env"; set +a  # proxy variables and the test CA, for curl and others

TOKEN_URL=$(curl -fsS "https://discovery.etcd.io/new?size=3")
echo "${TOKEN_URL%/*}"
curl -fsS "$TOKEN_URL/_config/size" | grep -o '"value":"[^"]*"'
