#!/usr/bin/env python3
"""Cloud-node benchmark (README "Performance").

  python3 bench/cloud_node.py [--binary target/release/cyberwave-cloud-node] [--requests 1000]

Latency from publishing an `inference` command (an `echo` command template) to receiving its
reply, through a local Mosquitto, measured by a paho-mqtt client; requests are sent one after
the other. Also the node's resident memory idle and right after the load.
Needs mosquitto (Debian) and paho-mqtt (installed into a private venv when missing).
"""
import argparse, http.server, json, os, shutil, socket, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))


def ensure_paho():
    try:
        import paho.mqtt.client  # noqa: F401
        return
    except ImportError:
        venv = os.path.join(tempfile.gettempdir(), "cw-bench-venv")
        if not os.path.exists(os.path.join(venv, "bin", "python")):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "paho-mqtt==2.1.0"], check=True)
        os.execv(os.path.join(venv, "bin", "python"), [os.path.join(venv, "bin", "python")] + sys.argv)


class Backend(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0) or 0)
        self.rfile.read(n)
        body = {"success": True, "uuid": "c10d0000-0000-4000-8000-000000000001", "slug": "bench-node", "status": "running"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0


def main():
    ensure_paho()
    import paho.mqtt.client as mqtt

    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/cyberwave-cloud-node")
    ap.add_argument("--requests", type=int, default=1000)
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    tmp = tempfile.mkdtemp()
    port = free_port()
    conf = os.path.join(tmp, "m.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(os.path.join(tmp, "cyberwave.yml"), "w") as f:
        f.write("cyberwave-cloud-node:\n  inference: echo {body}\n  heartbeat_interval: 30\n  functions:\n    inference: {concurrency: 4}\n")
    env = {"PATH": os.environ["PATH"], "HOME": tmp, "CYBERWAVE_API_TOKEN": "cw_bench_token_0123456789",
           "CYBERWAVE_API_URL": f"http://127.0.0.1:{server.server_port}", "CYBERWAVE_LOG_LEVEL": "warn"}
    time.sleep(0.3)
    node = subprocess.Popen([binary, "start", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(port)], cwd=tmp, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uuid = "c10d0000-0000-4000-8000-000000000001"
    replies = {}
    cond = threading.Condition()

    def on_message(_c, _u, msg):
        p = json.loads(msg.payload)
        with cond:
            replies[p.get("request_id")] = time.perf_counter()
            cond.notify_all()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-client")
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.subscribe(f"cyberwave/cloud-node/{uuid}/response", qos=0)
    c.loop_start()
    try:
        for _ in range(100):  # wait until the node answers
            rid = f"warm-{_}"
            c.publish(f"cyberwave/cloud-node/{uuid}/command", json.dumps({"command": "status", "request_id": rid}))
            with cond:
                cond.wait_for(lambda: rid in replies, timeout=0.2)
            if rid in replies:
                break
        time.sleep(2)
        idle = rss(node.pid)
        lat = []
        for i in range(a.requests):
            rid = f"r-{i}"
            t = time.perf_counter()
            c.publish(f"cyberwave/cloud-node/{uuid}/command", json.dumps({"command": "inference", "request_id": rid, "params": {"i": i}}))
            with cond:
                ok = cond.wait_for(lambda: rid in replies, timeout=10)
            if not ok:
                print(f"no reply to {rid}")
                return 1
            lat.append((replies[rid] - t) * 1000)
        loaded = rss(node.pid)
        lat.sort()
        q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))]
        print(f"{a.requests} sequential echo inferences: p50 {q(0.50):.2f} ms, p99 {q(0.99):.2f} ms, max {lat[-1]:.2f} ms; "
              f"node RSS idle {idle:.2f} MiB, after load {loaded:.2f} MiB")
    finally:
        c.loop_stop()
        node.terminate()
        node.wait()
        broker.terminate()
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
