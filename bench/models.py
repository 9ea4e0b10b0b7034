#!/usr/bin/env python3
"""Model cache benchmark (README "Performance").

  python3 bench/models.py [--size-mib 1024] [--runs 3]

SHA-256 of one large model file, as the cache checks on every hit: our streaming hash
(`examples/model_sha256.rs`, release build) against coreutils `sha256sum` on the same file,
page cache warm, best of N runs each.
"""
import argparse, os, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def best(cmd, runs):
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()[0]
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--example", "model_sha256", "-q"], cwd=ROOT, check=True)
    ours = os.path.join(ROOT, "target", "release", "examples", "model_sha256")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.pt")
        with open(path, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(a.size_mib):
                f.write(chunk)
        subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        t_ref, h_ref = best(["sha256sum", path], a.runs)
        t_ours, h_ours = best([ours, path], a.runs)
    assert h_ref == h_ours, (h_ref, h_ours)
    mib = a.size_mib
    print(f"SHA-256 of a {mib} MiB file: sha256sum {mib / t_ref:.0f} MiB/s, ours {mib / t_ours:.0f} MiB/s "
          f"({100 * t_ref / t_ours:.0f} % of sha256sum)")


if __name__ == "__main__":
    sys.exit(main())
