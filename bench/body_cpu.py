#!/usr/bin/env python3
"""CPU per MiB of switchyard moving SIZE-byte bodies from test-server (h2load --h1 -c 16 -D SECS,
one worker), several variants side by side, round after round; prints each run and the medians
as ratios to the first variant. A variant is NAME=SWITCHYARD_BIN[:SCHEME[:LIMITS]]: SCHEME is
http (default) or h2c, LIMITS [limits] keys for a configuration file, e.g.
  bench/body_cpu.py target/release/test-server 3 8 1048576 \\
    default=target/release/switchyard 'small=target/release/switchyard:http:max_backend_header_bytes = "16KiB"'
"""
import os, socket, subprocess, sys, time, tempfile, re
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
ts, rounds, secs, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
variants = []
for v in sys.argv[5:]:
    name, rest = v.split("=", 1)
    parts = rest.split(":", 2) + ["", ""]
    variants.append((name, parts[0], parts[1] or "http", parts[2]))
bport = free_port()
backend = subprocess.Popen([ts, "--port", str(bport)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
env = dict(os.environ, RUST_LOG="warn", SWITCHYARD_ALLOW_ROOT="1")
results = {v[0]: [] for v in variants}
try:
    time.sleep(0.5)
    for r in range(rounds):
        for name, binary, scheme, limits in variants:
            pport = free_port()
            args = ["--listen", f"127.0.0.1:{pport}", "--backends", f"{scheme}://127.0.0.1:{bport}"]
            if limits:
                conf = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
                conf.write(f'[[listeners]]\naddress = "127.0.0.1:{pport}"\n\n[limits]\n{limits}\n\n'
                           f'[pools.web]\nbackends = ["{scheme}://127.0.0.1:{bport}"]\n'); conf.close()
                args = ["--config", conf.name]
            p = subprocess.Popen([binary] + args + ["--rate-limit", "0", "--workers", "1"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            for _ in range(100):
                try: socket.create_connection(("127.0.0.1", pport), timeout=0.2).close(); break
                except OSError: time.sleep(0.05)
            url = f"http://127.0.0.1:{pport}/bytes/{size}"
            subprocess.run(["h2load", "--h1", "-c", "16", "-n", "64", url], capture_output=True)
            c0 = cpu(p.pid)
            out = subprocess.run(["h2load", "--h1", "-c", "16", "-D", str(secs), url], capture_output=True, text=True).stdout
            c1 = cpu(p.pid)
            p.kill(); p.wait()
            m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
            done = int(m.group(2)) if m else 0
            mib = done * size / 1048576
            us = (c1 - c0) * 1e6 / mib if mib else float("nan")
            results[name].append(us)
            print(f"round {r} {name}: {done} responses, {mib:.0f} MiB, proxy CPU {c1-c0:.2f} s, {us:.0f} us/MiB", flush=True)
finally:
    backend.kill()
base = sorted(results[variants[0][0]])[len(results[variants[0][0]])//2]
for name, *_ in variants:
    v = sorted(results[name]); med = v[len(v)//2]
    print(f"{name}: median {med:.0f} us/MiB ({med/base:.3f} x {variants[0][0]})")
