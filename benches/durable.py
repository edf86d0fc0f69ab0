# Usage: python3 benches/durable.py target/release/tern PORT [--rounds R] [--messages N]
#                                   [--window W] [--inflight I] [--only KIND,...]
# Fan-in QoS 1 from 8 publishers to one persistent subscriber (clean session
# 0, QoS 1 subscription), what issue 14 asks of durability = "sync", against
# four brokers in the same run, interleaved (each round runs them all, in an
# order rotated from round to round): tern --in-memory, tern with
# durability = "sync" and with "periodic" (each on a fresh data directory),
# and mosquitto (/usr/sbin/mosquitto) with persistence true on a fresh
# persistence_location. Prints each run, then the medians, the ratios, and
# from tern's /metrics the commits: messages per commit (per fsync, with
# sync) and commits per second. Uses PORT (MQTT) and PORT+1 (tern's HTTP).
#
# The clients are Python: the subscriber in a process of its own, the eight
# publishers in this one. Each run prints the CPU the clients and the
# broker used, so that a client that is the bottleneck shows.
import argparse, multiprocessing, os, selectors, shutil, signal, socket, statistics
import struct, subprocess, sys, tempfile, time

from mqtt_wire import pkt, s, scrape

MOSQUITTO = '/usr/sbin/mosquitto'
PUBLISHERS = 8
TOPIC = 'fan/in'
PAYLOAD = b'x' * 64
KINDS = ['memory', 'sync', 'periodic', 'mosquitto']


def connect(cid, clean):
    flags = 2 if clean else 0
    return pkt(0x10, s('MQTT') + bytes([4, flags]) + struct.pack('>H', 600) + s(cid))


def read_packets(buf):
    """Whole packets at the front of `buf` as (first byte, body), and what is left."""
    out, i, end = [], 0, len(buf)
    while end - i >= 2:
        mult, j, n = 1, i + 1, 0
        while j < end:
            b = buf[j]; n += (b & 127) * mult; mult *= 128; j += 1
            if not b & 128: break
        else:
            break
        if b & 128 or end < j + n: break
        out.append((buf[i], buf[j:j + n])); i = j + n
    return out, buf[i:]


def dial(port, cid, clean):
    sock = socket.create_connection(('127.0.0.1', port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect(cid, clean))
    buf = b''
    while True:
        got, buf = read_packets(buf + sock.recv(4096))
        if got:
            assert got[0][0] >> 4 == 2 and got[0][1][1] == 0, got[0]
            return sock, buf


def subscriber(port, total, ready, done):
    """Subscribes with a persistent session, then acknowledges every PUBLISH
    until `total` have come; sends (time of the last, count, its CPU)."""
    sock, buf = dial(port, 'durable-sub', clean=False)
    sock.sendall(pkt(0x82, struct.pack('>H', 1) + s(TOPIC) + b'\x01'))
    while True:
        got, buf = read_packets(buf + sock.recv(4096))
        if got:
            assert got[0][0] >> 4 == 9 and got[0][1][2] == 1, got[0]
            break
    ready.send(True)
    count, last = 0, None
    while count < total:
        data = sock.recv(1 << 20)
        if not data: raise EOFError('the broker closed the subscriber')
        got, buf = read_packets(buf + data)
        acks = []
        for first, body in got:
            if first >> 4 != 3: continue
            tlen = (body[0] << 8) | body[1]
            acks.append(b'\x40\x02' + body[2 + tlen:4 + tlen])
            count += 1
        if acks:
            sock.sendall(b''.join(acks)); last = time.monotonic()
    cpu = os.times()
    done.send((last, count, cpu.user + cpu.system))
    # Kept open: the session stays online until the broker stops.
    time.sleep(3600)


def publish_all(port, total, window):
    """Eight publishers, each with `window` QoS 1 messages unacknowledged,
    until `total` are acknowledged; returns the time the last PUBACK came."""
    per = [total // PUBLISHERS + (1 if i < total % PUBLISHERS else 0) for i in range(PUBLISHERS)]
    sel = selectors.DefaultSelector()
    state = []
    for i in range(PUBLISHERS):
        sock, _ = dial(port, f'durable-pub-{i}', clean=True)
        sock.setblocking(False)
        st = {'sock': sock, 'per': per[i], 'left': per[i], 'acked': 0, 'next': 1, 'buf': b''}
        state.append(st); sel.register(sock, selectors.EVENT_READ, st)

    def send(st, n):
        n = min(n, st['left'])
        if n <= 0: return
        parts = []
        for _ in range(n):
            pid = st['next']; st['next'] = pid % 65535 + 1
            parts.append(pkt(0x32, s(TOPIC) + struct.pack('>H', pid) + PAYLOAD))
        st['left'] -= n
        st['sock'].setblocking(True); st['sock'].sendall(b''.join(parts)); st['sock'].setblocking(False)

    start = time.monotonic()
    for st in state: send(st, window)
    pending = PUBLISHERS
    while pending:
        for key, _ in sel.select():
            st = key.data
            data = st['sock'].recv(1 << 20)
            if not data: raise EOFError('the broker closed a publisher')
            got, st['buf'] = read_packets(st['buf'] + data)
            acks = sum(1 for first, _ in got if first >> 4 == 4)
            st['acked'] += acks
            send(st, acks)
            if st['left'] == 0 and st['acked'] >= st['per']:
                sel.unregister(st['sock']); pending -= 1
    end = time.monotonic()
    return start, end, [st['sock'] for st in state]


def cpu_of(pid):
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def port_free(port):
    try:
        socket.create_connection(('127.0.0.1', port)).close()
    except OSError:
        return
    sys.exit(f'something already listens on {port}: stop it first')


def wait_listening(port, proc):
    for _ in range(500):
        if proc.poll() is not None: sys.exit(f'broker exited with {proc.returncode}')
        try:
            socket.create_connection(('127.0.0.1', port)).close(); return
        except OSError:
            time.sleep(0.01)
    sys.exit(f'nothing listening on {port}')



def start(kind, tern, port, work, inflight):
    data = os.path.join(work, f'{kind}-data')
    shutil.rmtree(data, ignore_errors=True)
    conf = os.path.join(work, f'{kind}.conf')
    if kind == 'mosquitto':
        os.makedirs(data)
        open(conf, 'w').write(
            f'listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n'
            f'persistence_location {data}/\nmax_queued_messages 1000000\n'
            f'max_inflight_messages {inflight}\nsys_interval 0\nlog_type error\n')
        cmd = [MOSQUITTO, '-c', conf]
    else:
        durability = {'memory': 'none', 'sync': 'sync', 'periodic': 'periodic'}[kind]
        open(conf, 'w').write(
            f'listen = ["127.0.0.1:{port}"]\nhttp_listen = "127.0.0.1:{port + 1}"\n'
            f'data_dir = "{data}"\ndurability = "{durability}"\n'
            f'queued_messages_max = 1000000\ninflight_messages_max = {inflight}\nsys_interval_secs = 0\n')
        cmd = [tern, '--config', conf]
    port_free(port)
    if kind != 'mosquitto': port_free(port + 1)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, proc)
    return proc


def run(kind, tern, port, work, total, window, inflight):
    proc = start(kind, tern, port, work, inflight)
    ctx = multiprocessing.get_context('fork')
    ready_r, ready_w = ctx.Pipe(False)
    done_r, done_w = ctx.Pipe(False)
    sub = ctx.Process(target=subscriber, args=(port, total, ready_w, done_w))
    sub.start()
    try:
        assert ready_r.recv()
        metrics = scrape(port + 1) if kind != 'mosquitto' else None
        broker_cpu = cpu_of(proc.pid)
        my_cpu = sum(os.times()[:2])
        t0, acked_at, socks = publish_all(port, total, window)
        my_cpu = sum(os.times()[:2]) - my_cpu
        if not done_r.poll(120): sys.exit(f'{kind}: the subscriber got fewer than {total} in 120 s')
        last, count, sub_cpu = done_r.recv()
        broker_cpu = cpu_of(proc.pid) - broker_cpu
        elapsed = max(last, acked_at) - t0
        row = {'kind': kind, 'rate': count / elapsed, 'secs': elapsed,
               'acked_rate': total / (acked_at - t0), 'broker_cpu': broker_cpu,
               'client_cpu': my_cpu + sub_cpu}
        if metrics is not None:
            after = scrape(port + 1)
            delta = lambda name: after.get(name, 0) - metrics.get(name, 0)
            row.update(commits=delta('tern_store_commits_total'),
                       changes=delta('tern_store_changes_total'),
                       writes=delta('tern_store_writes_total'),
                       commit_secs=delta('tern_store_commit_seconds_total'),
                       received=delta('tern_messages_received_total'))
        for sock in socks: sock.close()
        return row
    finally:
        sub.kill(); sub.join()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill(); proc.wait()


def describe(row):
    line = (f"{row['kind']:>9}: {row['rate']:9.0f} msgs/s ({row['secs']:.2f} s; all PUBACKed at "
            f"{row['acked_rate']:.0f} msgs/s; broker CPU "
            f"{row['broker_cpu']:.2f} s, clients {row['client_cpu']:.2f} s)")
    if row.get('commits'):
        line += (f"; {row['commits']:.0f} commits, {row['received'] / row['commits']:.1f} msgs "
                 f"and {row['changes'] / row['commits']:.1f} changes "
                 + (f"({row['writes'] / row['commits']:.1f} keys written) " if row['writes'] else '')
                 + f"a commit, "
                 f"{row['commits'] / row['secs']:.0f} commits/s, "
                 f"{row['commit_secs'] / row['commits'] * 1e3:.2f} ms a commit, "
                 f"committing {row['commit_secs'] / row['secs']:.0%} of the time")
    return line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('tern'); ap.add_argument('port', type=int)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--messages', type=int, default=100_000)
    ap.add_argument('--window', type=int, default=64, help='unacknowledged messages per publisher')
    ap.add_argument('--inflight', type=int, default=20,
                    help="messages sent to the subscriber and not yet acknowledged: both brokers' default")
    ap.add_argument('--only', default=','.join(KINDS))
    args = ap.parse_args()
    kinds = [k for k in KINDS if k in args.only.split(',')]
    if 'mosquitto' in kinds and not os.path.exists(MOSQUITTO):
        print(f'{MOSQUITTO} missing: measuring tern alone'); kinds.remove('mosquitto')
    work = tempfile.mkdtemp(prefix='durable-bench-')
    print(f'{args.messages} QoS 1 messages of {len(PAYLOAD)} bytes from {PUBLISHERS} publishers '
          f'({args.window} unacknowledged each) to one persistent subscriber '
          f'({args.inflight} in flight to it); '
          f'{args.rounds} rounds; load average before: {open("/proc/loadavg").read().split()[0]}')
    rows = {k: [] for k in kinds}
    try:
        for r in range(args.rounds):
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
            for kind in order:
                row = run(kind, args.tern, args.port, work, args.messages, args.window, args.inflight)
                rows[kind].append(row)
                print(f'round {r + 1} ' + describe(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = lambda kind, key: statistics.median(row[key] for row in rows[kind])
    print('\nmedians:')
    for kind in kinds:
        rates = [row['rate'] for row in rows[kind]]
        line = f'{kind:>9}: {med(kind, "rate"):9.0f} msgs/s (min {min(rates):.0f}, max {max(rates):.0f})'
        committed = [row for row in rows[kind] if row.get('commits')]
        if committed:
            per = statistics.median(row['received'] / row['commits'] for row in committed)
            cps = statistics.median(row['commits'] / row['secs'] for row in committed)
            ms = statistics.median(row['commit_secs'] / row['commits'] * 1e3 for row in committed)
            line += f'; {per:.1f} msgs a commit, {cps:.0f} commits/s, {ms:.2f} ms a commit'
        print(line)
    # Ratios of the same round's runs, then their median: rounds differ in
    # what else the shared machine was doing.
    for a, b in [('sync', 'memory'), ('sync', 'mosquitto'), ('periodic', 'memory'),
                 ('memory', 'mosquitto')]:
        if a in rows and b in rows:
            ratios = [x['rate'] / y['rate'] for x, y in zip(rows[a], rows[b])]
            print(f'{a} / {b}: median {statistics.median(ratios):.2f} '
                  f'(per round: {", ".join(f"{x:.2f}" for x in ratios)})')


if __name__ == '__main__':
    main()
