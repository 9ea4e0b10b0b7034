"""A third-party zenoh peer for the bus tests: the eclipse-zenoh package the Cyberwave SDK
installs (what drivers and the worker run).

  zenoh_peer.py pub  ENDPOINT KEY HZ SIZE SECONDS   publish SIZE-byte samples at HZ (KEY may
                                                    be several keys joined by "+": each gets
                                                    every sample)
  zenoh_peer.py sub  ENDPOINT KEY COUNT TIMEOUT     print how many samples arrived (stop at COUNT)
  zenoh_peer.py ping ENDPOINT N SIZE                round trips over a pong peer: p50/p99 in ms
  zenoh_peer.py pong ENDPOINT SECONDS               answer ping/** on pong/**
  zenoh_peer.py idle SECONDS                        a peer with zenoh's defaults that says nothing
  zenoh_peer.py sdkconfig                           the SDK's BackendConfig() of this environment
  zenoh_peer.py sdk  TWIN HZ SECONDS                 publish as a driver does, through the SDK's
                                                    own data API (cw.data: get_backend() from the
                                                    ZENOH_* environment, DataBus.publish)
Every session is a client of ENDPOINT (or a peer listening on it, with "listen:" in front; a
peer connecting to it with "peer:"; a peer discovering others by multicast with "multicast").
"""
import json
import sys
import threading
import time

import zenoh


def session(endpoint):
    c = zenoh.Config()
    if endpoint == "multicast":
        # A peer as drivers run by default: multicast discovery, no router.
        c.insert_json5("mode", '"peer"')
        return zenoh.open(c)
    c.insert_json5("scouting/multicast/enabled", "false")
    if endpoint.startswith("listen:"):
        c.insert_json5("mode", '"peer"')
        c.insert_json5("listen/endpoints", json.dumps([endpoint[len("listen:"):]]))
    elif endpoint.startswith("peer:"):
        c.insert_json5("mode", '"peer"')
        c.insert_json5("connect/endpoints", json.dumps([endpoint[len("peer:"):]]))
    else:
        c.insert_json5("mode", '"client"')
        c.insert_json5("connect/endpoints", json.dumps([endpoint]))
    return zenoh.open(c)


def pub(endpoint, key, hz, size, seconds):
    s = session(endpoint)
    pubs = [s.declare_publisher(k) for k in key.split("+")]
    payload = b"x" * int(size)
    period = 1.0 / float(hz)
    end = time.monotonic() + float(seconds)
    n = 0
    nxt = time.monotonic()
    while time.monotonic() < end:
        for p in pubs:
            p.put(payload)
        n += 1
        nxt += period
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(json.dumps({"published": n}), flush=True)
    s.close()


def sub(endpoint, key, count, timeout):
    s = session(endpoint)
    got = threading.Event()
    n = [0]

    def on(sample):
        n[0] += 1
        if n[0] >= int(count):
            got.set()

    s.declare_subscriber(key, on)
    print("ready", flush=True)
    got.wait(float(timeout))
    print(json.dumps({"received": n[0]}), flush=True)
    s.close()


def pong(endpoint, seconds):
    s = session(endpoint)
    pubs = {}

    def on(sample):
        k = "pong/" + str(sample.key_expr).split("/", 1)[1]
        if k not in pubs:
            pubs[k] = s.declare_publisher(k)
        pubs[k].put(sample.payload)

    s.declare_subscriber("ping/**", on)
    print("ready", flush=True)
    time.sleep(float(seconds))
    s.close()


def ping(endpoint, n, size):
    s = session(endpoint)
    back = threading.Event()
    s.declare_subscriber("pong/rt", lambda sample: back.set())
    p = s.declare_publisher("ping/rt")
    payload = b"x" * int(size)
    # Wait for the path to exist.
    for _ in range(200):
        back.clear()
        p.put(payload)
        if back.wait(0.05):
            break
    rtts = []
    for _ in range(int(n)):
        back.clear()
        t = time.perf_counter()
        p.put(payload)
        if back.wait(2.0):
            rtts.append((time.perf_counter() - t) * 1000.0)
    rtts.sort()
    pct = lambda q: rtts[min(len(rtts) - 1, int(q * len(rtts)))] if rtts else None
    print(json.dumps({"n": len(rtts), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}), flush=True)
    s.close()


def sdkconfig():
    """What a driver's SDK makes of its ZENOH_* environment (raises as the driver would)."""
    from cyberwave.data.config import BackendConfig

    c = BackendConfig()
    print(json.dumps({"mode": c.zenoh_mode, "connect": c.zenoh_connect}), flush=True)


def sdk(twin, hz, seconds):
    from cyberwave.data.api import DataBus
    from cyberwave.data.config import get_backend

    bus = DataBus(get_backend(), twin, sensor_name="wrist")
    period = 1.0 / float(hz)
    end = time.monotonic() + float(seconds)
    n = 0
    while time.monotonic() < end:
        bus.publish("frames", b"\x00" * 256)
        bus.publish("joint_states", {"positions": [0.0, 1.0], "seq": n})
        n += 1
        time.sleep(period)
    print(json.dumps({"published": 2 * n}), flush=True)
    bus.close()


def idle(seconds):
    s = zenoh.open(zenoh.Config())
    time.sleep(float(seconds))
    s.close()


if __name__ == "__main__":
    verb, args = sys.argv[1], sys.argv[2:]
    {"pub": pub, "sub": sub, "pong": pong, "ping": ping, "sdk": sdk, "sdkconfig": sdkconfig, "idle": idle}[verb](*args)
