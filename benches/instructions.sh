#!/usr/bin/env bash
# Instructions a routed message costs a broker, counted by valgrind's
# callgrind: repeatable for the same binary and inputs whatever else the
# machine is doing, where timings on a shared machine are not. One QoS 0
# publisher (mosquitto_pub -l, a message every 2 ms) and one subscriber on
# one topic; the broker runs once with N messages and once with 2N, and the
# difference over N is what a message costs (startup and idle work fall
# out). Needs valgrind and mosquitto-clients.
#
#   bash benches/instructions.sh target/release/tern [N]
#   bash benches/instructions.sh /usr/sbin/mosquitto [N]
set -euo pipefail
broker=${1:?usage: instructions.sh BROKER_BINARY [MESSAGES]}
n=${2:-2000}
qos=${QOS:-0}
port=${PORT:-18839}
dir=$(mktemp -d)
broker_pid=
# A run that fails leaves no broker holding the port.
trap '[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; rm -rf "$dir"' EXIT

# Total instructions of one run of the broker through `count` messages.
run() {
    local count=$1 out="$dir/callgrind.$1"
    case "$(basename "$broker")" in
        mosquitto*)
            # As root mosquitto would change to its own user, which then
            # could not write callgrind's file.
            printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\n' "$port" >"$dir/mosquitto.conf"
            set -- "$broker" -c "$dir/mosquitto.conf" ;;
        *) set -- "$broker" --in-memory --listen "127.0.0.1:$port" ;;
    esac
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" 2>"$dir/valgrind.log" &
    broker_pid=$!
    local up=
    for _ in $(seq 100); do
        mosquitto_pub -p "$port" -t warm -m up 2>/dev/null && up=1 && break
        sleep 0.3
    done
    if [ -z "$up" ]; then
        echo "the broker did not come up on port $port: $(tail -3 "$dir/valgrind.log")" >&2
        exit 1
    fi
    timeout 300 mosquitto_sub -p "$port" -t a/b/c/d -q "$qos" -C "$count" >"$dir/got" &
    local sub_pid=$!
    sleep 2
    seq "$count" | while read -r i; do echo "message-payload-$i"; sleep 0.002; done |
        mosquitto_pub -p "$port" -t a/b/c/d -q "$qos" -l
    wait "$sub_pid"
    local got
    got=$(wc -l <"$dir/got")
    kill -INT "$broker_pid"
    wait "$broker_pid" || true
    broker_pid=
    if [ "$got" != "$count" ]; then
        echo "the subscriber got $got of $count messages" >&2
        exit 1
    fi
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

one=$(run "$n")
two=$(run $((2 * n)))
echo "$(basename "$broker"): $(( (two - one) / n )) instructions a message (QoS $qos; $one for $n messages, $two for $((2 * n)))"
