#!/usr/bin/env bash
# Drives a tern binary with mosquitto_pub and mosquitto_sub, as a new user
# would: QoS 2 through a wildcard, a retained message, a will on a kill, and
# MQTT 5.0 properties to a 5.0 subscriber and stripped for a 3.1.1 one.
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

# MQTT 5.0 both ways: a user property and a response topic forwarded; a
# 3.1.1 subscriber gets the same message without them.
timeout 10 mosquitto_sub -p "$port" -V mqttv5 -t 'v5/#' -q 1 -C 1 -F '%t %p %P %R' >"$work/v5" &
sub5=$!
timeout 10 mosquitto_sub -p "$port" -V mqttv311 -t 'v5/#' -q 1 -C 1 -v >"$work/v311" &
sub311=$!
sleep 0.5
mosquitto_pub -p "$port" -V mqttv5 -t v5/a -m five -q 1 \
    -D publish user-property colour blue -D publish response-topic v5/reply
wait $sub5 || fail "no 5.0 message"
wait $sub311 || fail "no 3.1.1 copy of a 5.0 message"
[ "$(cat "$work/v5")" = "v5/a five colour:blue v5/reply" ] || fail "5.0: got '$(cat "$work/v5")'"
[ "$(cat "$work/v311")" = "v5/a five" ] || fail "5.0 to 3.1.1: got '$(cat "$work/v311")'"

kill -TERM $tern_pid
wait $tern_pid || fail "tern exited non-zero on SIGTERM"
echo "mosquitto-clients: 4 passed, 0 failed"
