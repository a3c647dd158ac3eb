#!/usr/bin/env python3
"""Idle connections and memory given back: the proxy's RSS just started, with N idle keep-alive
connections (each did one GET), and after they all closed, over two rounds.
Usage: bench/idle_rss.py SWITCHYARD_BIN TEST_SERVER_BIN [N] [extra proxy args...]
(bench/run idle-rss builds both and runs it with 10,000 connections.) Everything stays on
127.0.0.1; the file-descriptor limit is raised to its hard limit, and N lowered to fit it."""
import os, resource, selectors, socket, struct, subprocess, sys, time

AFTER = (0.5, 1.0, 2.0, 5.0)  # seconds after the last close at which RSS is sampled
HELD_LONGER = 4.0             # seconds after opening at which the held RSS is sampled again
OPEN_TIMEOUT = 90.0           # seconds to open all N connections, then give up on the rest


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on 127.0.0.1:{port}")


def complete(buf):
    """A whole response with Content-Length (what test-server sends)?"""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    for line in bytes(buf[:end]).lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(buf) >= end + 4 + int(line.split(b":")[1])
    return True


def open_idle(port, n, inflight=200):
    """n connections, one GET / each, response read, kept open. Returns the open sockets."""
    sel = selectors.DefaultSelector()
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    done, started, pending = [], 0, 0
    deadline = time.monotonic() + OPEN_TIMEOUT
    while (started < n or pending) and time.monotonic() < deadline:
        while started < n and pending < inflight:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE, bytearray())
            started += 1
            pending += 1
        for key, ev in sel.select(0.5):
            s, buf = key.fileobj, key.data
            try:
                if ev & selectors.EVENT_WRITE:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        raise OSError("connect failed")
                    s.send(req)
                    sel.modify(s, selectors.EVENT_READ, buf)
                    continue
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("closed")
            except BlockingIOError:
                continue
            except OSError:
                sel.unregister(s)
                s.close()
                pending -= 1
                continue
            buf += chunk
            if complete(buf):
                sel.unregister(s)
                pending -= 1
                if buf.startswith(b"HTTP/1.1 200"):
                    done.append(s)
                else:
                    s.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    return done


def close_all(socks):
    """Close with RST (SO_LINGER 0), as the comparison does: no TIME_WAIT pile-up here."""
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()


def main():
    sy, ts = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    extra = sys.argv[4:]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if n > hard - 200:
        n = hard - 200
        print(f"file-descriptor limit {hard}: {n} connections")
    bport, pport = free_port(), free_port()
    backend = subprocess.Popen([ts, "--port", str(bport)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, RUST_LOG="warn", SWITCHYARD_ALLOW_ROOT="1")
    proxy = subprocess.Popen([sy, "--listen", f"127.0.0.1:{pport}", "--backends",
                              f"http://127.0.0.1:{bport}", "--rate-limit", "0", "--workers", "1",
                              "--read-timeout", "300s", "--write-timeout", "300s"] + extra,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_listening(bport)
        wait_listening(pport)
        close_all(open_idle(pport, 1))  # warm-up: pools and lazy state exist
        time.sleep(0.5)
        started = rss_kib(proxy.pid)
        print(f"just started: {started / 1024:.1f} MiB")
        for rnd in (1, 2):
            socks = open_idle(pport, n)
            time.sleep(1.0)
            held = rss_kib(proxy.pid)
            per = (held - started) / len(socks) if socks else 0.0
            # Idle HTTP/1.1 connections let their buffers go 0.25-0.5 s after their answer,
            # and the freed memory is given back a second after that wave: held longer, the
            # figure settles.
            time.sleep(HELD_LONGER - 1.0)
            settled = rss_kib(proxy.pid)
            per_settled = (settled - started) / len(socks) if socks else 0.0
            close_all(socks)
            t0, after = time.monotonic(), []
            for at in AFTER:
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                after.append(rss_kib(proxy.pid))
            line = ", ".join(f"{at:g} s {kib / 1024:.1f}" for at, kib in zip(AFTER, after))
            back = (held - after[-1]) / (held - started) * 100 if held > started else 0.0
            print(f"round {rnd}: {len(socks)}/{n} idle connections: {held / 1024:.1f} MiB "
                  f"({per:.2f} KiB each) at 1 s, {settled / 1024:.1f} MiB ({per_settled:.2f} KiB "
                  f"each) at {HELD_LONGER:g} s; after they closed: {line} MiB "
                  f"({back:.0f}% of the growth given back)")
    finally:
        proxy.kill()
        backend.kill()
        proxy.wait()
        backend.wait()


if __name__ == "__main__":
    main()
