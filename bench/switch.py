#!/usr/bin/env python3
"""Switch downtime of a driver update (README "Updates", issue 24).

  python3 bench/switch.py [--binary target/release/cyberwave-edge-core] [--rounds 5]

The robot is down from the moment the old container dies to the moment its successor starts
(the engine's own `die` and `start` events, nanosecond stamps). Measured on this machine for
a small image and a 100 MB one:
  * floor: the successor created beforehand, then a bare `docker stop` of the old container
    and `docker start` of the new one, back to back from a shell;
  * daemon: `cyberwave-edge-core run` against a fake backend whose twin's driver image
    changes (SIGHUP to look again), alternating between the example image and the target.
Also: the daemon's voluntary context switches per second while a container is on probation
and after (one deadline, no polling: the two should match).
Needs: a release build, mosquitto (Debian package), Docker.
"""
import argparse, json, os, signal, statistics, subprocess, sys, threading, time

import fake_backend as fb

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = "cyberwave-example-driver:local"
SMALL = "cyberwave-bench-switch:small-local"
BIG = "cyberwave-bench-switch:big-local"
TWIN = "d0000000-0000-4000-8000-000000000001"
ASSET = "a0000000-0000-4000-8000-0000000000d1"
NAME = "cyberwave-driver-d0000000"


class Backend(fb.Backend):
    """One twin linked to this edge whose driver runs `self.image`."""

    def __init__(self, image):
        super().__init__(0)
        self.image = image
        self.twins[TWIN] = {"uuid": TWIN, "name": "switch bench", "asset_uuid": ASSET, "environment_uuid": fb.ENV,
                            "metadata": {"edge_fingerprint": fb.FP}}

    def route(self, method, path, body):
        parts = path.split("?")[0].strip("/").split("/")[2:]
        if method == "GET" and parts == ["assets", ASSET]:
            return 200, {"uuid": ASSET, "name": "arm", "metadata": {"drivers": {"default": {
                "docker_image": self.image, "privileged": False, "params": ["-e", "DRIVER_MODE=run"]}}}}
        return super().route(method, path, body)


def build(tag, extra):
    df = f"FROM {BASE}\n{extra}LABEL io.cyberwave.bench={tag}\n"
    subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=df, text=True, check=True,
                   stdout=subprocess.DEVNULL)


class Events:
    """`die` and `start` stamps (ns) by container id, from `docker events`."""

    def __init__(self):
        self.seen = []
        self.p = subprocess.Popen(["docker", "events", "--filter", "type=container", "--format", "{{json .}}"],
                                  stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self.read, daemon=True).start()
        time.sleep(0.5)

    def read(self):
        for line in self.p.stdout:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            self.seen.append((e.get("Action"), e.get("id") or e.get("Actor", {}).get("ID"), e.get("timeNano")))

    def at(self, action, cid):
        for a, i, t in list(self.seen):
            if a == action and i == cid:
                return t
        return None

    def stop(self):
        self.p.terminate()


def cid(name):
    out = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def gap(ev, old, new, timeout=120):
    fb.wait(lambda: ev.at("die", old) and ev.at("start", new), timeout)
    d, s = ev.at("die", old), ev.at("start", new)
    return (s - d) / 1e6 if d and s else None


def floor(ev, image, rounds):
    out = []
    for _ in range(rounds):
        subprocess.run(["docker", "rm", "-f", "bench-floor-a", "bench-floor-b"], capture_output=True)
        # The options that matter for start and stop as a driver has them: host network, init.
        opts = ["--init", "--network", "host", "--restart", "unless-stopped", "-e", "DRIVER_MODE=run"]
        subprocess.run(["docker", "run", "-d", "--name", "bench-floor-a"] + opts + [BASE], check=True,
                       capture_output=True)
        subprocess.run(["docker", "create", "--name", "bench-floor-b"] + opts + [image], check=True,
                       capture_output=True)
        a, b = cid("bench-floor-a"), cid("bench-floor-b")
        time.sleep(1)
        subprocess.run(["sh", "-c", "docker stop -t 10 bench-floor-a >/dev/null && docker start bench-floor-b >/dev/null"],
                       check=True)
        out.append(gap(ev, a, b))
    subprocess.run(["docker", "rm", "-f", "bench-floor-a", "bench-floor-b"], capture_output=True)
    return [g for g in out if g is not None]


def csw(pid):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def daemon_switches(binary, ev, targets, rounds, probation):
    subprocess.run(["docker", "rm", "-f", NAME], capture_output=True)
    backend = Backend(BASE)
    srv = fb.serve(backend)
    port = fb.free_port()
    broker = fb.start_broker(port)
    d = fb.config_dir(srv, port)
    p = fb.daemon(binary, d, extra_env={"CYBERWAVE_UPDATE_PROBATION_SECONDS": str(probation)})
    results = {t: [] for t in targets}
    wakeups = None
    try:
        if not fb.wait(lambda: cid(NAME) is not None, 60):
            sys.exit("the daemon did not start the driver: " + open(os.path.join(d, "daemon.log")).read())
        time.sleep(2)
        for r in range(rounds):
            for target in targets:
                for image in (target, BASE):
                    old = cid(NAME)
                    backend.image = image
                    p.send_signal(signal.SIGHUP)
                    fb.wait(lambda: cid(NAME) not in (None, old), 120)
                    g = gap(ev, old, cid(NAME))
                    if image == target and g is not None:
                        results[target].append(g)
                    time.sleep(1)
        # Wake-ups while a container is on probation and after its probation ended, both past
        # the 60 s in which the data bus looks for the new container's zenoh peers.
        old = cid(NAME)
        backend.image = SMALL
        p.send_signal(signal.SIGHUP)
        fb.wait(lambda: cid(NAME) not in (None, old), 60)
        switched = time.monotonic()
        time.sleep(70)
        c0 = csw(p.pid)
        time.sleep(20)
        during = (csw(p.pid) - c0) / 20
        time.sleep(max(0, probation + 5 - (time.monotonic() - switched)))
        c0 = csw(p.pid)
        time.sleep(20)
        after = (csw(p.pid) - c0) / 20
        wakeups = (during, after)
    finally:
        p.terminate()
        p.wait()
        broker.terminate()
        srv.shutdown()
        subprocess.run(["docker", "rm", "-f", NAME, NAME + ".old", NAME + ".next"], capture_output=True)
    return results, wakeups


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/cyberwave-edge-core")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    subprocess.run([os.path.join(HERE, "..", "examples", "local", "build-driver-image.sh"), BASE], check=True,
                   stdout=subprocess.DEVNULL)
    build(SMALL, "")
    if subprocess.run(["docker", "image", "inspect", BIG], capture_output=True).returncode != 0:
        build(BIG, "RUN head -c 100000000 /dev/urandom > /payload\n")
    ev = Events()
    try:
        floors = {t: floor(ev, t, a.rounds) for t in (SMALL, BIG)}
        ours, wakeups = daemon_switches(binary, ev, [SMALL, BIG], a.rounds, probation=150)
    finally:
        ev.stop()
    print("| image | floor: docker stop + docker start (median) | daemon switch (median) | ratio |")
    print("|---|---|---|---|")
    for t, label in ((SMALL, "small (labels only)"), (BIG, "100 MB layer")):
        f, o = statistics.median(floors[t]), statistics.median(ours[t])
        print(f"| {label} | {f:.0f} ms | {o:.0f} ms | {o / f:.2f} |")
    during, after = wakeups
    print(f"\ndaemon wake-ups/s with a container on probation: {during:.2f}; after its probation: {after:.2f}")


if __name__ == "__main__":
    sys.exit(main())
