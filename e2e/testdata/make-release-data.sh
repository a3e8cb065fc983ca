#!/usr/bin/env bash
# make-release-data.sh makes the replay fixture e2e/testdata/release-<commit>/:
# the data directory of a `nimbus dev` built from COMMIT, holding a Raft
# snapshot and log entries after it, and expect.json, what
# TestReplayOfReleaseData checks. Tests never run it: the fixture is made once per release, with
# the release's binary, and committed (see the fixture's README.md).
#
# Usage (from the repository, on a host where `nimbus dev` runs functions):
#   e2e/testdata/make-release-data.sh [COMMIT]      # default: HEAD
#
# It takes about a minute: it deploys, invokes and waits for dead letters
# and schedule fires like a user would. The admin token, keys and passwords in the
# fixture are test-only secrets.
set -euo pipefail

repo=$(git rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse --short=7 "${1:-HEAD}")
out="$repo/e2e/testdata/release-$commit"
work=$(mktemp -d /tmp/nimbus-release-data.XXXXXX)
data="$work/data"
trap 'status=$?; stop_dev || true; if [ $status = 0 ]; then rm -rf "$work"; else echo "failed; the node log is in $work/dev.err" >&2; fi' EXIT

log() { printf '%s %s\n' "$(date -u +%T)" "$*" >&2; }

# The release's binary, and the snapshot helper built against its packages.
mkdir "$work/src"
git -C "$repo" archive "$commit" | tar -x -C "$work/src"
mkdir -p "$work/src/cmd/release-snapshot"
cp "$repo/e2e/testdata/release-snapshot/main.go" "$work/src/cmd/release-snapshot/"
(cd "$work/src" && go build -o "$work/nimbus" ./cmd/nimbus && go build -o "$work/release-snapshot" ./cmd/release-snapshot)
bin="$work/nimbus"
nb() { "$bin" "$@"; }

dev_pid=""
start_dev() {
	: >"$work/dev.out"
	"$bin" dev --data "$data" --listen 127.0.0.1:0 --prestart 0 >"$work/dev.out" 2>>"$work/dev.err" &
	dev_pid=$!
	for _ in $(seq 600); do
		if url=$(grep -oE 'API: +http://[^ ]+' "$work/dev.out" | awk '{print $2}') && [ -n "$url" ]; then
			export NIMBUS_URL=$url NIMBUS_TOKEN
			NIMBUS_TOKEN=$(cat "$data/admin.token")
			until curl -fsS "$url/healthz" >/dev/null 2>&1; do sleep 0.1; done
			log "nimbus dev at $url"
			return
		fi
		sleep 0.1
	done
	echo "nimbus dev did not start" >&2
	cat "$work/dev.err" >&2
	exit 1
}
stop_dev() {
	[ -n "$dev_pid" ] || return 0
	kill -INT "$dev_pid"
	wait "$dev_pid" || true
	dev_pid=""
	log "nimbus dev stopped"
}

# api METHOD PATH [curl args...]: the REST API as the admin.
api() {
	local m=$1 p=$2
	shift 2
	curl -fsS -X "$m" -H "Authorization: Bearer $NIMBUS_TOKEN" "$@" "$NIMBUS_URL$p"
}

# until_true DESCRIPTION COMMAND...: polls COMMAND for up to 3 minutes.
until_true() {
	local what=$1
	shift
	for _ in $(seq 1800); do
		if "$@" >/dev/null 2>&1; then return; fi
		sleep 0.1
	done
	echo "timed out waiting until $what" >&2
	exit 1
}

# invoke NAME EVENT [NS]: a sync invocation; prints its request id.
invoke() {
	local ns=${3:-default}
	curl -fsS -o /dev/null -D - -X POST -H "Authorization: Bearer $NIMBUS_TOKEN" -H "X-Nimbus-Namespace: $ns" \
		-H 'Content-Type: application/json' --data "$2" "$NIMBUS_URL/v1/functions/$1/invoke" |
		tr -d '\r' | awk -F': ' 'tolower($1)=="x-nimbus-request-id"{print $2}'
}

record_status() { api GET "/v1/invocations/$1" | jq -r .status; }
is_status() { [ "$(record_status "$1")" = "$2" ]; }
dead_letters() { api GET /v1/deadletters | jq -r '.dead_letters[].request_id'; }
is_dead_letter() { dead_letters | grep -qx "$1"; }
key_id() { printf '%s' "$1" | cut -d_ -f2; } # nimbus_<id>_<secret>
# login NAME PASSWORD FILE: logs in; FILE gets "<session cookie> <csrf token>".
login() {
	local body
	body=$(jq -n --arg n "$1" --arg p "$2" '{name: $n, password: $p}')
	curl -fsS -D "$3.headers" -o "$3.json" -H 'Content-Type: application/json' --data "$body" "$NIMBUS_URL/v1/login"
	echo "$(tr -d '\r' <"$3.headers" | sed -n 's/^[Ss]et-[Cc]ookie: nimbus_session=\([^;]*\).*/\1/p') $(jq -r .csrf_token "$3.json")" >"$3"
}
both_dead() { is_dead_letter "$dl1" && is_dead_letter "$dl2"; }
sink_ran() { api GET '/v1/invocations?function=sink' | jq -e '.invocations | map(select(.status == "success")) | length >= 1'; }
early_fired() { api GET /v1/schedules/early | jq -e '.fires >= 1'; }
ticker_fired_twice() { api GET /v1/schedules/ticker | jq -e '.fires >= 2'; }

# --- function sources ---------------------------------------------------
fn="$work/fn"
mkdir -p "$fn"
cp -r "$repo/examples/hello" "$fn/hello"
cp -r "$repo/examples/orders" "$fn/orders"
mkdir -p "$fn/flaky1" "$fn/flaky2" "$fn/notify" "$fn/sink" "$fn/tick" "$fn/gone" "$fn/later"
cat >"$fn/flaky1/main.py" <<'PY'
def handler(event, context):
    print(f"flaky rev 1 got {event}")
    raise RuntimeError("flaky is broken")
PY
printf 'retries: 0\n' >"$fn/flaky1/nimbus.yaml"
cat >"$fn/flaky2/main.py" <<'PY'
def handler(event, context):
    print(f"flaky rev 2 got {event}")
    return {"fixed": True, "event": event}
PY
printf 'retries: 0\n' >"$fn/flaky2/nimbus.yaml"
cat >"$fn/notify/main.py" <<'PY'
import os


def handler(event, context):
    print(f"notify {event} with {os.environ.get('CHANNEL')}")
    return {"notified": event, "channel": os.environ.get("CHANNEL")}
PY
cat >"$fn/notify/nimbus.yaml" <<'YAML'
memory: 192
timeout: 7s
env:
  CHANNEL: ops
retries: 1
retry_delay: 2s
max_event_age: 5m
destinations:
  on_success: function:sink
  on_failure: function:sink
YAML
cat >"$fn/sink/main.py" <<'PY'
def handler(event, context):
    print(f"sink got {sorted(event)}")
    return {"sink": sorted(event)}
PY
cat >"$fn/tick/main.py" <<'PY'
def handler(event, context):
    print(f"tick {event.get('id')}")
    return {"tick": event.get("id")}
PY
cat >"$fn/gone/main.py" <<'PY'
def handler(event, context):
    return "gone"
PY
cat >"$fn/later/main.py" <<'PY'
def handler(event, context):
    return {"later": event}
PY

# --- phase 1: the state the snapshot will hold ----------------------------
start_dev
secret=$(nb webhooks secret | tail -n1)
nb namespaces create team-a --concurrency 8 --scan-policy off
nb deploy "$fn/hello"                                  # hello rev 1
hello_r1=$(invoke hello '{"name":"rev1"}')
nb deploy "$fn/hello" --env GREETING=Howdy --memory 256 # hello rev 2
hello_r2=$(invoke hello '{"name":"rev2"}')
nb --namespace team-a deploy "$fn/orders" --reserved-concurrency 2
orders_r1=$(invoke orders "$(cat "$fn/orders/event.json")" team-a)
nb deploy "$fn/flaky1" --name flaky
nb deploy "$fn/sink"
nb deploy "$fn/notify"
nb deploy "$fn/gone"
nb deploy "$fn/tick"

dl1=$(nb invoke flaky --async --data '{"n":1}' | tail -n1)
dl2=$(nb invoke flaky --async --data '{"n":2}' | tail -n1)
notify_id=$(nb invoke notify --async --data '{"alert":"disk"}' | tail -n1)
until_true "flaky's events are dead letters" both_dead
until_true "notify completes" is_status "$notify_id" success
until_true "notify's destination (sink) runs" sink_ran

ci_token=$(nb --namespace team-a keys create --role developer --note "ci for team-a" | tail -n1)
old1_token=$(nb keys create --role viewer --note "revoked before the snapshot" | tail -n1)
old2_token=$(nb keys create --role viewer --note "revoked after the snapshot" | tail -n1)
nb keys revoke "$(key_id "$old1_token")"
printf 'Ada-Lovelace-1815\n' | nb users create ada --role admin --password-stdin
printf 'Vic-Viewer-2024\n' | nb users create vic --role viewer --namespace team-a --password-stdin
printf 'Tmp-User-2024\n' | nb users create tmp --role developer --password-stdin
login ada Ada-Lovelace-1815 "$work/ada.session"
sub1=$(nb subscriptions create --on dead_letter --function flaky --webhook http://127.0.0.1:9/nimbus-hook -o json | jq -r .id)
nb schedules create nightly --function hello --expression 'cron(0 3 * * ? *)' --timezone America/New_York --disabled
nb schedules create noon-paris --function hello --expression 'cron(0 12 * * ? *)' --timezone Europe/Paris \
	--policy forbid --event '{"name":"Paris"}'
# A schedule that fired before the snapshot, then disabled: its last slot
# and fire count are only in the snapshot.
nb schedules create early --function tick --expression '@every 5s' --event '{"id":"early"}'
until_true "early fires" early_fired
until_true "early's fire succeeds" is_status "$(api GET /v1/schedules/early | jq -r .last_request)" success
nb schedules disable early
early=$(api GET /v1/schedules/early)
stop_dev

# --- the snapshot ---------------------------------------------------------
"$work/release-snapshot" snapshot "$data"

# --- phase 2: log entries after the snapshot ------------------------------
start_dev
nb deploy "$fn/hello" --env GREETING=Hi --memory 256 --timeout 5s # hello rev 3
hello_r3=$(invoke hello '{"name":"rev3"}')
nb deploy "$fn/flaky2" --name flaky # the fix
nb deadletters redrive "$dl1"
until_true "the redriven event succeeds" is_status "$dl1" success
notify2_id=$(nb invoke notify --async --data '{"alert":"cpu"}' | tail -n1)
until_true "notify completes again" is_status "$notify2_id" success
nb keys revoke "$(key_id "$old2_token")"
late_token=$(nb keys create --role developer --note "made after the snapshot" | tail -n1)
printf 'Vic-Changed-2025\n' | nb users passwd vic --password-stdin
nb users rm tmp
login vic Vic-Changed-2025 "$work/vic.session"
read -r ada_cookie ada_csrf <"$work/ada.session"
curl -fsS -X POST -H "Cookie: nimbus_session=$ada_cookie" -H "X-CSRF-Token: $ada_csrf" "$NIMBUS_URL/v1/logout" >/dev/null
nb namespaces create team-b --concurrency 5
nb --namespace team-b deploy "$fn/later"
later_r1=$(invoke later '{"when":"after the snapshot"}' team-b)
sub2=$(nb --namespace team-b subscriptions create --on success,failure --webhook http://127.0.0.1:9/team-b-hook -o json | jq -r .id)
tmp_sub=$(nb subscriptions create --on failure --webhook http://127.0.0.1:9/tmp -o json | jq -r .id)
nb subscriptions rm "$tmp_sub"
nb namespaces create scratch
nb namespaces rm scratch
nb schedules create tmp-sched --function hello --expression 'rate(1 hour)'
nb schedules rm tmp-sched
nb schedules create gone-daily --function gone --expression 'rate(1 day)'
nb rm gone --force # removes gone-daily with it
nb schedules enable nightly
nb schedules disable nightly
# The ticker fires every 10 s; stop right after a fire has completed, so
# that nothing is left queued (it would be an old event at replay).
nb schedules create ticker --function tick --expression '@every 10s' --timezone Europe/Berlin
until_true "the ticker fires twice" ticker_fired_twice
last=$(api GET /v1/schedules/ticker | jq -r .last_request)
until_true "the ticker's last fire succeeds" is_status "$last" success
[ "$(api GET /v1/schedules/ticker | jq -r .last_request)" = "$last" ] || { echo "the ticker fired again meanwhile: run again" >&2; exit 1; }
ticker=$(api GET /v1/schedules/ticker)
stop_dev
# raft.db and logs.db grow in 16 MB steps (sparse); rewrite them compactly.
"$work/release-snapshot" compact "$data"

# --- the fixture ------------------------------------------------------------
rm -rf "$out"
# worker/ (sandbox state) and scan/ are scratch the node remakes.
mkdir -p "$out/data"
cp -a "$data/raft" "$data/blobs" "$data/logs.db" "$data/admin.token" "$out/data/"
jq -n --arg commit "$(git -C "$repo" rev-parse "$commit")" --arg secret "$secret" \
	--arg ci "$ci_token" --arg late "$late_token" --arg old1 "$old1_token" --arg old2 "$old2_token" \
	--arg dl1 "$dl1" --arg dl2 "$dl2" --arg notify "$notify_id" --arg notify2 "$notify2_id" --arg sub1 "$sub1" --arg sub2 "$sub2" \
	--arg hello_r1 "$hello_r1" --arg hello_r2 "$hello_r2" --arg hello_r3 "$hello_r3" \
	--arg orders_r1 "$orders_r1" --arg later_r1 "$later_r1" --argjson ticker "$ticker" --argjson early "$early" \
	'{commit: $commit, webhook_secret: $secret,
	  tokens: {ci: $ci, late: $late, revoked_before_snapshot: $old1, revoked_after_snapshot: $old2},
	  passwords: {ada: "Ada-Lovelace-1815", vic: "Vic-Changed-2025", vic_before: "Vic-Viewer-2024"},
	  requests: {hello_rev1: $hello_r1, hello_rev2: $hello_r2, hello_rev3: $hello_r3, orders: $orders_r1, later: $later_r1,
	             notify: $notify, notify_after_snapshot: $notify2, redriven: $dl1, dead_letter: $dl2},
	  subscriptions: {flaky: $sub1, team_b: $sub2},
	  ticker: {last_slot: $ticker.last_slot, last_request: $ticker.last_request, fires: $ticker.fires},
	  early: {last_slot: $early.last_slot, last_request: $early.last_request, fires: $early.fires}}' >"$out/expect.json"
"$work/release-snapshot" list "$out/data" >"$out/entries.txt"
sed "s/@COMMIT@/$commit/g; s/@FULL@/$(git -C "$repo" rev-parse "$commit")/g; s/@DATE@/$(date -u +%F)/g" \
	"$repo/e2e/testdata/release-README.md.in" >"$out/README.md"
du -sh "$out"
log "fixture in $out"
