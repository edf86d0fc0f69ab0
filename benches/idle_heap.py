# Usage: python3 benches/idle_heap.py target/release/tern PORT [N]
# N idle clients (default 10,000) connect and each subscribes to its own
# topic; prints the broker's growth per connection in resident memory and
# in heap, as its counting allocator sees it (/metrics `tern_heap_bytes`,
# on PORT+1). The heap figure is steadier than RSS; to see where it goes,
# run the broker built with `--features system-allocator` under heaptrack
# (`heaptrack -o out tern ...`; it sees only malloc, not mimalloc) and read
# `heaptrack_print -f out.zst -F folded --flamegraph-cost-type peak`.
import os, resource, socket, struct, subprocess, sys, tempfile, time

from mqtt_wire import connect, metric, pkt, rss, s


def heap(port):
    return metric(port, 'tern_heap_bytes')


def main():
    tern, port = sys.argv[1], int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < n + 100:
        sys.exit(f'needs {n + 100} open files, the hard limit is {hard}')
    cfg = tempfile.NamedTemporaryFile('w', suffix='.toml', delete=False)
    cfg.write(f'connections_max = {n + 100}\nhttp_listen = "127.0.0.1:{port + 1}"\n'
              f'[[listener]]\naddress = "127.0.0.1:{port}"\n')
    cfg.close()
    broker = subprocess.Popen([tern, '--in-memory', '--config', cfg.name], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        rss0, heap0 = rss(broker.pid), heap(port + 1)
        socks = []
        for i in range(n):
            c = socket.create_connection(('127.0.0.1', port))
            c.sendall(connect(f'c{i}') + pkt(0x82, struct.pack('>H', 1) + s(f't/{i}') + b'\x00'))
            socks.append(c)
        for c in socks:
            got = b''
            while len(got) < 9:  # CONNACK (4) and SUBACK (5)
                got += c.recv(64)
        time.sleep(1.5)
        rss1, heap1 = rss(broker.pid), heap(port + 1)
        print(f'{n} idle connections: {(rss1 - rss0) * 1024 / n:.0f} bytes RSS, '
              f'{(heap1 - heap0) / n:.0f} bytes heap a connection')
    finally:
        broker.terminate()
        broker.wait()
        os.unlink(cfg.name)


main()
