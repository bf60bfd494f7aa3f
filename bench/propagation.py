#!/usr/bin/python3
"""Docker event → `subscribe` propagation through paddock-agent and paddock-server.

Starts a private dockerd (never the system one) with --containers busybox
containers (--network none), a paddock-server on loopback and one connected
paddock-agent at its defaults, subscribes to /v1/subscribe (resource.change)
and follows dockerd's own /events stream. Then performs --ops Docker
operations one at a time through the Engine API, cycling rename → kill →
start over the containers, and for each one records when

  - the API call returned,
  - Docker's own event (rename, die, start) reached a plain /events reader,
  - the matching resource.change (same dockerId, new name or state) arrived.

Prints p50/p95/p99/max of event → subscribe (the goal's measure), of
API return → subscribe, and of API return → Docker's own event (the
baseline: what any Docker event follower sees).

    bench/propagation.py [--bin-dir build] [--ops 200] [--containers 10] [--pause 0.05]
"""

import argparse
import http.client
import json
import os
import random
import socket
import ssl
import sys
import tempfile
import threading
import time

import websocket

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

from dockerd import PrivateDockerd  # noqa: E402
from bench_host import start_agent, start_server, tear_down, wait_reported  # noqa: E402
from paddock_harness import basic_auth_header  # noqa: E402

BUSYBOX = "paddock-bench/busybox:latest"
WAIT = 5.0  # seconds a change may take before it counts as not propagated
VERBOSE = False


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("docker", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def engine(sock_path, method, path):
    conn = UnixHTTPConnection(sock_path)
    try:
        conn.request(method, path)
        res = conn.getresponse()
        body = res.read()
        if res.status >= 300:
            raise RuntimeError("%s %s: %d %s" % (method, path, res.status, body[:300]))
        return body
    finally:
        conn.close()


class Timeline:
    """Arrivals keyed by (dockerId, what, value) with their monotonic times; waitable."""

    def __init__(self):
        self.cond = threading.Condition()
        self.seen = {}

    def add(self, key, t):
        with self.cond:
            self.seen.setdefault(key, []).append(t)
            self.cond.notify_all()

    def wait(self, key, after, timeout):
        """The first arrival of key at or after `after`, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t in self.seen.get(key, []):
                    if t >= after:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


def follow_docker_events(sock_path, timeline, stop):
    """Docker's own event stream, as any follower sees it (HTTP/1.0: no chunking)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(b'GET /events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D HTTP/1.0\r\nHost: docker\r\n\r\n')
    f = s.makefile("rb")
    while f.readline() not in (b"\r\n", b"\n", b""):
        pass
    for line in f:
        t = time.monotonic()
        if stop.is_set():
            break
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        cid = ev.get("id") or ev.get("Actor", {}).get("ID")
        action = ev.get("Action", "")
        if action == "rename":
            timeline.add((cid, "name", "/" + ev["Actor"]["Attributes"].get("name", "").lstrip("/")), t)
        elif action == "die":
            timeline.add((cid, "state", "exited"), t)
        elif action == "start":
            timeline.add((cid, "state", "running"), t)
    s.close()


def follow_subscribe(server, timeline, stop, ready):
    access, secret = server.admin
    ws = websocket.create_connection(
        "wss://127.0.0.1:%d/v1/subscribe?eventNames=resource.change" % server.port,
        header=["Authorization: " + basic_auth_header(access, secret)],
        sslopt={"ca_certs": server.ca_file, "cert_reqs": ssl.CERT_REQUIRED})
    ws.settimeout(1.0)
    ready.set()
    while not stop.is_set():
        try:
            text = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        t = time.monotonic()
        m = json.loads(text)
        if m.get("name") != "resource.change" or m.get("resourceType") != "container":
            continue
        r = m.get("data", {}).get("resource", {})
        if VERBOSE:
            print("subscribe %.3f: %s %s %s" % (time.monotonic(), r.get("dockerId", "")[:12], r.get("name"),
                                                r.get("state")), flush=True)
        cid = r.get("dockerId")
        name = r.get("name") or ""
        timeline.add((cid, "name", "/" + name.lstrip("/")), t)
        timeline.add((cid, "state", r.get("state")), t)
    ws.close()


def percentiles(values):
    v = sorted(values)
    if not v:
        return {}

    def p(q):
        return v[min(len(v) - 1, max(0, int(round(q * len(v) + 0.5)) - 1))]

    return {"n": len(v), "p50": p(0.50), "p95": p(0.95), "p99": p(0.99), "max": v[-1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--ops", type=int, default=200)
    ap.add_argument("--containers", type=int, default=10)
    ap.add_argument("--pause", type=float, default=0.05, help="seconds between operations")
    ap.add_argument("--verbose", action="store_true", help="print every change and operation")
    args = ap.parse_args()
    global VERBOSE
    VERBOSE = args.verbose

    bin_dir = os.path.abspath(args.bin_dir)
    tmp = tempfile.mkdtemp(prefix="pdk-prop-")
    dockerd = PrivateDockerd()
    server = agent = None
    stop = threading.Event()
    try:
        dockerd.start()
        dockerd.make_busybox_image(BUSYBOX)
        ids = [dockerd.run(BUSYBOX, "sleep", "1000000", name="prop-%02d" % i) for i in range(args.containers)]

        server = start_server(bin_dir)
        api = server.session()
        agent, _ = start_agent(server, bin_dir, dockerd.host, tmp, "propagation")
        wait_reported(api, "propagation", args.containers)

        docker_tl, sub_tl = Timeline(), Timeline()
        ready = threading.Event()
        threading.Thread(target=follow_docker_events, args=(dockerd.socket_path, docker_tl, stop),
                         daemon=True).start()
        threading.Thread(target=follow_subscribe, args=(server, sub_tl, stop, ready), daemon=True).start()
        ready.wait(10)
        time.sleep(1.0)  # let both streams settle before the first operation

        names = {cid: "prop-%02d" % i for i, cid in enumerate(ids)}
        ev_to_sub, api_to_sub, api_to_ev, missing = [], [], [], []
        kinds = {"rename": [], "kill": [], "start": []}
        rng = random.Random(1)
        for i in range(args.ops):
            cid = ids[i % len(ids)]
            step = (i // len(ids)) % 3  # every container: rename, then kill, then start
            if step == 0:
                new = "prop-%d-%d" % (i, rng.randrange(1 << 30))
                op, key = "rename", (cid, "name", "/" + new)
                path = "/containers/%s/rename?name=%s" % (cid, new)
                names[cid] = new
            elif step == 1:
                op, key, path = "kill", (cid, "state", "exited"), "/containers/%s/kill" % cid
            else:
                op, key, path = "start", (cid, "state", "running"), "/containers/%s/start" % cid
            t_call = time.monotonic()
            engine(dockerd.socket_path, "POST", path)
            t_api = time.monotonic()
            t_sub = sub_tl.wait(key, t_call, WAIT)
            t_ev = docker_tl.wait(key, t_call, 1.0)
            if VERBOSE:
                print("op %s %s %r: call %.3f api %.3f sub %s ev %s" % (op, cid[:12], key[1:], t_call, t_api, t_sub, t_ev))
            if t_sub is None or t_ev is None:
                missing.append((op, cid[:12], t_sub is None, t_ev is None))
            else:
                ev_to_sub.append((t_sub - t_ev) * 1000)
                api_to_sub.append((t_sub - t_api) * 1000)
                api_to_ev.append((t_ev - t_api) * 1000)
                kinds[op].append((t_sub - t_ev) * 1000)
            time.sleep(args.pause)

        print("%d operations on %d containers (rename, kill, start in turn)" % (args.ops, len(ids)))
        for k in kinds:
            lost = [m for m in missing if m[0] == k]
            if lost:
                print("  %s: %d of %d not seen on subscribe within %.0f s (%d not on Docker's stream)" % (
                    k, sum(1 for m in lost if m[2]), len(kinds[k]) + len(lost), WAIT, sum(1 for m in lost if m[3])))
        print("%-34s %5s %8s %8s %8s %8s" % ("latency (ms)", "n", "p50", "p95", "p99", "max"))
        rows = [("Docker event -> subscribe", ev_to_sub), ("API return -> subscribe", api_to_sub),
                ("API return -> Docker event (base)", api_to_ev)]
        rows += [("  event -> subscribe, " + k, v) for k, v in kinds.items()]
        # Every operation, a change that never came counting as infinitely late.
        rows.append(("all operations, missing = inf", ev_to_sub + [float("inf")] * sum(1 for m in missing if m[2])))
        for label, values in rows:
            p = percentiles(values)
            if p:
                print("%-34s %5d %8.1f %8.1f %8.1f %8.1f" % (label, p["n"], p["p50"], p["p95"], p["p99"], p["max"]))
        return 0 if not missing else 1
    finally:
        stop.set()
        tear_down((agent,), server, dockerd, tmp)


if __name__ == "__main__":
    sys.exit(main())
