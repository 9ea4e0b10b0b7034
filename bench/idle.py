"""The idle daemon, scenario by scenario (bench/edge_core.py part 3): wake-ups per thread (all
of them, zenoh's included), CPU, RSS, and the backend requests and bytes it makes per idle hour,
for our binary and — with --original — the Python original run the same way.

Scenarios: twins linked to this edge with no driver (edge_health every 5 s, the contract's
cadence), or each with a running driver (the example image, silent); a third-party zenoh peer
on the host (the SDK's eclipse-zenoh, zenoh's defaults: multicast discovery) in every one; and
drivers whose container runs an idle SDK zenoh peer (the cost of each zenoh link of ours).
Standard library only; the zenoh peers need a Python with eclipse-zenoh (--python).
"""
import collections, json, os, re, shutil, socket, subprocess, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "cw_bench_token_0123456789"
FP = "bench-idle-000000000000"
ENV = "e1d1e000-0000-4000-8000-000000000001"
WS = "5b1f3a9e-0000-4000-8000-000000000002"
IMAGE = "cyberwave-example-driver:local"
HERE = os.path.dirname(os.path.abspath(__file__))
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def twin_uuid(i):
    return f"71de{i:04x}-0000-4000-8000-{i:012x}"


def asset_uuid(i):
    return f"a55e1de0-0000-4000-8000-{i:012x}"


class Backend:
    """The REST calls of an edge, answered over keep-alive HTTP/1.1 as the real backend does;
    counts requests and bytes (both directions) per method and path shape."""

    # The schema each answer is an instance of, as the SDK names it (see `shapes`).
    SCHEMAS = [("GET", ("users", "workspaces"), "WorkspaceSchema"), ("POST", ("edges",), "EdgeSchema"),
               ("GET", ("edges", None), "EdgeSchema"), ("GET", ("edges",), "EdgeSchema"),
               ("POST", ("edges", "discover"), "DiscoveryResponseSchema"),
               ("GET", ("environments", None, "twins"), "TwinSchema"), ("GET", ("twins", None), "TwinSchema"),
               ("PUT", ("twins", None), "TwinSchema"), ("GET", ("assets", None), "AssetSchema"),
               ("POST", ("alerts",), "AlertSchema"), ("GET", ("alerts",), "AlertSchema"),
               ("GET", ("alerts", None), "AlertSchema"), ("PUT", ("alerts", None), "AlertSchema"),
               ("POST", ("alerts", None, "resolve"), "AlertSchema")]
    shapes = {}  # schema name -> an instance with every field the SDK requires

    def shaped(self, method, parts, out):
        """`out` over the SDK's required fields, so a validating client (the original) takes it."""
        for m, pattern, schema in self.SCHEMAS:
            if m == method and len(pattern) == len(parts) and all(p is None or p == q for p, q in zip(pattern, parts)):
                base = self.shapes.get(schema)
                if base is None:
                    return out
                if isinstance(out, list):
                    return [dict(base, **o) for o in out]
                return dict(base, **out) if isinstance(out, dict) else out
        return out

    def __init__(self, twins, driver_params):
        self.lock = threading.Lock()
        self.calls = collections.Counter()
        self.bytes = collections.Counter()
        self.twins = {twin_uuid(i): {"uuid": twin_uuid(i), "name": f"idle {i}", "asset_uuid": asset_uuid(i),
                                     "environment_uuid": ENV, "metadata": {"edge_fingerprint": FP}}
                      for i in range(twins)}
        self.driver_params = driver_params  # per twin index, or None: no driver
        self.alerts = {}

    def asset(self, uuid):
        i = int(uuid.rsplit("-", 1)[1], 16)
        meta = {}
        if self.driver_params is not None:
            meta = {"drivers": {"default": {"docker_image": IMAGE, "privileged": False,
                                            "params": self.driver_params(i)}}}
        return {"uuid": uuid, "name": "idle", "metadata": meta}

    def alert(self, method, parts, query, body):
        """Alerts as the backend keeps them: created, listed by twin and status, updated,
        resolved."""
        if method == "POST" and len(parts) == 1:
            uuid = f"a1e70000-0000-4000-8000-{len(self.alerts) + 1:012x}"
            self.alerts[uuid] = dict(body, uuid=uuid, status="active")
            return 200, self.alerts[uuid]
        if method == "GET" and len(parts) == 1:
            q = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
            return 200, [a for a in self.alerts.values()
                         if a.get("twin_uuid") == q.get("twin_uuid", a.get("twin_uuid"))
                         and a["status"] == q.get("status", a["status"])]
        a = self.alerts.get(parts[1])
        if a is None:
            return 404, {"detail": "Not found."}
        if method == "POST" and parts[2:] == ["resolve"]:
            a["status"] = "resolved"
        elif method in ("PUT", "PATCH"):
            a.update(body)
        return 200, a

    def route(self, method, path, body=None):
        parts = path.split("?")[0].strip("/").split("/")[2:]
        if parts[:1] == ["alerts"]:
            return self.alert(method, parts, path.partition("?")[2], body or {})
        if method == "POST" and parts == ["edges"]:
            return 200, {"uuid": "ed1de000-0000-4000-8000-000000000001", "fingerprint": FP, "name": FP,
                         "workspace_uuid": WS, "metadata": {}}
        if method == "GET" and parts[:1] == ["edges"] and len(parts) == 2:
            return 200, {"uuid": parts[1], "fingerprint": FP, "workspace_uuid": WS, "metadata": {}}
        if method == "POST" and parts == ["edges", "discover"]:
            return 200, {"fingerprint": FP, "twins": []}
        if method == "GET" and parts == ["users", "workspaces"]:
            return 200, [{"uuid": WS, "name": "bench"}]
        if method == "GET" and parts[:1] == ["environments"] and parts[2:] == ["twins"]:
            return 200, list(self.twins.values())
        if method == "GET" and parts[:1] == ["environments"] and len(parts) == 2:
            return 200, {"uuid": parts[1], "name": "bench", "workspace_uuid": WS}
        if method in ("GET", "PUT", "PATCH") and parts[:1] == ["twins"] and len(parts) == 2 and parts[1] in self.twins:
            return 200, self.twins[parts[1]]
        if method == "GET" and parts[:1] == ["assets"] and len(parts) == 2:
            return 200, self.asset(parts[1])
        if method == "GET" and parts[:2] == ["workflows", "edge-sync"]:
            return 200, {"workflows": [], "skipped_workflows": []}
        return 404, {"detail": "Not found."}

    def serve(self):
        backend = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def one(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    code, out = 401, {"detail": "Invalid token."}
                else:
                    try:
                        body = json.loads(raw) if raw else {}
                    except ValueError:
                        body = {}
                    with backend.lock:
                        code, out = backend.route(method, self.path, body if isinstance(body, dict) else {})
                        if code < 300:
                            parts = self.path.split("?")[0].strip("/").split("/")[2:]
                            out = backend.shaped(method, parts, out)
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                # Head and body in one write, as a production server sends a small answer.
                self._headers_buffer.append(b"\r\n" + data)
                self.flush_headers()
                key = f"{method} {UUID.sub('{id}', self.path.split('?')[0])}"
                head = len(self.requestline) + sum(len(k) + len(v) + 4 for k, v in self.headers.items())
                with backend.lock:
                    backend.calls[key] += 1
                    backend.bytes[key] += head + n + len(data) + 120  # ~120 B of our reply headers

            def do_GET(self):
                self.one("GET")

            def do_POST(self):
                self.one("POST")

            def do_PUT(self):
                self.one("PUT")

            def do_PATCH(self):
                self.one("PATCH")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        srv = Server(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return srv

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.calls), collections.Counter(self.bytes)


def load_shapes(python):
    """The SDK's required fields per schema, from the Python of a venv holding the SDK."""
    out = subprocess.run([python, os.path.join(HERE, "sdk_shapes.py")] + sorted({s for _, _, s in Backend.SCHEMAS}),
                         capture_output=True, text=True)
    if out.returncode == 0:
        Backend.shapes = json.loads(out.stdout)
    else:
        print(f"(no SDK shapes from {python}: {out.stderr.strip()[-200:]})")


def broker_port():
    """1883 when free (the original's SDK connects there whatever CYBERWAVE_MQTT_PORT says),
    else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 1883))
            return 1883
        except OSError:
            return free_port()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def threads(pid):
    """{tid: (name, voluntary switches)} of every thread of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                v = next(int(l.split()[1]) for l in f if l.startswith("voluntary_ctxt_switches"))
            out[tid] = (name, v)
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            pass
    return out


def family(pid):
    """`pid` and its descendants (the original's Python runs docker CLI children too)."""
    kids = collections.defaultdict(list)
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    kids[int(f.read().rsplit(")", 1)[1].split()[1])].append(int(p))
            except (FileNotFoundError, ProcessLookupError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_rss(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        # A process that already ended (a zombie child) has no VmRSS line.
        rss = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0) / 1024.0
    return cpu, rss


def per_thread(before, after, seconds):
    """Wake-ups per second by thread name (threads that came and went during the window are
    counted from zero)."""
    rates = collections.Counter()
    for tid, (name, v) in after.items():
        rates[re.sub(r"-\d+$", "-*", name)] += v - before.get(tid, (name, 0))[1]
    return {k: n / seconds for k, n in rates.items()}


def driver_rm(n):
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=io.cyberwave.edge.created-by"],
                         capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", "-v"] + ids, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def config_dir(tmp, srv_port, mqtt_port):
    cfg = os.path.join(tmp, "cfg")
    os.makedirs(cfg, exist_ok=True)
    with open(os.path.join(cfg, "credentials.json"), "w") as f:
        json.dump({"token": TOKEN, "email": "", "envs": {
            "CYBERWAVE_BASE_URL": f"http://127.0.0.1:{srv_port}", "CYBERWAVE_MQTT_HOST": "127.0.0.1",
            "CYBERWAVE_MQTT_PORT": str(mqtt_port), "CYBERWAVE_ENVIRONMENT": "dev"}}, f)
    with open(os.path.join(cfg, "environment.json"), "w") as f:
        json.dump({"uuid": ENV, "name": "bench", "workspace_uuid": WS, "workspace_name": "bench"}, f)
    return cfg


def scenario(label, command, twins, driver_params, seconds, python, settle):
    """Runs one daemon (`command`: argv) in a fresh config dir for `settle` + `seconds` and
    returns its figures."""
    tmp = tempfile.mkdtemp(prefix="cw-idle-")
    backend = Backend(twins, driver_params)
    srv = backend.serve()
    mport = broker_port()
    broker = subprocess.Popen(["mosquitto", "-p", str(mport)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = config_dir(tmp, srv.server_address[1], mport)
    env = dict(PATH=os.environ["PATH"], HOME=tmp, CYBERWAVE_EDGE_CONFIG_DIR=cfg, CYBERWAVE_EDGE_UUID=FP,
               CYBERWAVE_HARDWARE_WATCHDOG="false", CYBERWAVE_EDGE_LOG_LEVEL="warning")
    foreign = None
    if python:
        foreign = subprocess.Popen([python, "-c", "import time, zenoh; s = zenoh.open(zenoh.Config()); time.sleep(1e6)"])
    driver_rm(twins)
    # The first edge_health on the broker, timed from the daemon's start.
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(mport), "-t", "+/twin/+/edge_health", "-C", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    first = {}
    log = open(os.path.join(tmp, "daemon.log"), "w")
    started = time.monotonic()
    daemon = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def first_health():
        if sub.stdout.readline():
            first["s"] = time.monotonic() - started
    threading.Thread(target=first_health, daemon=True).start()
    try:
        time.sleep(settle)
        pids = family(daemon.pid)
        t0 = {p: threads(p) for p in pids}
        c0 = {p: cpu_rss(p)[0] for p in pids}
        k0, b0 = backend.snapshot()
        time.sleep(seconds)
        k1, b1 = backend.snapshot()
        rates = collections.Counter()
        cpu = rss = 0.0
        for p in pids:
            try:
                rates.update(per_thread(t0[p], threads(p), seconds))
                c, r = cpu_rss(p)
                cpu += c - c0[p]
                rss += r
            except (FileNotFoundError, ProcessLookupError):
                pass
        hour = 3600.0 / seconds
        return {"label": label, "wakeups": sum(rates.values()), "threads": dict(rates.most_common()),
                "cpu_ms_per_s": 1000 * cpu / seconds, "rss_mib": rss,
                "requests_per_hour": sum((k1 - k0).values()) * hour,
                "bytes_per_hour": sum((b1 - b0).values()) * hour,
                "calls_per_hour": {k: v * hour for k, v in (k1 - k0).items()},
                "first_edge_health_s": first.get("s")}
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        sub.kill()
        if foreign:
            foreign.terminate()
        broker.terminate()
        srv.shutdown()
        driver_rm(twins)
        shutil.rmtree(tmp, ignore_errors=True)


def zenoh_peer_params(python):
    """Docker options running an idle SDK zenoh peer (zenoh's defaults) inside the example
    driver image: the host's Python and venv mounted read-only at the same paths."""
    out = subprocess.run([python, "-c", "import sys; print(sys.prefix); print(sys.base_prefix)"],
                         capture_output=True, text=True, check=True).stdout.split()
    script = os.path.abspath(os.path.join(HERE, "..", "tests", "support", "py"))
    params = ["-e", "DRIVER_MODE=exec", "-e", f"DRIVER_EXEC={python} {script}/zenoh_peer.py idle 1000000"]
    mounts = sorted(set([(p, p) for p in out] + [(script, script), ("/usr", "/usr"), ("/usr/lib", "/lib")] +
                        ([("/usr/lib64", "/lib64")] if os.path.exists("/usr/lib64") else [])))
    for host, at in mounts:
        params += ["-v", f"{host}:{at}:ro"]
    return params


def report(r):
    top = ", ".join(f"{k} {v:.2f}" for k, v in list(r["threads"].items())[:8] if v > 0)
    print(f"  {r['label']}: {r['wakeups']:.2f} wake-ups/s (threads: {top or '-'}); CPU {r['cpu_ms_per_s']:.3f} ms/s; "
          f"RSS {r['rss_mib']:.1f} MiB; backend {r['requests_per_hour']:.0f} requests/h, "
          f"{r['bytes_per_hour'] / 1024:.0f} KiB/h"
          + (f"; first edge_health after {r['first_edge_health_s']:.2f} s" if r.get("first_edge_health_s") else ""),
          flush=True)
