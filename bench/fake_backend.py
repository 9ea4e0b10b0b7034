"""A small in-process fake of the Cyberwave REST API (the calls the edge core makes, no more),
a private Mosquitto, and a config dir for the daemon: shared by the benchmarks and the fault
campaign (scripts/faults). Standard library only."""
import json, os, shutil, socket, subprocess, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "cw_bench_token_0123456789"
ENV = "e0000000-0000-4000-8000-000000000001"
WS = "5b1f3a9e-0000-4000-8000-000000000001"
FP = "bench-edge-0a1b2c3d4e5f"
PARENT = "f0000000-0000-4000-8000-000000000001"
GRIPPER_ASSET = "a0000000-0000-4000-8000-000000000001"


def twin_uuid(i):
    return f"b0000000-0000-4000-8000-{i:012x}"


def orphan_uuid(i):
    return f"c0000000-0000-4000-8000-{i:012x}"


class Backend:
    """`n` twins attached to an unlinked parent with no driver (a twin file each, no container)
    and `orphans` twins without an asset (each raises one `driver_start_failure` alert)."""

    def __init__(self, n, orphans=0):
        self.lock = threading.Lock()
        self.twins = {}
        self.puts = []  # (time, uuid, body)
        self.alerts = []  # POSTed bodies
        self.offline = False  # answer 503 to everything
        for i in range(n):
            u = twin_uuid(i)
            self.twins[u] = {"uuid": u, "name": f"bench {i}", "asset_uuid": GRIPPER_ASSET,
                             "environment_uuid": ENV, "attach_to_twin_uuid": PARENT,
                             "metadata": {"edge_fingerprint": FP, "value": 0}}
        for i in range(orphans):
            u = orphan_uuid(i)
            self.twins[u] = {"uuid": u, "name": f"orphan {i}", "environment_uuid": ENV,
                             "metadata": {"edge_fingerprint": FP}}

    def route(self, method, path, body):
        parts = path.split("?")[0].strip("/").split("/")[2:]  # after api/v1
        with self.lock:
            if self.offline:
                return 503, {"detail": "down for the test"}
            if method == "POST" and parts == ["edges"]:
                return 201, {"uuid": "ed000000-0000-4000-8000-000000000001", "fingerprint": FP, "name": FP,
                             "workspace_uuid": WS, "metadata": {}}
            if method == "GET" and parts[:1] == ["edges"] and len(parts) == 2:
                return 200, {"uuid": parts[1], "fingerprint": FP, "workspace_uuid": WS, "metadata": {}}
            if method == "POST" and parts == ["edges", "discover"]:
                return 200, {"fingerprint": FP, "twins": []}
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
            if method == "POST" and parts == ["alerts"]:
                uuid = f"a1e70000-0000-4000-8000-{len(self.alerts) + 1:012x}"
                self.alerts.append(dict(body, uuid=uuid))
                return 201, dict(body, uuid=uuid)
            if method == "GET" and parts == ["alerts"]:
                return 200, []
            if parts[:1] == ["alerts"]:
                return 200, {"uuid": parts[1] if len(parts) > 1 else ""}
            return 404, {"detail": "Not found."}


def serve(backend):
    """Serves `backend` on a free local port; returns the server (`.server_address`)."""

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

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a daemon killed mid-request (the fault campaign does that on purpose)

    srv = Server(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(port):
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    p = subprocess.Popen([mosq, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return p


def config_dir(srv, mqtt_port, d=None):
    """Writes credentials.json and environment.json for the fake backend into `d` (or a new
    temporary directory); returns the directory."""
    d = d or tempfile.mkdtemp(prefix="cw-edge-")
    with open(os.path.join(d, "credentials.json"), "w") as f:
        json.dump({"token": TOKEN, "email": "", "envs": {
            "CYBERWAVE_BASE_URL": f"http://127.0.0.1:{srv.server_address[1]}",
            "CYBERWAVE_MQTT_HOST": "127.0.0.1", "CYBERWAVE_MQTT_PORT": str(mqtt_port),
            "CYBERWAVE_ENVIRONMENT": "dev"}}, f)
    with open(os.path.join(d, "environment.json"), "w") as f:
        json.dump({"uuid": ENV, "name": "bench", "workspace_uuid": WS, "workspace_name": "bench"}, f)
    return d


def daemon(binary, d, log_level="info", extra_env=None):
    """Starts `binary run` on config dir `d`, logging to `d/daemon.log` (appended)."""
    # Never arm a real /dev/watchdog: the fault campaign kills the daemon with SIGKILL.
    env = dict(os.environ, CYBERWAVE_EDGE_CONFIG_DIR=d, CYBERWAVE_EDGE_UUID=FP, HOME=d,
               CYBERWAVE_EDGE_LOG_LEVEL=log_level, CYBERWAVE_HARDWARE_WATCHDOG="false")
    env.pop("RUST_LOG", None)
    env.update(extra_env or {})
    log = open(os.path.join(d, "daemon.log"), "a")
    return subprocess.Popen([binary, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)


def wait(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False
