#!/usr/bin/env bash
# A provisioning script of the classic CoreOS kind, in plain shell: curl and jq.
#
#   provision.sh new SIZE                   print a new discovery token URL for SIZE members
#   provision.sh register TOKEN NAME PEER   register NAME as etcd 0.4 did (7-day TTL)
#   provision.sh members TOKEN              print the registered member names, oldest first
#                                           (etcd 3.x: name=url values; etcd 0.4: the key)
#
# DISCOVERY_URL (default https://discovery.etcd.io) is the service; requests that fail
# with a 5xx or no answer are retried RETRIES times (default 5), RETRY_DELAY seconds apart.
set -euo pipefail

DISCOVERY_URL="${DISCOVERY_URL:-https://discovery.etcd.io}"
RETRIES="${RETRIES:-5}"
RETRY_DELAY="${RETRY_DELAY:-1}"
V04_TTL=604800

die() { echo "provision: $*" >&2; exit 1; }
# fail BODYFILE MESSAGE: die with the message and the start of the reply's body.
fail() { local text; text="$(head -c 200 "$1" | tr -d '\n')"; rm -f "$1"; die "$2 $text"; }

# request METHOD URL [curl args...]: the body on stdout; retries 5xx and dropped connections.
request() {
  local method="$1" url="$2" attempt=1 status body
  shift 2
  body="$(mktemp)"
  while true; do
    status="$(curl -sS --max-time 10 -o "$body" -w '%{http_code}' -X "$method" "$@" "$url" 2>/dev/null)" || status=000
    case "$status" in
      2??) cat "$body"; rm -f "$body"; return 0 ;;
      5??|000)
        if [ "$attempt" -ge "$RETRIES" ]; then
          fail "$body" "$method $url: still failing after $attempt attempts, last: $status"
        fi
        echo "provision: $method $url: $status, retrying ($attempt/$RETRIES)" >&2
        attempt=$((attempt + 1))
        sleep "$RETRY_DELAY"
        ;;
      *) fail "$body" "$method $url: $status" ;;
    esac
  done
}

cmd_new() {
  local size="${1:?usage: provision.sh new SIZE}" url
  url="$(request GET "$DISCOVERY_URL/new?size=$size")"
  case "$url" in
    "$DISCOVERY_URL"/*) echo "$url" ;;
    *) die "/new handed out a foreign URL: $url" ;;
  esac
}

cmd_register() {
  local token="${1:?usage: provision.sh register TOKEN NAME PEER}" name="${2:?}" peer="${3:?}"
  request PUT "$token/$name" --data-urlencode "value=$peer" --data "ttl=$V04_TTL" >/dev/null
}

cmd_members() {
  local token="${1:?usage: provision.sh members TOKEN}"
  request GET "$token" | jq -r '[.node.nodes // [] | .[] | select(.dir | not)]
    | sort_by(.createdIndex) | .[]
    | (.value | split(",")[0]) as $first
    | if ($first | contains("=")) then ($first | split("=")[0]) else (.key | split("/") | last) end'
}

case "${1:-}" in
  new | register | members) cmd="cmd_$1"; shift; "$cmd" "$@" ;;
  *) die "usage: provision.sh new SIZE | register TOKEN NAME PEER | members TOKEN" ;;
esac
