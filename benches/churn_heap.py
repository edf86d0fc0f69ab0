# Usage: python3 benches/churn_heap.py target/release/tern PORT [CYCLES] [WORKERS]
# Issue 15's churn memory, split between the heap and the allocator: a
# fresh broker (in memory), then WORKERS threads of clients that connect,
# subscribe, publish a QoS 1 message to themselves and vanish without
# DISCONNECT (half with a RST), as the load bench's churn does. Prints the
# broker's RSS and its heap as its counting allocator sees it (/metrics
# `tern_heap_bytes`, on PORT+1) cold, after a warm-up of 20,000 clients,
# and every 10% of CYCLES: a heap back at its warm figure with RSS above
# it is memory the allocator keeps, not memory the broker holds.
import socket, struct, subprocess, sys, tempfile, threading, time

from mqtt_wire import connect, metric, pkt, rss, s

WARM_UP = 20_000


def churn(port, tag, count):
    for i in range(count):
        c = socket.create_connection(('127.0.0.1', port))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        topic = f'churn/{tag}/{i}'
        c.sendall(connect(f'churn-{tag}-{i}') + pkt(0x82, struct.pack('>H', 1) + s(topic) + b'\x01'))
        got = b''
        while len(got) < 9:  # CONNACK (4) and SUBACK (5)
            d = c.recv(64)
            if not d: raise EOFError(f'client {tag}-{i}')
            got += d
        c.sendall(pkt(0x32, s(topic) + struct.pack('>H', 1) + b'x' * 16))
        if i % 2 == 0:  # a RST
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()


def run(port, tag, cycles, workers):
    threads = [threading.Thread(target=churn, args=(port, f'{tag}{w}', cycles // workers))
               for w in range(workers)]
    for t in threads: t.start()
    for t in threads: t.join()


def settle(port, pid):
    # The broker notices each vanished client; its heap falls back as it does.
    time.sleep(2)
    return rss(pid), metric(port + 1, 'tern_heap_bytes') / 1024


def main():
    tern, port = sys.argv[1], int(sys.argv[2])
    cycles = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    cfg = tempfile.NamedTemporaryFile('w', suffix='.toml', delete=False)
    cfg.write(f'http_listen = "127.0.0.1:{port + 1}"\n[[listener]]\naddress = "127.0.0.1:{port}"\n')
    cfg.close()
    broker = subprocess.Popen([tern, '--in-memory', '--config', cfg.name], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        print('%-24s %10s %10s' % ('after', 'RSS KiB', 'heap KiB'))
        print('%-24s %10d %10.0f' % (('cold',) + settle(port, broker.pid)))
        run(port, 'w', WARM_UP, workers)
        warm = settle(port, broker.pid)
        print('%-24s %10d %10.0f' % (('warm-up, 20,000',) + warm))
        step, done, start = cycles // 10, 0, time.time()
        while done < cycles:
            run(port, f'c{done}-', step, workers)
            done += step
            r, h = settle(port, broker.pid)
            print('%-24s %10d %10.0f   RSS %+.1f%%, heap %+.1f%% of warm' % (
                f'{done:,} cycles', r, h, (r - warm[0]) * 100 / warm[0], (h - warm[1]) * 100 / warm[1]))
        print(f'{done / (time.time() - start):.0f} cycles/s (settling included)')
    finally:
        broker.terminate()
        broker.wait()


if __name__ == '__main__':
    main()
