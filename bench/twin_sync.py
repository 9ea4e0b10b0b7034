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
import argparse, json, os, shutil, statistics, sys, time

from fake_backend import Backend, config_dir, daemon, free_port, serve, start_broker, twin_uuid, wait

TICK = 15.0


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_daemon(binary, n, mqtt_port):
    backend = Backend(n)
    srv = serve(backend)
    d = config_dir(srv, mqtt_port)
    return daemon(binary, d), backend, srv, d


def fail(d, why):
    with open(os.path.join(d, "daemon.log")) as f:
        tail = f.read()[-4000:]
    sys.exit(f"{why}\n--- daemon log (tail) ---\n{tail}")


def files_ready(d, n):
    return sum(1 for i in range(n) if os.path.exists(os.path.join(d, f"{twin_uuid(i)}.json"))) == n


def idle_cpu(binary, n, ticks, mqtt_port):
    p, backend, srv, d = start_daemon(binary, n, mqtt_port)
    try:
        if not wait(lambda: files_ready(d, n), 60):
            fail(d, f"{binary}: {n} twin files not written")
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
            fail(d, "twin files not written")
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
                fail(d, f"edit {k} never reached the backend")
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
                fail(d, "backend change never reached the file")
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
    port = free_port()
    broker = start_broker(port)
    try:
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
