#!/usr/bin/env bash
# Drives a tern binary with mosquitto_pub and mosquitto_sub, as a new user
# would: QoS 2 through a wildcard, a retained message, and a will on a kill.
set -euo pipefail
tern=${1:?usage: mosquitto-clients.sh PATH-TO-TERN}
port=$((20000 + RANDOM % 20000))
work=$(mktemp -d)
"$tern" --listen "127.0.0.1:$port" >"$work/tern.log" 2>&1 &
tern_pid=$!
trap 'kill $tern_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do
    mosquitto_pub -p "$port" -t ready -m x 2>/dev/null && break
    sleep 0.1
done

fail() { echo "mosquitto-clients: FAIL: $*"; cat "$work/tern.log"; exit 1; }

timeout 10 mosquitto_sub -p "$port" -t 'a/#' -q 2 -C 1 -v >"$work/qos2" &
sub=$!
sleep 0.5 # mosquitto_sub has no "subscribed" signal
mosquitto_pub -p "$port" -t a/b -m hi -q 2
wait $sub || fail "no QoS 2 message"
[ "$(cat "$work/qos2")" = "a/b hi" ] || fail "QoS 2: got '$(cat "$work/qos2")'"

mosquitto_pub -p "$port" -t r/x -m kept -r -q 1
got=$(timeout 5 mosquitto_sub -p "$port" -t 'r/#' -C 1 -v) || fail "no retained message"
[ "$got" = "r/x kept" ] || fail "retained: got '$got'"

timeout 10 mosquitto_sub -p "$port" -t will/t -C 1 -v >"$work/will" &
watcher=$!
mosquitto_sub -p "$port" -t unused -i dying --will-topic will/t --will-payload gone -k 30 &
dying=$!
sleep 0.5
kill -9 $dying
wait $dying 2>/dev/null || true
wait $watcher || fail "no will after kill -9"
[ "$(cat "$work/will")" = "will/t gone" ] || fail "will: got '$(cat "$work/will")'"

kill -TERM $tern_pid
wait $tern_pid || fail "tern exited non-zero on SIGTERM"
echo "mosquitto-clients: 3 passed, 0 failed"
