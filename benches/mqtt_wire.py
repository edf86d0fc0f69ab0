# The few MQTT 3.1.1 bytes the Python bench scripts write, and a process's
# resident memory; imported by retained.py and subscriptions.py.
import struct

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
