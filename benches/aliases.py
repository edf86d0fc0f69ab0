# Usage: python3 benches/aliases.py target/release/tern PORT [SUBSCRIBERS] [MESSAGES] [TOPICS]
# Bytes on the wire per delivery with server-to-client topic aliases (issue
# 15): a fan-out of MESSAGES (default 4000) QoS 0 messages of 16 bytes, to
# TOPICS (default 8) topics of 100 bytes in turn, to SUBSCRIBERS (default
# 40) 5.0 subscribers of `bench/#`: half announce a Topic Alias Maximum of
# 10, half none (every delivery by name, as before aliases were sent). Each
# subscriber counts the bytes it reads and the PUBLISHes in them. Run for
# the tern binary, then for mosquitto (/usr/sbin/mosquitto, if installed),
# which sends no aliases. The publisher sends at QoS 1 and waits for each
# PUBACK, so that no subscriber's queue overflows and every one gets all.
import os, selectors, socket, struct, subprocess, sys, tempfile, threading, time

from mqtt_wire import MOSQUITTO, Client, pkt, s, start_broker, varint

BIN, PORT = sys.argv[1], int(sys.argv[2])
SUBSCRIBERS = int(sys.argv[3]) if len(sys.argv) > 3 else 40
MESSAGES = int(sys.argv[4]) if len(sys.argv) > 4 else 4000
TOPICS = int(sys.argv[5]) if len(sys.argv) > 5 else 8
ALIAS_MAX = 10
PAYLOAD = b'x' * 16


def topic(i):
    head = f'bench/aliases/{i:04d}/'
    return head + 'l' * (100 - len(head))


def start(binary):
    return start_broker(binary, PORT)


def read_packet(sock, buf):
    """One packet from `sock` as (first byte, body, its size), and what is left."""
    while True:
        if len(buf) >= 2:
            mult, i, n = 1, 1, 0
            while i < len(buf):
                b = buf[i]; n += (b & 127) * mult; mult *= 128; i += 1
                if not b & 128:
                    if len(buf) >= i + n:
                        return (buf[0], buf[i:i + n], i + n), buf[i + n:]
                    break
        d = sock.recv(1 << 16)
        if not d: raise EOFError
        buf += d


class Subscriber:
    def __init__(self, cid, alias_max):
        self.sock = socket.create_connection(('127.0.0.1', PORT))
        props = b'\x22' + struct.pack('>H', alias_max) if alias_max else b''
        self.sock.sendall(pkt(0x10, s('MQTT') + bytes([5, 2]) + struct.pack('>H', 600)
                              + varint(len(props)) + props + s(cid)))
        (first, _, _), buf = read_packet(self.sock, b'')
        assert first >> 4 == 2, 'CONNACK'
        self.sock.sendall(pkt(0x82, struct.pack('>H', 1) + b'\x00' + s('bench/#') + b'\x00'))
        (first, _, _), self.buf = read_packet(self.sock, buf)
        assert first >> 4 == 9, 'SUBACK'
        assert not self.buf, 'nothing is published before every subscriber is in'
        self.alias_max = alias_max
        self.bytes, self.publishes, self.by_alias = len(self.buf), 0, 0
        self.sock.setblocking(False)

    def on_readable(self):
        try:
            d = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        self.bytes += len(d)
        self.buf += d
        while True:
            if len(self.buf) < 2: return
            mult, i, n = 1, 1, 0
            while i < len(self.buf):
                b = self.buf[i]; n += (b & 127) * mult; mult *= 128; i += 1
                if not b & 128: break
            else:
                return
            if len(self.buf) < i + n: return
            first, body = self.buf[0], self.buf[i:i + n]
            self.buf = self.buf[i + n:]
            if first >> 4 == 3:
                self.publishes += 1
                self.by_alias += struct.unpack('>H', body[:2])[0] == 0


def run(binary):
    proc = start(binary)
    try:
        subs = [Subscriber(f'sub{i}', ALIAS_MAX if i % 2 else 0) for i in range(SUBSCRIBERS)]
        sel = selectors.DefaultSelector()
        for sub in subs:
            sel.register(sub.sock, selectors.EVENT_READ, sub)
        done = threading.Event()

        def read_all():
            while not done.is_set() or any(sub.publishes < MESSAGES for sub in subs):
                for key, _ in sel.select(timeout=0.1):
                    key.data.on_readable()
                if done.is_set() and time.time() > deadline[0]:
                    return

        deadline = [0]
        reader = threading.Thread(target=read_all)
        reader.start()
        publisher = Client(PORT, 'pub')
        start_at = time.time()
        for m in range(MESSAGES):
            pid = m % 65535 + 1
            publisher.sock.sendall(pkt(0x32, s(topic(m % TOPICS)) + struct.pack('>H', pid) + PAYLOAD))
            assert publisher.read()[0] >> 4 == 4, 'PUBACK'
        deadline[0] = time.time() + 30
        done.set()
        reader.join()
        elapsed = time.time() - start_at
        name = 'mosquitto' if binary == MOSQUITTO else 'tern'
        for alias_max in (0, ALIAS_MAX):
            group = [sub for sub in subs if sub.alias_max == alias_max]
            got = sum(sub.publishes for sub in group)
            total = sum(sub.bytes for sub in group)
            by_alias = sum(sub.by_alias for sub in group)
            print(f'{name:9} Topic Alias Maximum {alias_max:2}: {len(group)} subscribers, '
                  f'{got} of {len(group) * MESSAGES} deliveries, {total / got:.1f} bytes each '
                  f'on the wire, {by_alias} by alias alone ({elapsed:.1f} s)')
    finally:
        proc.kill()
        proc.wait()


for binary in [BIN] + ([MOSQUITTO] if os.path.exists(MOSQUITTO) else []):
    run(binary)
