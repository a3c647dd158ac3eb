#!/usr/bin/env python3
"""Idle connections and memory given back: the proxy's RSS just started, with N idle keep-alive
connections (each did one GET), and after they all closed, over two rounds.
Usage: bench/idle_rss.py SWITCHYARD_BIN TEST_SERVER_BIN [N] [--h2] [extra proxy args...]
(--h2: each connection speaks cleartext HTTP/2 with prior knowledge, one stream, then idles.)
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


def h2_frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


# The preface, empty SETTINGS, and GET / on stream 1 (HPACK: :method GET, :scheme http, :path /,
# :authority 127.0.0.1 as a literal), END_STREAM | END_HEADERS.
H2_REQUEST = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0)
              + h2_frame(1, 0x5, 1, b"\x82\x86\x84\x01\x09127.0.0.1"))
H2_SETTINGS_ACK = h2_frame(4, 1, 0)


def h2_answered(buf):
    """The answer on stream 1 ended (a HEADERS or DATA frame with END_STREAM), and was a 200?
    None while it has not ended."""
    at, ok = 0, False
    while len(buf) >= at + 9:
        length = int.from_bytes(buf[at:at + 3], "big")
        kind, flags = buf[at + 3], buf[at + 4]
        stream = int.from_bytes(buf[at + 5:at + 9], "big") & 0x7FFFFFFF
        if len(buf) < at + 9 + length:
            return None
        if stream == 1 and kind == 1:
            ok = buf[at + 9:at + 10] == b"\x88"  # :status 200, indexed
        if stream == 1 and kind in (0, 1) and flags & 1:
            return ok
        if kind == 7 or (stream == 1 and kind == 3):  # GOAWAY, RST_STREAM
            return False
        at += 9 + length
    return None


def open_idle(port, n, inflight=200, h2=False):
    """n connections, one GET / each, response read, kept open. Returns the open sockets."""
    sel = selectors.DefaultSelector()
    req = H2_REQUEST if h2 else b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
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
            if h2:
                answered = h2_answered(buf)
                if answered is None:
                    continue
                sel.unregister(s)
                pending -= 1
                if answered:
                    s.send(H2_SETTINGS_ACK)
                    done.append(s)
                else:
                    s.close()
            elif complete(buf):
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
    h2 = "--h2" in extra
    extra = [a for a in extra if a != "--h2"]
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
        close_all(open_idle(pport, 1, h2=h2))  # warm-up: pools and lazy state exist
        time.sleep(0.5)
        started = rss_kib(proxy.pid)
        print(f"just started: {started / 1024:.1f} MiB")
        for rnd in (1, 2):
            socks = open_idle(pport, n, h2=h2)
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
            print(f"round {rnd}: {len(socks)}/{n} idle {'HTTP/2' if h2 else 'HTTP/1.1'} connections: {held / 1024:.1f} MiB "
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
