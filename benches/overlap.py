# Usage: python3 benches/overlap.py target/release/tern PORT [LEVELS] [SECONDS]
# Measures what one client's overlapping filters cost the others (issue 12,
# row 10): one client subscribes every combination of '+' and a literal in
# each of LEVELS (16) levels, 2^LEVELS filters that one topic matches all of;
# a publisher then publishes to that topic, and a canary client meanwhile
# does a QoS 1 round trip (publish to its own topic, wait for the delivery)
# every ~10 ms. Prints ms per matching publish, the canary's p50/p99/max
# and the broker's RSS.
import multiprocessing, os, socket, struct, subprocess, sys, tempfile, threading, time

from mqtt_wire import Client, pkt, rss, s

BIN, PORT = sys.argv[1], int(sys.argv[2])
LEVELS = int(sys.argv[3]) if len(sys.argv) > 3 else 16
SECONDS = float(sys.argv[4]) if len(sys.argv) > 4 else 10
N = 1 << LEVELS
TOPIC = '/'.join(f'l{i}' for i in range(LEVELS))
WINDOW = 64  # the publisher's QoS 1 messages in flight: a batch's worth


def publish1(topic, pid, payload=b'x'):
    return pkt(0x32, s(topic) + struct.pack('>H', pid) + payload)

def filters():
    for mask in range(N):
        yield '/'.join('+' if mask >> i & 1 else f'l{i}' for i in range(LEVELS))

def pct(xs, q): return xs[min(len(xs) - 1, int(q * len(xs)))]

conf = tempfile.NamedTemporaryFile('w', prefix='overlap-', suffix='.toml', delete=False)
conf.write(f'subscriptions_per_client_max = {max(N, 100_000)}\n'); conf.close()
# The broker logs its lock holds at shutdown (target tern::lock).
log = tempfile.NamedTemporaryFile('w+', prefix='overlap-', suffix='.log')
proc = subprocess.Popen([BIN, '--listen', f'127.0.0.1:{PORT}', '--config', conf.name],
                        stderr=log, stdout=subprocess.DEVNULL, env={**os.environ, 'RUST_LOG': 'tern::lock=info'})
time.sleep(0.5)
stop = multiprocessing.Event()
try:
    rss0 = rss(proc.pid)
    wild = Client(PORT, 'wild')
    t = time.time()
    names = list(filters())
    for pid, at in enumerate(range(0, N, 1024), 1):
        body = struct.pack('>H', pid) + b''.join(s(f) + b'\0' for f in names[at:at + 1024])
        wild.sock.sendall(pkt(0x82, body))
    for _ in range(0, N, 1024):
        assert wild.read()[0] >> 4 == 9
    print(f'{N} overlapping filters of {LEVELS} levels subscribed in {time.time()-t:.2f}s; '
          f'RSS {rss0} KB -> {rss(proc.pid)} KB')
    pub = Client(PORT, 'publisher')
    # One at a time first: what one matching publish costs, nothing queued.
    k, t = 50, time.time()
    for i in range(k):
        pub.sock.sendall(publish1(TOPIC, i + 1))
        assert pub.read()[0] >> 4 == 4
    one = (time.time() - t) * 1000 / k
    print(f'one at a time: {one:.2f} ms per matching publish (QoS 1, PUBACK awaited)')

    # The flood and the subscriber's reading run in a process of their own,
    # so that the canary's timing does not wait for their turn at the GIL.
    acked, received = multiprocessing.Value('q', 0), multiprocessing.Value('q', 0)
    def drain():
        while not stop.is_set():
            try: first, _ = wild.read(0.5)
            except socket.timeout: continue
            except (EOFError, OSError): return
            received.value += first >> 4 == 3
    def flood():
        pid = 0
        def send():
            nonlocal pid
            pid = pid % 65535 + 1
            pub.sock.sendall(publish1(TOPIC, pid))
        for _ in range(WINDOW): send()
        try:
            while not stop.is_set():
                assert pub.read()[0] >> 4 == 4
                acked.value += 1
                send()
        except (EOFError, OSError):
            pass  # the broker stopped at the end of the run
    canary = Client(PORT, 'canary')
    canary.sock.sendall(pkt(0x82, struct.pack('>H', 1) + s('canary/t') + b'\1'))
    assert canary.read()[0] >> 4 == 9
    def round_trip(pid):
        t0 = time.perf_counter()
        canary.sock.sendall(publish1('canary/t', pid))
        got_ack = got_msg = False
        while not (got_ack and got_msg):
            first, body = canary.read()
            if first >> 4 == 4: got_ack = True
            elif first >> 4 == 3:
                got_msg = True
                if first & 6: canary.sock.sendall(pkt(0x40, body[2 + len('canary/t'):][:2]))
        return (time.perf_counter() - t0) * 1000
    quiet = sorted(round_trip(i % 65535 + 1) for i in range(100))
    print(f'canary alone: p50 {pct(quiet, .5):.2f} ms, p99 {pct(quiet, .99):.2f} ms')

    def load():
        threading.Thread(target=drain, daemon=True).start()
        flood()
    loader = multiprocessing.Process(target=load, daemon=True)
    loader.start()
    t, rts, peak, pid = time.time(), [], 0, 100
    while time.time() - t < SECONDS:
        pid = pid % 65535 + 1
        rts.append(round_trip(pid))
        peak = max(peak, rss(proc.pid))
        time.sleep(0.01)
    elapsed = time.time() - t
    stop.set()
    loader.join(5)
    rts.sort()
    n = acked.value
    print(f'flood ({WINDOW} in flight): {n} matching publishes in {elapsed:.1f}s, '
          f'{elapsed*1000/max(n, 1):.2f} ms each; subscriber got {received.value} copies')
    print(f'canary meanwhile: {len(rts)} round trips, p50 {pct(rts, .5):.2f} ms, '
          f'p99 {pct(rts, .99):.2f} ms, max {rts[-1]:.2f} ms; RSS peak {peak} KB')
finally:
    stop.set()
    proc.terminate(); proc.wait()
    os.unlink(conf.name)
    log.seek(0)
    for line in log:
        if 'broker lock held' in line: print(line.strip())
