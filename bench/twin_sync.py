#!/usr/bin/env python3
"""Twin sync benchmark (README "Performance").

  python3 bench/twin_sync.py [--binary target/release/cyberwave-edge-core] [--twins 50]
                             [--ticks 8] [--baseline-binary OLD] [--edits 10]

Runs the daemon against a small in-process fake backend (the REST calls the daemon makes, no
more) and a private Mosquitto, with N twins linked to the edge that need no container (attached
twins without drivers), so every tick is pure bookkeeping: N twin files on disk, N backend
twins to compare.

  * idle: the daemon's CPU time per 15 s tick with 0 twins (the floor) and with N unchanged
    twin files; with --baseline-binary, the same for another build (e.g. the release before
    twin sync) in the same run;
  * edit → PUT: a twin file edited on disk until the backend sees the PUT (median of --edits);
  * backend → file: a backend metadata change until the file on disk carries it.
"""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "cw_bench_token_0123456789"
ENV = "e0000000-0000-4000-8000-000000000001"
WS = "5b1f3a9e-0000-4000-8000-000000000001"
FP = "bench-edge-0a1b2c3d4e5f"
TICK = 15.0


def twin_uuid(i):
    return f"b0000000-0000-4000-8000-{i:012x}"


class Backend:
    def __init__(self, n):
        self.lock = threading.Lock()
        self.twins = {}
        self.puts = []  # (time, uuid, body)
        for i in range(n):
            u = twin_uuid(i)
            self.twins[u] = {"uuid": u, "name": f"bench {i}", "asset_uuid": "a0000000-0000-4000-8000-000000000001",
                             "environment_uuid": ENV, "attach_to_twin_uuid": "f0000000-0000-4000-8000-000000000001",
                             "metadata": {"edge_fingerprint": FP, "value": 0}}

    def route(self, method, path, body):
        parts = path.split("?")[0].strip("/").split("/")[2:]  # after api/v1
        with self.lock:
            if method == "POST" and parts == ["edges"]:
                return 201, {"uuid": "ed000000-0000-4000-8000-000000000001", "fingerprint": FP, "name": FP,
                             "workspace_uuid": WS, "metadata": {}}
            if method == "GET" and parts[:1] == ["edges"] and len(parts) == 2:
                return 200, {"uuid": parts[1], "fingerprint": FP, "workspace_uuid": WS, "metadata": {}}
            if method == "GET" and parts == ["users", "workspaces"]:
                return 200, [{"uuid": WS, "name": "bench"}]
            if method == "GET" and parts[:1] == ["environments"] and parts[2:] == ["twins"]:
                return 200, list(self.twins.values())
            if method == "GET" and parts[:1] == ["twins"] and len(parts) == 2:
                t = self.twins.get(parts[1])
                return (200, t) if t else (404, {"detail": "Not found."})
            if method == "PUT" and parts[:1] == ["twins"] and len(parts) == 2 and parts[1] in self.twins:
                self.twins[parts[1]].update(body)
                self.puts.append((time.monotonic(), parts[1], body))
                return 200, self.twins[parts[1]]
            if method == "GET" and parts[:1] == ["assets"]:
                return 200, {"uuid": parts[1], "name": "gripper", "metadata": {}}
            if method == "GET" and parts[:2] == ["workflows", "edge-sync"]:
                return 200, {"workflows": [], "skipped_workflows": []}
            if parts[:1] == ["alerts"]:
                return (201 if method == "POST" else 200), {"uuid": "a1e70000-0000-4000-8000-000000000001"}
            return 404, {"detail": "Not found."}


def serve(backend):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def handle_one(self, method):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                code, out = 401, {"detail": "Invalid token."}
            else:
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                code, out = backend.route(method, self.path, body)
            data = json.dumps(out).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.handle_one("GET")

        def do_POST(self):
            self.handle_one("POST")

        def do_PUT(self):
            self.handle_one("PUT")

        def do_PATCH(self):
            self.handle_one("PATCH")

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_daemon(binary, n, mqtt_port):
    backend = Backend(n)
    srv = serve(backend)
    d = tempfile.mkdtemp(prefix="cw-bench-sync-")
    with open(os.path.join(d, "credentials.json"), "w") as f:
        json.dump({"token": TOKEN, "email": "", "envs": {
            "CYBERWAVE_BASE_URL": f"http://127.0.0.1:{srv.server_address[1]}",
            "CYBERWAVE_MQTT_HOST": "127.0.0.1", "CYBERWAVE_MQTT_PORT": str(mqtt_port),
            "CYBERWAVE_ENVIRONMENT": "dev"}}, f)
    with open(os.path.join(d, "environment.json"), "w") as f:
        json.dump({"uuid": ENV, "name": "bench", "workspace_uuid": WS, "workspace_name": "bench"}, f)
    env = dict(os.environ, CYBERWAVE_EDGE_CONFIG_DIR=d, CYBERWAVE_EDGE_UUID=FP, HOME=d,
               CYBERWAVE_EDGE_LOG_LEVEL="warning")
    log = open(os.path.join(d, "daemon.log"), "w")
    p = subprocess.Popen([binary, "start"], env=env, stdout=log, stderr=subprocess.STDOUT)
    return p, backend, srv, d


def wait(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def files_ready(d, n):
    return sum(1 for i in range(n) if os.path.exists(os.path.join(d, f"{twin_uuid(i)}.json"))) == n


def idle_cpu(binary, n, ticks, mqtt_port):
    p, backend, srv, d = start_daemon(binary, n, mqtt_port)
    try:
        if not wait(lambda: files_ready(d, n), 60):
            sys.exit(f"{binary}: {n} twin files not written; log in {d}/daemon.log")
        time.sleep(TICK + 2)  # past the first full tick
        c0 = cpu_of(p.pid)
        time.sleep(ticks * TICK)
        return (cpu_of(p.pid) - c0) / ticks * 1000
    finally:
        p.terminate()
        p.wait(10)
        srv.shutdown()
        shutil.rmtree(d, ignore_errors=True)


def latencies(binary, n, edits, mqtt_port):
    p, backend, srv, d = start_daemon(binary, n, mqtt_port)
    out = {"edit_to_put": [], "backend_to_file": []}
    try:
        if not wait(lambda: files_ready(d, n), 60):
            sys.exit(f"twin files not written; log in {d}/daemon.log")
        time.sleep(2)
        u = twin_uuid(0)
        path = os.path.join(d, f"{u}.json")
        for k in range(1, edits + 1):
            with open(path) as f:
                doc = json.load(f)
            doc["metadata"]["value"] = k
            before = len(backend.puts)
            t = time.monotonic()
            with open(path, "w") as f:
                json.dump(doc, f)
            if not wait(lambda: any(b.get("metadata", {}).get("value") == k for _, _, b in backend.puts[before:]), 30):
                sys.exit(f"edit {k} never reached the backend; log in {d}/daemon.log")
            out["edit_to_put"].append(next(at for at, _, b in backend.puts[before:]
                                           if b.get("metadata", {}).get("value") == k) - t)
            time.sleep(1)
        for k in range(3):
            with backend.lock:
                backend.twins[u]["metadata"]["remote"] = k
            t = time.monotonic()

            def has():
                try:
                    with open(path) as f:
                        return json.load(f)["metadata"].get("remote") == k
                except (OSError, ValueError, KeyError):
                    return False
            if not wait(has, 2 * TICK + 5):
                sys.exit(f"backend change never reached the file; log in {d}/daemon.log")
            out["backend_to_file"].append(time.monotonic() - t)
    finally:
        p.terminate()
        p.wait(10)
        srv.shutdown()
        shutil.rmtree(d, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/cyberwave-edge-core")
    ap.add_argument("--baseline-binary")
    ap.add_argument("--twins", type=int, default=50)
    ap.add_argument("--ticks", type=int, default=8)
    ap.add_argument("--edits", type=int, default=10)
    a = ap.parse_args()
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    broker = subprocess.Popen([mosq, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        builds = [("this build", a.binary)] + ([("baseline", a.baseline_binary)] if a.baseline_binary else [])
        print(f"CPU per idle {TICK:.0f} s tick, mean of {a.ticks} ticks:")
        for label, b in builds:
            floor = idle_cpu(b, 0, a.ticks, port)
            full = idle_cpu(b, a.twins, a.ticks, port)
            print(f"  {label}: 0 twins {floor:.1f} ms, {a.twins} unchanged twin files {full:.1f} ms "
                  f"(+{(full - floor) / max(a.twins, 1):.2f} ms per twin)")
        lat = latencies(a.binary, a.twins, a.edits, port)
        e, r = lat["edit_to_put"], lat["backend_to_file"]
        print(f"edit -> PUT: median {statistics.median(e):.2f} s, worst {max(e):.2f} s ({len(e)} edits)")
        print(f"backend change -> file: median {statistics.median(r):.2f} s, worst {max(r):.2f} s "
              f"(tick {TICK:.0f} s)")
    finally:
        broker.terminate()


if __name__ == "__main__":
    main()
