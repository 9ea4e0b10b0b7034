#!/usr/bin/env python3
"""Whole-process benchmarks of cyberwave-edge-core (README "Performance").

  python3 bench/edge_core.py [--binary target/release/cyberwave-edge-core] [--idle-seconds 60]

Measures, on this machine:
  1. `--version`: wall time and peak RSS over 200 runs.
  2. `status --json` with no daemon and an unreachable (blackholed) backend and broker.
  3. The idle daemon against a local fake backend (keep-alive HTTP/1.1, as the real one) and
     a local Mosquitto, scenario by scenario (bench/idle.py): wake-ups per second of every
     thread (voluntary context switches from /proc/<pid>/task/*, zenoh's threads included),
     CPU, RSS, and backend requests and bytes per idle hour; with a third-party zenoh peer on
     the host; --original runs the Python original (pip install cyberwave-edge-core==0.1.30)
     through the same scenarios.
Needs: a release build, mosquitto (Debian package) and Docker for part 3; the test venv's
Python (target/py-venv, made by scripts/test) for the zenoh peers.
"""
import argparse, http.server, json, os, shutil, socket, statistics, subprocess, sys, tempfile, threading, time

import idle

HERE = os.path.dirname(os.path.abspath(__file__))

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
    ap.add_argument("--idle-seconds", type=int, default=120)
    ap.add_argument("--settle-seconds", type=int, default=20, help="from start to the idle window")
    ap.add_argument("--python", default="target/py-venv/bin/python",
                    help="a Python with eclipse-zenoh (the SDK's): the third-party and driver peers")
    ap.add_argument("--original", help="the original's cyberwave-edge-core executable, run the same way")
    ap.add_argument("--json", help="write every scenario's figures here")
    ap.add_argument("--only-idle", action="store_true", help="skip parts 1 and 2")
    ap.add_argument("--only", help="run only the idle scenarios whose name contains this")
    ap.add_argument("--original-only", action="store_true", help="run the idle scenarios of --original alone")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    if args.only_idle:
        return idle_scenarios(binary, args)
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

    if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
        print("idle daemon: skipped (mosquitto not installed)")
        return
    idle_scenarios(binary, args)


def idle_scenarios(binary, args):
    """Part 3: the idle daemon, ours and (--original) the Python original, scenario by
    scenario (bench/idle.py)."""
    python = os.path.abspath(args.python) if args.python and os.path.exists(args.python) else None
    if not python:
        print("(no Python with eclipse-zenoh: no third-party zenoh peer, no zenoh drivers)")
    subprocess.run([os.path.join(HERE, "..", "examples", "local", "build-driver-image.sh"), idle.IMAGE],
                   check=True, stdout=subprocess.DEVNULL)
    os.environ["PATH"] = "/usr/sbin:" + os.environ["PATH"]
    quiet = lambda i: ["-e", "DRIVER_MODE=quiet"]
    zenoh_driver = idle.zenoh_peer_params(python) if python else None
    w, settle = args.idle_seconds, args.settle_seconds
    if args.original:
        # Every answer carries the fields the SDK requires (the original validates them), for
        # both programs alike: the same bytes on the wire.
        idle.load_shapes(os.path.join(os.path.dirname(os.path.abspath(args.original)), "python"))
    programs = ([] if args.original_only else [("ours", [binary])]) + \
        ([("original 0.1.30", [os.path.abspath(args.original)])] if args.original else [])
    results = {}
    for who, command in programs:
        print(f"{who} ({' '.join(command)}), {w} s per scenario after {settle} s, a third-party zenoh peer on the host"
              f"{'' if python else ' (absent)'}:", flush=True)
        plan = [("0 twins", 0, None), ("1 twin, no driver: edge_health every 5 s", 1, None),
                ("1 twin with a running driver", 1, quiet), ("10 twins with running drivers", 10, quiet)]
        if who == "ours" and zenoh_driver:
            plan += [("3 twins with running drivers", 3, quiet),
                     ("3 twins whose drivers each run an idle SDK zenoh peer", 3, lambda i: zenoh_driver)]
        for label, twins, params in plan:
            if args.only and args.only not in label:
                continue
            r = idle.scenario(label, command, twins, params, w, python, settle)
            results[(who, label)] = r
            idle.report(r)
        if who == "ours" and zenoh_driver and (who, "3 twins with running drivers") in results \
                and (who, "3 twins whose drivers each run an idle SDK zenoh peer") in results:
            plain = results[(who, "3 twins with running drivers")]["wakeups"]
            linked = results[(who, "3 twins whose drivers each run an idle SDK zenoh peer")]["wakeups"]
            print(f"  each zenoh link of our drivers: {(linked - plain) / 3:+.2f} wake-ups/s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{k[0]}: {k[1]}": v for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
