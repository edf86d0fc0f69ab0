# Usage: python3 benches/subscriptions.py target/release/tern PORT [FILTERS] [LEVELS]
# Measures what subscriptions cost a tern binary: RSS per filter and per
# filter level, for FILTERS (10,000) filters of LEVELS (200) one-character
# levels from one client, each filter on a path of its own (issue 12, row 1).
import socket, struct, subprocess, sys, time

from mqtt_wire import connect, pkt, rss, s

BIN, PORT = sys.argv[1], int(sys.argv[2])
N = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
LEVELS = int(sys.argv[4]) if len(sys.argv) > 4 else 200

def read_packet(sock):
    head = sock.recv(2)
    first, n, mult, b = head[0], 0, 1, head[1]
    while True:
        n += (b & 127) * mult; mult *= 128
        if not b & 128: break
        b = sock.recv(1)[0]
    body = b''
    while len(body) < n: body += sock.recv(n - len(body))
    return first, body

proc = subprocess.Popen([BIN, '--listen', f'127.0.0.1:{PORT}'], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
time.sleep(0.5)
try:
    sock = socket.create_connection(('127.0.0.1', PORT))
    sock.sendall(connect('subscriber'))
    assert read_packet(sock)[0] >> 4 == 2
    before = rss(proc.pid)
    sent = 0
    for i in range(N):
        filt = '/'.join([f'{i:x}'] + ['l'] * (LEVELS - 1))
        body = struct.pack('>H', (i % 65535) + 1) + s(filt) + b'\0'
        sock.sendall(pkt(0x82, body)); sent += len(filt)
        first, suback = read_packet(sock)
        assert first >> 4 == 9 and suback[-1] == 0, suback
    after = rss(proc.pid)
    grown = (after - before) * 1024
    print(f'{N} filters of {LEVELS} levels ({sent} bytes of filters): RSS {before} KB -> {after} KB: '
          f'{grown / N:.0f} bytes a filter, {grown / N / LEVELS:.0f} bytes a level')
finally:
    proc.terminate(); proc.wait()
