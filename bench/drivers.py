#!/usr/bin/env python3
"""Driver orchestration benchmark (README "Performance").

  python3 bench/drivers.py [--binary target/release/cyberwave-edge-core] [--counts 1,10,50] [--idle-seconds 60]

For N drivers of the example image (examples/local, built locally):
  * floor: a plain shell loop of `docker run -d` for the same N containers;
  * daemon: `run --local` with an N-twin manifest, from start until `status --json` reports all
    N running;
  * idle: the daemon's CPU time per 15 s reconcile tick and its resident memory with N drivers
    running and their logs followed (followers are threads of the daemon: no extra processes).
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = "cyberwave-example-driver:local"


def uuid_for(i):
    return f"{0xbe000000 + i:08x}-0000-4000-8000-{i:012x}"


def manifest(n):
    twins, assets = [], []
    for i in range(n):
        a = f"a55e7000-0000-4000-8000-{i:012x}"
        twins.append({"uuid": uuid_for(i), "name": f"bench {i}", "asset_uuid": a, "metadata": {}})
        assets.append({"uuid": a, "metadata": {"drivers": {"default": {"docker_image": IMAGE, "privileged": False,
                                                                      "params": ["-e", "DRIVER_MODE=run"]}}}})
    return {"twins": twins, "assets": assets}


def names(n):
    return [f"cyberwave-driver-{uuid_for(i)[:8]}" for i in range(n)]


def rm_all(n):
    subprocess.run(["docker", "rm", "-f", "-v"] + names(n), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def floor(n):
    rm_all(n)
    t = time.perf_counter()
    script = "\n".join(f"docker run -d --init --network host --restart unless-stopped --name {name} -e DRIVER_MODE=run {IMAGE} >/dev/null"
                       for name in names(n))
    subprocess.run(["sh", "-c", script], check=True)
    took = time.perf_counter() - t
    rm_all(n)
    return took


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(p))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return out


def daemon_run(binary, n, idle_seconds):
    rm_all(n)
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "cfg")
    path = os.path.join(tmp, "manifest.json")
    with open(path, "w") as f:
        json.dump(manifest(n), f)
    env = {"PATH": os.environ["PATH"], "HOME": tmp, "CYBERWAVE_EDGE_CONFIG_DIR": cfg}
    t = time.perf_counter()
    d = subprocess.Popen([binary, "run", "--local", path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    took = None
    try:
        while time.perf_counter() - t < 600:
            out = subprocess.run([binary, "status", "--json"], env=env, capture_output=True, text=True)
            try:
                s = json.loads(out.stdout)
                cs = (s.get("drivers") or {}).get("containers") or []
                if len(cs) == n and all(c["state"] == "running" for c in cs):
                    took = time.perf_counter() - t
                    break
            except (json.JSONDecodeError, KeyError):
                pass
            time.sleep(0.1)
        time.sleep(20)  # log followers attached, first ticks done
        c0 = cpu_of(d.pid)
        time.sleep(idle_seconds)
        c1 = cpu_of(d.pid)
        rss = rss_of(d.pid)
        kids = children(d.pid)
        kids_rss = sum(rss_of(k) for k in kids)
        threads = len(os.listdir(f"/proc/{d.pid}/task"))
        ticks = idle_seconds / 15.0
        return took, 1000 * (c1 - c0) / ticks, rss, kids_rss, len(kids), threads
    finally:
        d.terminate()
        d.wait()
        rm_all(n)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/cyberwave-edge-core")
    ap.add_argument("--counts", default="1,10,50")
    ap.add_argument("--idle-seconds", type=int, default=60)
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    subprocess.run([os.path.join(HERE, "..", "examples", "local", "build-driver-image.sh"), IMAGE], check=True, stdout=subprocess.DEVNULL)
    print("| drivers | shell loop of docker run (floor) | daemon start → all running | CPU per idle tick | daemon RSS | child processes | threads |")
    print("|---|---|---|---|---|---|---|")
    for n in [int(x) for x in a.counts.split(",")]:
        fl = floor(n)
        took, cpu_tick, rss, kids_rss, kids, threads = daemon_run(binary, n, a.idle_seconds)
        took_s = f"{took:.2f} s" if took is not None else "timeout"
        print(f"| {n} | {fl:.2f} s | {took_s} | {cpu_tick:.1f} ms | {rss:.1f} MiB | {kids} ({kids_rss:.1f} MiB) | {threads} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
