#!/usr/bin/env python3
"""Worker hot-reload benchmark (README "Performance").

  python3 bench/worker.py [--edits 5]

Runs the release `cyberwave-edge-core` in local mode (no backend, no broker) with the example
worker image (examples/local/build-worker-image.sh), then saves a worker file N times (temp
file + rename, as editors and rsync do), 12 s apart (the 10 s restart cooldown is the
original's). For each save: the time from the rename to Docker's `start` event of the worker
container. The floor is a bare `docker restart` of the same container, timed the same way.
"""
import argparse, json, os, subprocess, sys, tempfile, threading, time, queue

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
IMAGE = "cyberwave-example-worker:local"
ENV_UUID = "be0c0000-0000-4000-8000-00000000b0b0"
NAME = "cyberwave-worker-" + ENV_UUID[:8]


def events(q):
    p = subprocess.Popen(["docker", "events", "--filter", f"container={NAME}", "--filter", "event=start",
                          "--format", "{{.TimeNano}}"], stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        q.put(int(line.strip()) / 1e9)


def wait_start(q, timeout):
    return q.get(timeout=timeout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=5)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "cyberwave-edge-core"], cwd=ROOT, check=True)
    subprocess.run([os.path.join(ROOT, "examples", "local", "build-worker-image.sh"), IMAGE], check=True,
                   capture_output=True)
    subprocess.run(["docker", "rm", "-f", NAME], capture_output=True)
    binary = os.path.join(ROOT, "target", "release", "cyberwave-edge-core")
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "cfg")
        os.makedirs(os.path.join(cfg, "workers"))
        worker = os.path.join(cfg, "workers", "bench.py")
        with open(worker, "w") as f:
            f.write("n = 0\n")
        manifest = os.path.join(d, "manifest.json")
        with open(manifest, "w") as f:
            json.dump({"environment_uuid": ENV_UUID, "twins": [], "assets": []}, f)
        env = dict(os.environ, CYBERWAVE_EDGE_CONFIG_DIR=cfg, CYBERWAVE_WORKER_IMAGE=IMAGE,
                   CYBERWAVE_WORKER_STATUS_DIR=os.path.join(d, "status"), CYBERWAVE_EDGE_LOG_LEVEL="warning")
        q = queue.Queue()
        threading.Thread(target=events, args=(q,), daemon=True).start()
        time.sleep(0.5)
        daemon = subprocess.Popen([binary, "run", "--local", manifest], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_start(q, 60)
            time.sleep(12)
            ours = []
            for n in range(1, a.edits + 1):
                tmp = worker + ".part"
                with open(tmp, "w") as f:
                    f.write(f"n = {n}\n")
                t0 = time.time()
                os.rename(tmp, worker)
                ours.append(wait_start(q, 30) - t0)
                time.sleep(12)
            floor = []
            for _ in range(a.edits):
                t0 = time.time()
                subprocess.run(["docker", "restart", NAME], check=True, capture_output=True)
                floor.append(wait_start(q, 30) - t0)
                time.sleep(1)
        finally:
            daemon.terminate()
            daemon.wait()
            subprocess.run(["docker", "rm", "-f", NAME], capture_output=True)
    ours.sort()
    floor.sort()
    print(f"worker file saved -> worker restarted: median {ours[len(ours) // 2]:.2f} s, worst {ours[-1]:.2f} s "
          f"({a.edits} saves); floor (bare docker restart): median {floor[len(floor) // 2]:.2f} s; "
          f"original: 15 s scan + 10 s cooldown, up to 25 s")


if __name__ == "__main__":
    sys.exit(main())
