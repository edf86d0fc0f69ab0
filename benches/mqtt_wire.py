# The few MQTT 3.1.1 bytes the Python bench scripts write, a client that
# reads packets, a process's resident memory and tern's /metrics; imported
# by the bench scripts beside it.
import socket, struct, subprocess, sys, tempfile, time

MOSQUITTO = '/usr/sbin/mosquitto'

def varint(n):
    out = bytearray()
    while True:
        b = n % 128; n //= 128
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)

def pkt(first, body): return bytes([first]) + varint(len(body)) + body
def s(x): x = x.encode(); return struct.pack('>H', len(x)) + x
def connect(cid, keepalive=600): return pkt(0x10, s('MQTT') + bytes([4, 2]) + struct.pack('>H', keepalive) + s(cid))

def rss(pid):
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmRSS'): return int(line.split()[1])

class Client:
    """A connected MQTT 3.1.1 client; `read` gives one packet as (first byte, body)."""
    def __init__(self, port, cid):
        self.sock = socket.create_connection(('127.0.0.1', port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b''
        self.sock.sendall(connect(cid))
        assert self.read()[0] >> 4 == 2
    def read(self, timeout=30):
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                mult, i, n = 1, 1, 0
                while i < len(self.buf):
                    b = self.buf[i]; n += (b & 127) * mult; mult *= 128; i += 1
                    if not b & 128:
                        if len(self.buf) >= i + n:
                            p = (self.buf[0], self.buf[i:i + n]); self.buf = self.buf[i + n:]; return p
                        break
            d = self.sock.recv(1 << 20)
            if not d: raise EOFError
            self.buf += d


def scrape(port):
    """tern's /metrics on `port` (its HTTP listener): value by name, labels included."""
    sock = socket.create_connection(('127.0.0.1', port))
    sock.sendall(b'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    data = b''
    while True:
        d = sock.recv(1 << 16)
        if not d: break
        data += d
    values = {}
    for line in data.decode().split('\r\n\r\n', 1)[1].splitlines():
        if line and not line.startswith('#'):
            name, value = line.rsplit(' ', 1)
            values[name] = float(value)
    return values


def metric(port, name):
    """One metric: `name` as written (labels and all), or its first labelled series."""
    values = scrape(port)
    if name in values:
        return values[name]
    return next((v for k, v in values.items() if k.startswith(name + '{')), None)


def start_broker(binary, port, mosquitto_conf=''):
    """`binary` (tern, in memory, or MOSQUITTO with `mosquitto_conf` added)
    listening on 127.0.0.1:`port`; exits if it does not listen."""
    if binary == MOSQUITTO:
        conf = tempfile.NamedTemporaryFile('w', prefix='bench-', suffix='.conf', delete=False)
        conf.write(f'listener {port} 127.0.0.1\nallow_anonymous true\nsys_interval 0\n'
                   f'log_type error\n{mosquitto_conf}')
        conf.close()
        cmd = [binary, '-c', conf.name]
    else:
        cmd = [binary, '--listen', f'127.0.0.1:{port}', '--in-memory']
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(('127.0.0.1', port)).close()
            return proc
        except OSError:
            time.sleep(0.02)
    sys.exit(f'{binary} does not listen on {port}')
