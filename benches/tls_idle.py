# Usage: python3 benches/tls_idle.py target/release/tern PORT [CONNECTIONS]
# Measures what an idle TLS connection costs a tern binary beside a plain
# one: RSS growth divided by the count, for CONNECTIONS clients connected
# over TLS (Python's ssl, TLS 1.3) to PORT and as many over plain TCP to
# PORT+1. Certificates are made with openssl in a temporary directory.
import os, socket, ssl, subprocess, sys, tempfile, time

from mqtt_wire import pkt, rss, s

BIN, PORT = sys.argv[1], int(sys.argv[2])
N = int(sys.argv[3]) if len(sys.argv) > 3 else 2000


def certificates(d):
    def run(*args):
        subprocess.run(['openssl', *args], cwd=d, check=True, capture_output=True)
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=bench CA',
        '-keyout', 'ca.key', '-out', 'ca.pem')
    run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
        '-keyout', 'server.key', '-out', 'server.csr')
    with open(os.path.join(d, 'server.ext'), 'w') as f:
        f.write('subjectAltName=DNS:localhost,IP:127.0.0.1\n')
    run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
        '-CAcreateserial', '-days', '1', '-extfile', 'server.ext', '-out', 'server.pem')


def idle(pid, port, wrap):
    before = rss(pid)
    conns = []
    for i in range(N):
        sock = wrap(socket.create_connection(('127.0.0.1', port)))
        sock.sendall(pkt(0x10, s('MQTT') + bytes([4, 2, 2, 0x58]) + s(f'idle{i}')))
        assert sock.recv(4)[:1] == b'\x20', 'CONNACK'
        conns.append(sock)
    time.sleep(1)
    grown = rss(pid) - before
    for sock in conns:
        sock.close()
    return grown


with tempfile.TemporaryDirectory() as d:
    certificates(d)
    config = os.path.join(d, 'tern.toml')
    with open(config, 'w') as f:
        f.write(f'[[listener]]\naddress = "127.0.0.1:{PORT}"\n'
                f'cert_file = "{d}/server.pem"\nkey_file = "{d}/server.key"\n'
                f'[[listener]]\naddress = "127.0.0.1:{PORT + 1}"\n')
    context = ssl.create_default_context(cafile=os.path.join(d, 'ca.pem'))
    for name, port, wrap in [
        ('TLS', PORT, lambda sock: context.wrap_socket(sock, server_hostname='localhost')),
        ('plain', PORT + 1, lambda sock: sock),
    ]:
        # A broker of its own for each, so that neither sees the other's
        # freed memory.
        proc = subprocess.Popen([BIN, '--config', config], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            grown = idle(proc.pid, port, wrap)
            print(f'{name}: {N} idle connections, RSS +{grown} KB: {grown * 1024 / N:.0f} bytes each')
        finally:
            proc.terminate()
            proc.wait()
