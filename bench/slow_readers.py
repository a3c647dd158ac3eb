#!/usr/bin/env python3
"""Slow readers: N clients ask for a large body and read nothing; the proxy's RSS growth per
client. Usage: bench/slow_readers.py SWITCHYARD_BIN TEST_SERVER_BIN [N] [SIZE] [extra proxy args...]
(bench/run slow-readers builds both and runs it with 50 readers of 10 MB.)
BACKEND_SCHEME=h2c makes the proxy speak cleartext HTTP/2 to the backend (default http);
LIMITS='response_buffer = "64KiB"' runs it with those [limits] keys (a configuration file)."""
import os, socket, subprocess, sys, tempfile, time

def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

sy, ts = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 50
size = int(sys.argv[4]) if len(sys.argv) > 4 else 10 * 1024 * 1024
extra = sys.argv[5:]
scheme = os.environ.get("BACKEND_SCHEME", "http")
bport, pport = free_port(), free_port()
backend = subprocess.Popen([ts, "--port", str(bport)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
env = dict(os.environ, RUST_LOG="warn", SWITCHYARD_ALLOW_ROOT="1")
args = ["--listen", f"127.0.0.1:{pport}", "--backends", f"{scheme}://127.0.0.1:{bport}"]
if os.environ.get("LIMITS"):
    conf = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    conf.write(f'[[listeners]]\naddress = "127.0.0.1:{pport}"\n\n[limits]\n{os.environ["LIMITS"]}\n\n'
               f'[pools.web]\nbackends = ["{scheme}://127.0.0.1:{bport}"]\n')
    conf.close()
    args = ["--config", conf.name]
proxy = subprocess.Popen([sy] + args + ["--rate-limit", "0", "--workers", "1"] + extra,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", pport), timeout=0.2).close(); break
        except OSError:
            time.sleep(0.05)
    # warm up: one full request, so pools and lazy state exist
    w = socket.create_connection(("127.0.0.1", pport))
    w.sendall(b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    while w.recv(65536): pass
    w.close()
    time.sleep(0.3)
    before = rss_kib(proxy.pid)
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", pport))
        s.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(s)
    time.sleep(2.0)
    during = rss_kib(proxy.pid)
    print(f"{n} slow readers of {size} bytes: RSS {before} -> {during} KiB, "
          f"{(during - before) / n:.1f} KiB per slow reader")
    for s in socks: s.close()
    time.sleep(1.0)
    print(f"after they closed: {rss_kib(proxy.pid)} KiB")
finally:
    proxy.kill(); backend.kill()
