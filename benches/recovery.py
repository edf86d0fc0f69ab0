# Usage: python3 benches/recovery.py target/release/tern PORT [--sessions S] [--messages M]
#                                    [--starts N] [--keep DIR]
# Recovery time of a tern binary (issue 14): builds a data directory by
# driving the binary with clients, as a user would, then times N starts of
# the binary over it, from exec to its first CONNACK, and
# reads from its log when the store had been read (Store::open_dir) and
# when it listened (after Broker::restore). Prints the data size on disk.
#
# The directory: S persistent sessions (clean session 0), each subscribed
# at QoS 1 to one topic, then M / S QoS 1 messages of 64 bytes published to
# that topic while they are offline, so that each session queues M / S of
# them. The build runs with durability = "periodic" (the commit at
# shutdown writes what is left; the starts read the same file whatever
# the durability). Uses PORT (MQTT) and PORT+1 (HTTP, to read the census).
import argparse, datetime, os, re, shutil, signal, socket, statistics, struct, subprocess
import sys, tempfile, time

from mqtt_wire import Client, metric, pkt, s

TOPIC = 'recovery/all'
PAYLOAD = b'r' * 64
CONCURRENT = 500


def persistent_connect(cid):
    return pkt(0x10, s('MQTT') + bytes([4, 0]) + struct.pack('>H', 600) + s(cid))


def make_sessions(port, count):
    """CONNECT (clean session 0), SUBSCRIBE, DISCONNECT, pipelined, on
    CONCURRENT connections at a time; each ends when the broker closes it."""
    sub = pkt(0x82, struct.pack('>H', 1) + s(TOPIC) + b'\x01')
    for first in range(0, count, CONCURRENT):
        socks = []
        for i in range(first, min(first + CONCURRENT, count)):
            sock = socket.create_connection(('127.0.0.1', port))
            sock.sendall(persistent_connect(f'r{i}') + sub + b'\xe0\x00')
            socks.append(sock)
        for sock in socks:
            sock.settimeout(60)
            while sock.recv(4096):
                pass
            sock.close()



def port_free(port):
    try:
        socket.create_connection(('127.0.0.1', port)).close()
    except OSError:
        return
    sys.exit(f'something already listens on {port}: stop it first')


def wait_serving(port, proc, limit=600):
    """The time of the first CONNACK: the binary binds its listeners before
    it reads the store, so an accepted TCP connection says nothing yet."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None: sys.exit(f'tern exited with {proc.returncode}')
        try:
            sock = socket.create_connection(('127.0.0.1', port))
        except OSError:
            time.sleep(0.002); continue
        sock.settimeout(limit)
        sock.sendall(pkt(0x10, s('MQTT') + bytes([4, 2]) + struct.pack('>H', 600) + s('probe')))
        got = sock.recv(4)
        sock.close()
        if got[:1] == b'\x20': return time.monotonic()
    sys.exit(f'no CONNACK on {port} after {limit} s')


def config(work, port, data, durability):
    path = os.path.join(work, f'{durability}.conf')
    open(path, 'w').write(
        f'listen = ["127.0.0.1:{port}"]\nhttp_listen = "127.0.0.1:{port + 1}"\n'
        f'data_dir = "{data}"\ndurability = "{durability}"\nsys_interval_secs = 0\n'
        f'persistent_session_expiry_secs = 4294967295\n')
    return path


def build(tern, port, work, data, sessions, messages):
    port_free(port); port_free(port + 1)
    log = open(os.path.join(work, 'build.log'), 'w')
    proc = subprocess.Popen([tern, '--config', config(work, port, data, 'periodic')],
                            stdout=subprocess.DEVNULL, stderr=log)
    wait_serving(port, proc)
    t = time.monotonic()
    make_sessions(port, sessions)
    print(f'{sessions} sessions made in {time.monotonic() - t:.1f} s', flush=True)
    publisher = Client(port, 'recovery-pub')
    per = messages // sessions
    for i in range(per):
        publisher.sock.sendall(pkt(0x32, s(TOPIC) + struct.pack('>H', i + 1) + PAYLOAD))
        first, _ = publisher.read(timeout=600)
        assert first >> 4 == 4, first
    queued = metric(port + 1, 'tern_queued_messages')
    offline = metric(port + 1, 'tern_sessions{state="offline"}')
    rss = int(re.search(r'VmRSS:\s+(\d+)', open(f'/proc/{proc.pid}/status').read())[1])
    print(f'{per} messages to each: {offline:.0f} offline sessions, {queued:.0f} queued '
          f'({time.monotonic() - t:.1f} s in all); RSS {rss / 1024:.0f} MB before the shutdown',
          flush=True)
    publisher.sock.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(600)
    assert proc.returncode == 0, proc.returncode


def log_time(line):
    stamp = line.split(' ', 1)[0]
    return datetime.datetime.fromisoformat(stamp.replace('Z', '+00:00')).timestamp()


def start(tern, port, work, data):
    """One start: seconds to the first CONNACK, to the log's
    'data store' line (the store read) and to its 'listening' line."""
    log_path = os.path.join(work, 'start.log')
    with open(log_path, 'w') as log:
        port_free(port); port_free(port + 1)
        wall = time.time(); t0 = time.monotonic()
        proc = subprocess.Popen([tern, '--config', config(work, port, data, 'sync')],
                                stdout=subprocess.DEVNULL, stderr=log)
        ready = wait_serving(port, proc) - t0
        rss = int(re.search(r'VmRSS:\s+(\d+)', open(f'/proc/{proc.pid}/status').read())[1])
        stat = open(f'/proc/{proc.pid}/stat').read().rsplit(')', 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf('SC_CLK_TCK')
        load = open('/proc/loadavg').read().split()[0]
        queued = metric(port + 1, 'tern_queued_messages')
        proc.send_signal(signal.SIGTERM)
        proc.wait(600)
    lines = open(log_path).read().splitlines()
    at = lambda text: next(log_time(l) - wall for l in lines if text in l)
    return ready, at('data store'), at(' listening'), rss, queued, cpu, load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('tern'); ap.add_argument('port', type=int)
    ap.add_argument('--sessions', type=int, default=100_000)
    ap.add_argument('--messages', type=int, default=1_000_000)
    ap.add_argument('--starts', type=int, default=3)
    ap.add_argument('--keep', help='build into (or reuse) this directory and keep it')
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix='recovery-bench-')
    data = args.keep or os.path.join(work, 'data')
    try:
        if not os.path.exists(os.path.join(data, 'tern.redb')):
            build(args.tern, args.port, work, data, args.sessions, args.messages)
        size = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data))
        print(f'data directory: {size / 1e6:.0f} MB on disk ({size} bytes)')
        runs = []
        for i in range(args.starts):
            ready, read, listening, rss, queued, cpu, load = start(args.tern, args.port, work, data)
            runs.append((ready, read, listening, cpu))
            print(f'start {i + 1}: first CONNACK after {ready:.2f} s (log: store read at {read:.2f} s, '
                  f'listening at {listening:.2f} s); CPU {cpu:.2f} s; {queued:.0f} queued, RSS {rss / 1024:.0f} MB; '
                  f'load average {load}',
                  flush=True)
        med = [statistics.median(r[k] for r in runs) for k in range(4)]
        print(f'median of {len(runs)}: first CONNACK after {med[0]:.2f} s; store read by {med[1]:.2f} s, '
              f'restore and the rest {med[2] - med[1]:.2f} s; CPU {med[3]:.2f} s')
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
