# Usage: python3 benches/arrival.py target/release/tern PORT [ROUNDS] [SPACINGS]
# Arrival order across connections (issue 15): client B sends SUBSCRIBE to a
# fresh topic and client A publishes to it SPACING µs later (a busy wait),
# without waiting for B's SUBACK, as a user would; prints the rounds in which
# B did not get the message, for the tern binary and for mosquitto
# (/usr/sbin/mosquitto, if installed). SPACINGS is a comma list (0,50,150,stop);
# `stop` sends both while the broker is stopped (SIGSTOP), so that its next
# poll finds both sockets readable, B's first. The broker's worker threads
# follow TOKIO_WORKER_THREADS, if set.
import os, signal, socket, struct, subprocess, sys, tempfile, time

from mqtt_wire import MOSQUITTO, Client, pkt, s, start_broker

BIN, PORT = sys.argv[1], int(sys.argv[2])
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
SPACINGS = (sys.argv[4] if len(sys.argv) > 4 else '0,50,150,stop').split(',')
# Between rounds, so that the broker is idle in its poll when B's bytes come.
REST = 0.002


def start(binary):
    return start_broker(binary, PORT, 'set_tcp_nodelay true\n')


def stopped(pid):
    """Whether every thread of `pid` has stopped: SIGSTOP takes a moment."""
    for tid in os.listdir(f'/proc/{pid}/task'):
        stat = open(f'/proc/{pid}/task/{tid}/stat').read()
        if stat.rsplit(')', 1)[1].split()[0] not in 'tT':
            return False
    return True


def fence(client, kind, topic, got):
    """Reads until a packet of `kind` (a reply to our own request, which
    follows what the broker queued before it), noting the topics of the
    PUBLISHes read on the way."""
    while True:
        first, body = client.read(5)
        if first >> 4 == 3:
            n = struct.unpack('>H', body[:2])[0]
            got.add(body[2:2 + n].decode())
        elif first >> 4 == kind:
            return


def rounds(proc, spacing, a, b, base):
    got, pid_of = set(), lambda i: i % 65535 + 1
    for i in range(ROUNDS):
        topic = f'order/{base + i}'
        subscribe = pkt(0x82, struct.pack('>H', pid_of(i)) + s(topic) + b'\0')
        publish = pkt(0x32, s(topic) + struct.pack('>H', pid_of(i)) + b'm')
        time.sleep(REST)
        if spacing == 'stop':
            proc.send_signal(signal.SIGSTOP)
            while not stopped(proc.pid): pass
            b.sock.sendall(subscribe)
            time.sleep(0.001)  # B's bytes surely in the broker's socket first
            a.sock.sendall(publish)
            time.sleep(0.001)
            proc.send_signal(signal.SIGCONT)
        else:
            gap = int(spacing) * 1000
            t0 = time.perf_counter_ns()
            b.sock.sendall(subscribe)
            while time.perf_counter_ns() - t0 < gap: pass
            a.sock.sendall(publish)
        fence(a, 4, topic, set())  # PUBACK: the message has been routed
        # B waits for its SUBACK before it unsubscribes, as a client would:
        # sent at once, the UNSUBSCRIBE could come in one read with the
        # SUBSCRIBE, whose arrival tern would then take to be the later
        # one's (`src/net/arrival.rs`). UNSUBACK follows any copy for B
        # queued before it; a copy before the SUBACK counts too.
        fence(b, 9, topic, got)
        b.sock.sendall(pkt(0xa2, struct.pack('>H', pid_of(i)) + s(topic)))
        fence(b, 11, topic, got)
    b.sock.sendall(pkt(0xc0, b''))
    fence(b, 13, None, got)
    return sum(f'order/{base + i}' not in got for i in range(ROUNDS))


def measure(binary):
    proc = start(binary)
    try:
        b, a = Client(PORT, 'arrival-b'), Client(PORT, 'arrival-a')
        return [rounds(proc, sp, a, b, k * ROUNDS) for k, sp in enumerate(SPACINGS)]
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate(); proc.wait()


brokers = [BIN] + ([MOSQUITTO] if os.path.exists(MOSQUITTO) else [])
print(f'load average at start: {" ".join(f"{x:.2f}" for x in os.getloadavg())}; '
      f'TOKIO_WORKER_THREADS={os.environ.get("TOKIO_WORKER_THREADS", "unset")}')
print(f'misses in {ROUNDS} rounds, by spacing (µs from SUBSCRIBE sent to PUBLISH sent):')
print(f'{"broker":24}' + ''.join(f'{sp:>10}' for sp in SPACINGS))
for binary in brokers:
    misses = measure(binary)
    print(f'{os.path.basename(binary):24}' + ''.join(f'{m:>10}' for m in misses))
print(f'load average at end: {" ".join(f"{x:.2f}" for x in os.getloadavg())}')
