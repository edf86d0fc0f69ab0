# Usage: python3 benches/offline_queue.py target/release/tern PORT [--mb 1024] [--payload 10000]
#                                          [--modes in-memory,sync:268435456,sync:16777216]
# Resident memory of offline queues (issue 14): one persistent session
# (clean session 0, QoS 1) goes offline, then one publisher queues MB
# megabytes of QoS 1 messages of PAYLOAD bytes for it. Printed for each
# mode: the broker's RSS idle, once everything is queued (with the
# census's bytes in memory and messages on disk), and its peak (VmHWM)
# while the session comes back and reads every message, in order (checked),
# with the time that took (with --restart, after a restart, timed to its
# first CONNACK, with its RSS then). Modes: `in-memory` (--in-memory, mosquitto's
# way: every message in RAM) and `sync:BUDGET` (durability sync,
# offline_memory_max_bytes BUDGET). Uses PORT (MQTT) and PORT+1 (HTTP).
import argparse, os, shutil, socket, struct, subprocess, sys, tempfile, time

from mqtt_wire import metric, pkt, s

TOPIC = 'q/all'


class Reader:
    """A socket read as MQTT packets without copying its buffer per packet."""
    def __init__(self, sock):
        self.sock, self.buf, self.at = sock, bytearray(), 0

    def packet(self, timeout=120):
        self.sock.settimeout(timeout)
        while True:
            got = self.parse()
            if got: return got
            if self.at > (1 << 20):
                del self.buf[:self.at]; self.at = 0
            d = self.sock.recv(1 << 20)
            if not d: raise EOFError
            self.buf += d

    def parse(self):
        buf, at = self.buf, self.at
        if len(buf) - at < 2: return None
        mult, i, n = 1, at + 1, 0
        while i < len(buf):
            b = buf[i]; n += (b & 127) * mult; mult *= 128; i += 1
            if not b & 128:
                if len(buf) < i + n: return None
                self.at = i + n
                return buf[at], bytes(buf[i:i + n])
        return None


def open_client(port, cid, clean):
    sock = socket.create_connection(('127.0.0.1', port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    flags = 2 if clean else 0
    sock.sendall(pkt(0x10, s('MQTT') + bytes([4, flags]) + struct.pack('>H', 600) + s(cid)))
    reader = Reader(sock)
    first, body = reader.packet()
    assert first >> 4 == 2 and body[1] == 0, (first, body)
    return sock, reader, body[0] & 1



def status(pid, key):
    for line in open(f'/proc/{pid}/status'):
        if line.startswith(key): return int(line.split()[1]) / 1024


def start(args, port):
    """The binary, once it answers a CONNECT (it reads its store first)."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(30000):
        try:
            open_client(port, 'probe', clean=True)[0].close(); return proc
        except (OSError, EOFError, AssertionError):
            time.sleep(0.01)
    sys.exit('tern did not answer')


def run(tern, port, work, mode, count, payload, restarts):
    data = os.path.join(work, 'data')
    shutil.rmtree(data, ignore_errors=True)
    conf = os.path.join(work, 'tern.conf')
    text = (f'listen = ["127.0.0.1:{port}"]\nhttp_listen = "127.0.0.1:{port + 1}"\n'
            f'sys_interval_secs = 0\nqueued_messages_max = {count + 1}\n'
            f'queued_bytes_max = {4 << 30}\npersistent_session_expiry_secs = 4294967295\n')
    args = [tern, '--config', conf]
    if mode == 'in-memory':
        args.append('--in-memory')
    else:
        budget = int(mode.split(':')[1])
        text += f'data_dir = "{data}"\ndurability = "sync"\noffline_memory_max_bytes = {budget}\n'
    open(conf, 'w').write(text)
    proc = start(args, port)
    try:
        time.sleep(0.3)
        idle = status(proc.pid, 'VmRSS')
        sock, reader, _ = open_client(port, 'keeper', clean=False)
        sock.sendall(pkt(0x82, struct.pack('>H', 1) + s(TOPIC) + b'\x01'))
        first, _ = reader.packet()
        assert first >> 4 == 9, first
        sock.sendall(b'\xe0\x00')
        sock.close()
        pub, pub_reader, _ = open_client(port, 'publisher', clean=True)
        body = b'x' * payload
        t = time.monotonic()
        sent = acked = 0
        while acked < count:
            batch = b''
            while sent < count and sent - acked < 1000:
                head = f'{sent}:'.encode()
                batch += pkt(0x32, s(TOPIC) + struct.pack('>H', sent % 65535 + 1) + head + body[len(head):])
                sent += 1
            if batch: pub.sendall(batch)
            first, _ = pub_reader.packet()
            assert first >> 4 == 4, first
            acked += 1
        queued_s = time.monotonic() - t
        while metric(port + 1, 'tern_queued_messages') < count:
            time.sleep(0.1)
        queued_rss = status(proc.pid, 'VmRSS')
        in_memory = metric(port + 1, 'tern_queued_memory_bytes')
        on_disk = metric(port + 1, 'tern_queued_on_disk_messages')
        size = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)) if os.path.isdir(data) else 0
        load = open('/proc/loadavg').read().split()[0]
        restart = ''
        if restarts and mode != 'in-memory':
            proc.terminate(); proc.wait(600)
            t = time.monotonic()
            proc = start(args, port)
            started = time.monotonic() - t
            while metric(port + 1, 'tern_queued_messages') < count:
                time.sleep(0.1)
            restart = (f'; restarted in {started:.1f} s to RSS {status(proc.pid, "VmRSS"):.0f} MB '
                       f'({metric(port + 1, "tern_queued_on_disk_messages"):.0f} on disk only)')
        sock, reader, present = open_client(port, 'keeper', clean=False)
        assert present, 'the session was kept'
        t = time.monotonic()
        for n in range(count):
            first, body_in = reader.packet()
            assert first >> 4 == 3, first
            tlen = struct.unpack('>H', body_in[:2])[0]
            pid = body_in[2 + tlen:4 + tlen]
            number = int(body_in[4 + tlen:].split(b':', 1)[0])
            assert number == n, f'message {number} where {n} was due'
            sock.sendall(b'\x40\x02' + pid)
        read_s = time.monotonic() - t
        peak = status(proc.pid, 'VmHWM')
        after = status(proc.pid, 'VmRSS')
        print(f'{mode}: {count} x {payload} B queued in {queued_s:.1f} s; RSS idle {idle:.0f} MB, '
              f'queued {queued_rss:.0f} MB (census: {in_memory / 1e6:.1f} MB in memory, {on_disk:.0f} '
              f'messages on disk only; data dir {size / 1e6:.0f} MB); read back in order in '
              f'{read_s:.1f} s, peak RSS {peak:.0f} MB, after {after:.0f} MB; load {load}{restart}',
              flush=True)
        sock.close(); pub.close()
    finally:
        proc.terminate(); proc.wait(600)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('tern'); ap.add_argument('port', type=int)
    ap.add_argument('--mb', type=int, default=1024)
    ap.add_argument('--payload', type=int, default=10_000)
    ap.add_argument('--modes', default='in-memory,sync:268435456,sync:16777216')
    ap.add_argument('--restart', action='store_true',
                    help='restart the broker (SIGTERM) once all is queued, before the read back')
    args = ap.parse_args()
    count = args.mb * 1_000_000 // args.payload
    work = tempfile.mkdtemp(prefix='offline-queue-bench-')
    try:
        for mode in args.modes.split(','):
            run(args.tern, args.port, work, mode, count, args.payload, args.restart)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
