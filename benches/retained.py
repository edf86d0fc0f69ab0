# Usage: python3 benches/retained.py target/release/tern PORT [TOPICS]
# Measures retained handling of a tern binary: RSS per retained topic, the
# time a SUBSCRIBE of 400 '+/nomatchN' filters takes over 200,000 retained
# topics, and how many retained messages a '#' subscriber receives.
import socket, struct, subprocess, sys, time

from mqtt_wire import Client, pkt, rss, s

BIN, PORT = sys.argv[1], int(sys.argv[2])
N = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000


proc = subprocess.Popen([BIN, '--listen', f'127.0.0.1:{PORT}'], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
time.sleep(0.5)
try:
    loader = Client(PORT, 'loader')
    rss0 = rss(proc.pid)
    payload = b'x' * 16
    data = b''.join(pkt(0x31, s(f'a/{i}') + payload) for i in range(N))
    t = time.time()
    loader.sock.sendall(data)
    loader.sock.sendall(pkt(0x32, s('marker') + struct.pack('>H', 1) + b'm'))
    assert loader.read()[0] >> 4 == 4
    rss1 = rss(proc.pid)
    print(f'loaded {N} retained (16-byte payloads) in {time.time()-t:.2f}s; RSS {rss0} KB -> {rss1} KB: {(rss1-rss0)*1024/N:.0f} bytes a topic')
    canary = Client(PORT, 'canary')
    sub = Client(PORT, 'nomatch')
    body = struct.pack('>H', 1) + b''.join(s(f'+/nomatch{i}') + b'\0' for i in range(400))
    t = time.time()
    sub.sock.sendall(pkt(0x82, body))
    first, _ = sub.read(120)
    dt = time.time() - t
    # A canary round trip right after.
    t2 = time.time(); canary.sock.sendall(pkt(0xC0, b'')); canary.read(); rt = time.time() - t2
    print(f'SUBSCRIBE of 400 +/nomatchN filters: SUBACK after {dt*1000:.1f} ms (type {first>>4}); canary ping after it {rt*1000:.1f} ms')
    everything = Client(PORT, 'everything')
    t = time.time()
    everything.sock.sendall(pkt(0x82, struct.pack('>H', 1) + s('#') + b'\0'))
    got, retained = 0, 0
    try:
        while True:
            first, body = everything.read(5)
            if first >> 4 == 3:
                got += 1; retained += first & 1
                if got == N: break
    except socket.timeout:
        pass
    print(f'"#" subscriber: {retained} retained messages of {N} in {time.time()-t:.2f}s{" (then 5 s of silence)" if got < N else ""}')
finally:
    proc.terminate(); proc.wait()
