#!/usr/bin/env python3
"""Model cache benchmark (README "Performance").

  python3 bench/models.py [--size-mib 1024] [--runs 3]

1. SHA-256 of one large model file, as the cache checks on every hit: our streaming hash
   (`examples/model_sha256.rs`, release build) against coreutils `sha256sum` on the same file,
   page cache warm, best of N runs each.
2. Download of the same file from a local HTTP server (Python's threading server, the same for
   both): our downloader (`examples/model_download.rs`: streams to a `.dl_*.part`, hashes while
   it streams, checks the checksum, renames) against `curl -o` (no hashing at all), best of N;
   and how much our process's resident memory grows while it downloads.
"""
import argparse, functools, http.server, os, subprocess, sys, tempfile, threading, time

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
    ap.add_argument("--rate-mib", type=int, default=112, help="throttled server rate (112 MiB/s ~ 1 Gbit/s)")
    a = ap.parse_args()
    for ex in ["model_sha256", "model_download"]:
        subprocess.run(["cargo", "build", "--release", "--example", ex, "-q"], cwd=ROOT, check=True)
    ours = os.path.join(ROOT, "target", "release", "examples", "model_sha256")
    downloader = os.path.join(ROOT, "target", "release", "examples", "model_download")
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
        c, o = download(d, h_ref, mib, a.runs, downloader)
        print(f"  download + verify: curl then sha256sum {mib / (c + t_ref):.0f} MiB/s, ours (one pass) {mib / o:.0f} MiB/s")
        download(d, h_ref, mib, a.runs, downloader, rate_mib=a.rate_mib)


class Quiet(http.server.SimpleHTTPRequestHandler):
    rate = 0  # bytes/s; 0 = as fast as the server can

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        if not self.rate:
            return super().copyfile(source, outputfile)
        start, sent = time.perf_counter(), 0
        while True:
            chunk = source.read(1 << 20)
            if not chunk:
                return
            outputfile.write(chunk)
            sent += len(chunk)
            ahead = sent / self.rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)


def download(d, sha, mib, runs, downloader, rate_mib=0):
    Quiet.rate = rate_mib << 20
    handler = functools.partial(Quiet, directory=d)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/model.pt"
    with open(os.path.join(d, "tiny.pt"), "wb") as f:
        f.write(b"x" * 1024)
    # The peak of a 1 KiB download is the baseline: client, TLS and buffers set up, no data.
    r = subprocess.run([downloader, url.replace("model.pt", "tiny.pt"), os.path.join(d, "t"), "tiny.pt"],
                       check=True, capture_output=True, text=True)
    baseline = int(r.stdout.split()[3])
    curl_t, ours_t, growth = [], [], []
    for _ in range(runs):
        out = os.path.join(d, "curl.out")
        t = time.perf_counter()
        subprocess.run(["curl", "-sS", "-o", out, url], check=True)
        curl_t.append(time.perf_counter() - t)
        os.remove(out)
        dest = os.path.join(d, "dl")
        t = time.perf_counter()
        r = subprocess.run([downloader, url, dest, "model.pt", sha], check=True, capture_output=True, text=True)
        ours_t.append(time.perf_counter() - t)
        got, size, before, peak = r.stdout.split()
        assert got == sha and int(size) == mib << 20, r.stdout
        growth.append((int(peak) - baseline) / 1024)
        subprocess.run(["rm", "-rf", dest], check=True)
    server.shutdown()
    c, o = min(curl_t), min(ours_t)
    where = f"a server sending {rate_mib} MiB/s" if rate_mib else "an unthrottled local HTTP server"
    print(f"Download of a {mib} MiB model from {where}: curl {mib / c:.0f} MiB/s, "
          f"ours {mib / o:.0f} MiB/s with SHA-256 ({100 * c / o:.0f} % of curl); "
          f"peak RSS {max(growth):+.1f} MiB over a 1 KiB download's")
    return c, o


if __name__ == "__main__":
    sys.exit(main())
