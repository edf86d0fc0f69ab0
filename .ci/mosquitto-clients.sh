#!/usr/bin/env bash
# Drives a tern binary with mosquitto_pub and mosquitto_sub, as a new user
# would: QoS 2 through a wildcard, a retained message, a will on a kill, and
# MQTT 5.0 properties to a 5.0 subscriber and stripped for a 3.1.1 one;
# messages queued for an offline session kept across a kill -9; then TLS,
# with and without a client certificate; then users with passwords, and a
# listener per interface.
set -euo pipefail
tern=${1:?usage: mosquitto-clients.sh PATH-TO-TERN}
port=$((20000 + RANDOM % 20000))
work=$(mktemp -d)
start_tern() {
    "$tern" --listen "127.0.0.1:$port" --data-dir "$work/data" >>"$work/tern.log" 2>&1 &
    tern_pid=$!
    for _ in $(seq 50); do
        mosquitto_pub -p "$port" -t ready -m x 2>/dev/null && break
        sleep 0.1
    done
}
start_tern
trap 'kill $tern_pid 2>/dev/null || true; rm -rf "$work"' EXIT

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

# A persistent session goes offline, three QoS 1 messages are queued for
# it, and tern is killed: all three are there when it comes back.
mosquitto_sub -p "$port" -i keeper -c -q 1 -t 'k/#' -E
for n in 1 2 3; do mosquitto_pub -p "$port" -t "k/$n" -m "m$n" -q 1; done
kill -9 $tern_pid
wait $tern_pid 2>/dev/null || true
start_tern
got=$(timeout 5 mosquitto_sub -p "$port" -i keeper -c -q 1 -t 'k/#' -C 3 -v | tr '\n' ' ') ||
    fail "queued messages after kill -9: got '$got'"
[ "$got" = "k/1 m1 k/2 m2 k/3 m3 " ] || fail "queued messages after kill -9: got '$got'"
got=$(timeout 5 mosquitto_sub -p "$port" -t 'r/#' -C 1 -v) || fail "no retained message after kill -9"
[ "$got" = "r/x kept" ] || fail "retained after kill -9: got '$got'"

kill -TERM $tern_pid
wait $tern_pid || fail "tern exited non-zero on SIGTERM"

# TLS, with certificates made as the README's "Securing tern" makes them:
# --cafile on a TLS listener; --cert/--key on one that requires a client
# certificate and takes its CN as the user, whom the ACL then judges.
tls_port=$((port + 1))
mtls_port=$((port + 2))
(
    cd "$work"
    mkdir tls && cd tls
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj '/CN=example CA' \
        -keyout ca.key -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout server.key -out server.csr
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
        -extfile server.ext -out server.pem
    openssl req -newkey rsa:2048 -nodes -subj '/CN=alice' -keyout alice.key -out alice.csr
    printf 'extendedKeyUsage=clientAuth\n' >alice.ext
    openssl x509 -req -in alice.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
        -extfile alice.ext -out alice.pem
) >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log"; fail "openssl"; }
printf 'topic readwrite demo/#\nuser alice\ntopic readwrite alice/#\n' >"$work/acl"
cat >"$work/tls.toml" <<TOML
acl_file = "$work/acl"
[[listener]]
address = "127.0.0.1:$tls_port"
cert_file = "$work/tls/server.pem"
key_file = "$work/tls/server.key"
[[listener]]
address = "127.0.0.1:$mtls_port"
cert_file = "$work/tls/server.pem"
key_file = "$work/tls/server.key"
ca_file = "$work/tls/ca.pem"
require_certificate = true
use_identity_as_username = true
TOML
"$tern" --config "$work/tls.toml" --in-memory >"$work/tern.log" 2>&1 &
tern_pid=$!
ca=(-h localhost --cafile "$work/tls/ca.pem")
alice=(--cert "$work/tls/alice.pem" --key "$work/tls/alice.key")
for _ in $(seq 50); do
    mosquitto_pub "${ca[@]}" -p "$tls_port" -t demo/ready -m x 2>/dev/null && break
    sleep 0.1
done

timeout 10 mosquitto_sub "${ca[@]}" -p "$tls_port" -t 'demo/#' -q 1 -C 1 -v >"$work/over-tls" &
sub=$!
sleep 0.5
mosquitto_pub "${ca[@]}" -p "$tls_port" -t demo/tls -m secret -q 1
wait $sub || fail "no message over TLS"
[ "$(cat "$work/over-tls")" = "demo/tls secret" ] || fail "TLS: got '$(cat "$work/over-tls")'"
if mosquitto_pub -p "$tls_port" -t demo/plain -m x 2>/dev/null; then
    fail "plain MQTT accepted on a TLS listener"
fi

# alice/# is alice's alone: an anonymous subscriber would be refused it.
timeout 10 mosquitto_sub "${ca[@]}" "${alice[@]}" -p "$mtls_port" -t 'alice/#' -C 1 -v >"$work/mtls" &
sub=$!
sleep 0.5
mosquitto_pub "${ca[@]}" "${alice[@]}" -p "$mtls_port" -t alice/x -m mine
wait $sub || fail "no message to the client certificate's user"
[ "$(cat "$work/mtls")" = "alice/x mine" ] || fail "client certificate: got '$(cat "$work/mtls")'"
if mosquitto_pub "${ca[@]}" -p "$mtls_port" -t demo/x -m x 2>/dev/null; then
    fail "a client without a certificate accepted where one is required"
fi

kill -TERM $tern_pid
wait $tern_pid || fail "tern (TLS) exited non-zero on SIGTERM"

# Users with passwords (-u/-P) and a listener per interface, as the
# README's "Securing tern" has them: anyone on the loopback listener (said
# so: with a listener on every interface, allow_anonymous defaults to false
# on all), only the password file's users on the one on every interface;
# the ACL judges them all.
lo_port=$((port + 3))
all_port=$((port + 4))
echo 'alice-pw' | "$tern" passwd "$work/passwords" alice --stdin >/dev/null
printf 'topic read sensors/#\nuser alice\ntopic readwrite sensors/#\n' >"$work/sec-acl"
cat >"$work/sec.toml" <<TOML
password_file = "$work/passwords"
acl_file = "$work/sec-acl"
[[listener]]
address = "127.0.0.1:$lo_port"
allow_anonymous = true
[[listener]]
address = "0.0.0.0:$all_port"
TOML
"$tern" --config "$work/sec.toml" --in-memory >"$work/tern.log" 2>&1 &
tern_pid=$!
for _ in $(seq 50); do
    mosquitto_pub -p "$lo_port" -t ready -m x 2>/dev/null && break
    sleep 0.1
done
alice_login=(-u alice -P alice-pw)
timeout 10 mosquitto_sub -p "$all_port" "${alice_login[@]}" -t 'sensors/#' -C 1 -v >"$work/alice" &
alice_sub=$!
timeout 10 mosquitto_sub -p "$lo_port" -t 'sensors/#' -C 1 -v >"$work/anon" &
anon_sub=$!
sleep 0.5
mosquitto_pub -p "$all_port" "${alice_login[@]}" -t sensors/t1 -m 21.5 ||
    fail "alice's good password refused"
wait $alice_sub || fail "no message to alice"
wait $anon_sub || fail "no message to the anonymous subscriber on loopback"
[ "$(cat "$work/alice")" = "sensors/t1 21.5" ] || fail "-u/-P: got '$(cat "$work/alice")'"
[ "$(cat "$work/anon")" = "sensors/t1 21.5" ] || fail "loopback: got '$(cat "$work/anon")'"
if mosquitto_pub -p "$all_port" -u alice -P wrong -t sensors/t1 -m x 2>/dev/null; then
    fail "a wrong password accepted"
fi
if mosquitto_pub -p "$all_port" -u mallory -P alice-pw -t sensors/t1 -m x 2>/dev/null; then
    fail "an unknown user accepted"
fi
if mosquitto_pub -p "$all_port" -t sensors/t1 -m x 2>/dev/null; then
    fail "an anonymous client accepted on the listener on every interface"
fi

kill -TERM $tern_pid
wait $tern_pid || fail "tern (passwords) exited non-zero on SIGTERM"
echo "mosquitto-clients: 7 passed, 0 failed"
