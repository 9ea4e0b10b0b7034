#!/usr/bin/env python3
"""The data bus benchmark (README "Performance", issue 14).

  target/py-venv/bin/python bench/bus.py [--binary B] [--floor-binary F] [--seconds 20] [--rtts 2000]

With the daemon in local mode (no backend, no broker, no drivers) and its embedded zenoh router
on a free port, measured on this machine:
  1. resident memory of the idle daemon: with its default peer session, with the embedded
     router (and of --floor-binary, a build without zenoh);
  2. resident memory and CPU while two client peers exchange 1 KiB samples at 1 kHz through it
     (the daemon also counts them: the publisher uses a cw/<twin>/data/ key of a linked twin);
  3. round-trip latency p50/p99 of 1 KiB samples between two peers through the router, against
     the same two peers connected directly (the router's added latency).
Needs the Python of the test venv (eclipse-zenoh, as the Cyberwave SDK installs it) and Docker.
"""
import argparse, json, os, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "..", "tests", "support", "py", "zenoh_peer.py")
TWIN = "0b0b0b0b-0000-4000-8000-000000000001"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / hz


def start_daemon(binary, port, embedded=True):
    d = tempfile.mkdtemp()
    manifest = os.path.join(d, "manifest.json")
    # One twin with no drivers metadata: linked (its data is counted), no container.
    with open(manifest, "w") as f:
        json.dump({"twins": [{"uuid": TWIN, "name": "bench", "metadata": {}}], "assets": []}, f)
    env = dict(os.environ, CYBERWAVE_EDGE_CONFIG_DIR=d, CYBERWAVE_HARDWARE_WATCHDOG="false",
               CYBERWAVE_EDGE_LOG_LEVEL="warning")
    if embedded:
        env.update(ZENOH_ROUTER_MODE="embedded", ZENOH_ROUTER_PORT=str(port))
    p = subprocess.Popen([binary, "run", "--local", manifest], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, d, env


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def peer(*args, **kw):
    return subprocess.Popen([sys.executable, PEER, *args], stdout=subprocess.PIPE, text=True, **kw)


def ping(endpoint_pong, endpoint_ping, n):
    pong = peer("pong", endpoint_pong, "120")
    assert pong.stdout.readline().strip() == "ready"
    out = subprocess.run([sys.executable, PEER, "ping", endpoint_ping, str(n), "1024"],
                         capture_output=True, text=True, timeout=300).stdout
    pong.kill()
    pong.wait()
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/x86_64-unknown-linux-musl/release/cyberwave-edge-core")
    ap.add_argument("--floor-binary", help="a build without the zenoh feature, for the idle floor")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rtts", type=int, default=2000)
    a = ap.parse_args()

    if a.floor_binary:
        p, _, _ = start_daemon(a.floor_binary, 0, embedded=False)
        time.sleep(5)
        print(f"idle daemon without zenoh: RSS {rss_kib(p.pid) / 1024:.1f} MiB")
        p.terminate()
        p.wait()

    p, _, _ = start_daemon(a.binary, 0, embedded=False)
    time.sleep(5)
    print(f"idle daemon with zenoh, its default peer session: RSS {rss_kib(p.pid) / 1024:.1f} MiB")
    p.terminate()
    p.wait()

    port = free_port()
    p, d, _ = start_daemon(a.binary, port)
    if not wait_port(port):
        sys.exit("the embedded router never listened")
    time.sleep(5)
    print(f"idle daemon with the embedded router: RSS {rss_kib(p.pid) / 1024:.1f} MiB")

    ep = f"tcp/127.0.0.1:{port}"
    key = f"cw/{TWIN}/data/frames"
    sub = peer("sub", ep, key, str(10 ** 9), str(a.seconds + 2))
    assert sub.stdout.readline().strip() == "ready"
    c0, t0 = cpu_s(p.pid), time.time()
    pub = peer("pub", ep, key, "1000", "1024", str(a.seconds))
    peak = 0
    while pub.poll() is None:
        peak = max(peak, rss_kib(p.pid))
        time.sleep(0.25)
    used, wall = cpu_s(p.pid) - c0, time.time() - t0
    published = json.loads(pub.stdout.read().strip().splitlines()[-1])["published"]
    received = json.loads(sub.stdout.read().strip().splitlines()[-1])["received"]
    sub.wait()
    print(f"2 peers, {published / a.seconds:.0f} Hz x 1 KiB for {a.seconds:.0f} s through it: "
          f"peak RSS {peak / 1024:.1f} MiB, daemon CPU {100 * used / wall:.1f} % of one core, "
          f"{published} published, {received} received")

    routed = ping(ep, ep, a.rtts)
    q = free_port()
    direct = ping(f"listen:tcp/127.0.0.1:{q}", f"peer:tcp/127.0.0.1:{q}", a.rtts)
    print(f"round trip 1 KiB, {a.rtts} samples: through the router p50 {routed['p50_ms']:.3f} ms "
          f"p99 {routed['p99_ms']:.3f} ms; direct p50 {direct['p50_ms']:.3f} ms p99 {direct['p99_ms']:.3f} ms; "
          f"added p50 {routed['p50_ms'] - direct['p50_ms']:.3f} ms p99 {routed['p99_ms'] - direct['p99_ms']:.3f} ms")
    p.terminate()
    p.wait()


if __name__ == "__main__":
    main()
