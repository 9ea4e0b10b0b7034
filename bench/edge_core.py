#!/usr/bin/env python3
"""Whole-process benchmarks of cyberwave-edge-core (README "Performance").

  python3 bench/edge_core.py [--binary target/release/cyberwave-edge-core] [--idle-seconds 60]

Measures, on this machine:
  1. `--version`: wall time and peak RSS over 200 runs.
  2. `status --json` with no daemon and an unreachable (blackholed) backend and broker.
  3. The idle daemon against a local fake backend and a local Mosquitto: resident memory,
     CPU time and wake-ups (context switches of all its threads) per second.
Needs: a release build, mosquitto (Debian package) for part 3.
"""
import argparse, http.server, json, os, shutil, socket, statistics, subprocess, sys, tempfile, threading, time

TOKEN = "cw_bench_token_0123456789"
FP = "bench-edge-000000000000"
ENV = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
TWINS = ["11111111-2222-4333-8444-55555555555%d" % i for i in range(3)]


def run(cmd, env):
    """(wall s, peak RSS MiB, exit code). RSS comes from GNU time (a fork of this Python
    process would report Python's own pages), wall from here (time adds ~1 ms)."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M %x"] + cmd, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    rss_kb, code = p.stderr.strip().splitlines()[-1].split()
    return wall, int(rss_kb) / 1024.0, int(code)


def summary(name, samples):
    walls = sorted(s[0] * 1000 for s in samples)
    rss = max(s[1] for s in samples)
    p = lambda q: walls[min(len(walls) - 1, int(q * len(walls)))]
    print(f"{name}: n={len(walls)} wall p50={p(0.5):.2f} ms p95={p(0.95):.2f} ms max={walls[-1]:.2f} ms; peak RSS {rss:.2f} MiB; exit codes {sorted(set(s[2] for s in samples))}")


class Backend(http.server.BaseHTTPRequestHandler):
    linked = True

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/api/v1/users/workspaces":
            return self.reply(200, [{"uuid": "w", "name": "ws"}])
        if path == f"/api/v1/environments/{ENV}/twins":
            owner = FP if Backend.linked else "another-edge"
            return self.reply(200, [{"uuid": t, "metadata": {"edge_fingerprint": owner}} for t in TWINS])
        self.reply(404, {"detail": "Not found."})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.rfile.read(n)
        if self.path.startswith("/api/v1/edges/discover"):
            return self.reply(200, {"edge_uuid": "e", "twins": []})
        if self.path.startswith("/api/v1/edges"):
            return self.reply(201, {"uuid": "0e0e0e0e-0000-4000-8000-000000000001", "fingerprint": FP})
        self.reply(404, {})


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_figures(pid):
    """(VmRSS MiB, VmHWM MiB, cpu seconds, context switches over all threads)."""
    rss = hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    voluntary = switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
                    if line.startswith("voluntary_ctxt_switches"):
                        voluntary += int(line.split()[1])
        except FileNotFoundError:
            pass
    return rss, hwm, cpu, voluntary, switches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/cyberwave-edge-core")
    ap.add_argument("--idle-seconds", type=int, default=60)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "cfg")
    os.makedirs(cfg)
    base_env = {"PATH": os.environ["PATH"], "HOME": tmp, "CYBERWAVE_EDGE_CONFIG_DIR": cfg, "CYBERWAVE_EDGE_UUID": FP}

    direct = []
    for _ in range(200):
        t = time.perf_counter()
        subprocess.run([binary, "--version"], env=base_env, stdout=subprocess.DEVNULL)
        direct.append(time.perf_counter() - t)
    direct.sort()
    print(f"--version (spawned directly): n=200 wall p50={1000 * direct[100]:.2f} ms p95={1000 * direct[190]:.2f} ms")
    summary("--version (under /usr/bin/time)", [run([binary, "--version"], base_env) for _ in range(50)])

    with open(os.path.join(cfg, "credentials.json"), "w") as f:
        json.dump({"token": TOKEN, "envs": {"CYBERWAVE_BASE_URL": "http://192.0.2.1:9"}}, f)
    with open(os.path.join(cfg, "environment.json"), "w") as f:
        json.dump({"uuid": ENV}, f)
    summary("status --json (no daemon, backend+broker: no route)", [run([binary, "status", "--json"], base_env) for _ in range(10)])
    # A listener that never accepts: TCP connects, then nothing answers (a hung backend/broker).
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(512)
    hport = hung.getsockname()[1]
    with open(os.path.join(cfg, "credentials.json"), "w") as f:
        json.dump({"token": TOKEN, "envs": {"CYBERWAVE_BASE_URL": f"http://127.0.0.1:{hport}", "CYBERWAVE_MQTT_PORT": str(hport)}}, f)
    summary("status --json (no daemon, backend+broker hung)", [run([binary, "status", "--json"], base_env) for _ in range(10)])
    hung.close()

    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(mosquitto):
        print("idle daemon: skipped (mosquitto not installed)")
        return
    mport = free_port()
    conf = os.path.join(tmp, "m.conf")
    with open(conf, "w") as f:
        f.write(f"listener {mport} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen([mosquitto, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(os.path.join(cfg, "credentials.json"), "w") as f:
        json.dump({"token": TOKEN, "envs": {"CYBERWAVE_BASE_URL": f"http://127.0.0.1:{server.server_port}",
                                             "CYBERWAVE_MQTT_PORT": str(mport)}}, f)
    try:
        for label, linked in (("quiet: registered, no linked twin, no health publisher", False),
                              (f"{len(TWINS)} linked twins, edge_health every 5 s", True)):
            Backend.linked = linked
            idle(binary, base_env, label, args.idle_seconds)
    finally:
        broker.terminate()
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def idle(binary, env, label, seconds):
    daemon = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(10)  # boot, register, first health rounds
        out = subprocess.run([binary, "status", "--json"], env=env, capture_output=True, text=True)
        state = json.loads(out.stdout)["state"]
        r0, _, c0, v0, s0 = proc_figures(daemon.pid)
        time.sleep(seconds)
        r1, hwm, c1, v1, s1 = proc_figures(daemon.pid)
        print(f"idle daemon ({label}; status={state}): RSS {r1:.2f} MiB (peak {hwm:.2f} MiB); "
              f"CPU {1000 * (c1 - c0) / seconds:.3f} ms/s; wake-ups (voluntary switches) {(v1 - v0) / seconds:.2f}/s, "
              f"all context switches {(s1 - s0) / seconds:.2f}/s, over {seconds} s")
    finally:
        daemon.terminate()
        daemon.wait()


if __name__ == "__main__":
    sys.exit(main())
