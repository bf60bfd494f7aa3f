#!/usr/bin/python3
"""Thousands of agents against one paddock-server on loopback.

Drives bench/agent_swarm.cpp (paddock-agent-swarm): starts paddock-server
(TLS, its own CA, rate limit off, log level info) on a fixed loopback port,
creates one registration token with maxUses = --agents, then lets the swarm

  1. register every agent (POST /v1/scripts/<token>): registrations/s,
  2. connect every agent and send its snapshot: connects/s,
  3. hold them for --hold seconds (pings every 5 s, a host report every
     --report-interval): server RSS and CPU, bytes per connected agent,
  4. survive `kill -9` of the server and its restart on the same port: the
     time until every agent is connected again (agents redial with the real
     agent's backoff, full jitter from 1 s doubling to a 60 s cap), then
     hold them --hold seconds again: server RSS after the reconnect storm.

    bench/agent_swarm.py [--bin-dir build] [--agents 1000] [--hold 30]
                         [--swarm BUILD/bench/paddock-agent-swarm]
"""

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, data_dir, port, log_path, extra=()):
        self.binary, self.data_dir, self.port, self.log_path = binary, data_dir, port, log_path
        self.extra = list(extra)
        self.proc = None

    def start(self, timeout=60.0):
        log = open(self.log_path, "ab")
        start_offset = log.tell()
        self.proc = subprocess.Popen([self.binary, "--data-dir", self.data_dir, "--listen", "127.0.0.1:%d" % self.port,
                                      "--log-level", "info", "--rate-limit", "0"] + self.extra,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(start_offset)
                if b"listening on" in f.read():
                    return time.time()
            if self.proc.poll() is not None:
                raise RuntimeError("paddock-server exited with %s; see %s" % (self.proc.returncode, self.log_path))
            time.sleep(0.02)
        raise RuntimeError("paddock-server did not listen within %.0fs" % timeout)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SwarmProcess:
    """paddock-agent-swarm with its keyword lines collected as they come."""

    def __init__(self, argv):
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sys.stderr)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode().strip()
            with self.cond:
                self.lines.append((time.time(), line))
                self.cond.notify_all()
            if not line.startswith("STATUS"):
                print("  swarm: " + line, flush=True)

    def wait_line(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, line in self.lines:
                    if pred(line):
                        return t, line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self.cond.wait(min(left, 1.0))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build"),
                    help="directory holding server/paddock-server")
    ap.add_argument("--swarm", help="paddock-agent-swarm (default: BIN_DIR/bench/paddock-agent-swarm)")
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--hold", type=float, default=30.0, help="seconds to hold every agent connected")
    ap.add_argument("--register-concurrency", type=int, default=64)
    ap.add_argument("--connect-concurrency", type=int, default=256)
    ap.add_argument("--report-interval", type=int, default=30)
    ap.add_argument("--reconnect-timeout", type=float, default=300.0)
    ap.add_argument("--no-tls", action="store_true", help="plain HTTP (the server's --no-tls): TLS's share")
    args = ap.parse_args()

    bin_dir = os.path.abspath(args.bin_dir)
    swarm_bin = args.swarm or os.path.join(bin_dir, "bench", "paddock-agent-swarm")
    # Both processes need one descriptor per agent.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.agents + 100:
        print("warning: the descriptor limit (%d) is below the agent count" % hard, file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="pdk-swarm-")
    data_dir = os.path.join(tmp, "data")
    server = Server(os.path.join(bin_dir, "server", "paddock-server"), data_dir, free_port(),
                    os.path.join(tmp, "server.log"), ["--no-tls"] if args.no_tls else [])
    swarm = None
    results = {}
    try:
        server.start()
        with open(os.path.join(data_dir, "admin-key.json")) as f:
            key = json.load(f)
        base = "%s://127.0.0.1:%d" % ("http" if args.no_tls else "https", server.port)
        ca = os.path.join(data_dir, "tls", "ca.pem")
        verify = False if args.no_tls else ca
        http = requests.Session()
        http.trust_env = False
        auth = (key["accessKey"], key["secretKey"])
        project = http.get(base + "/v1/projects?name=Default", auth=auth, verify=verify, timeout=30).json()["data"][0]
        token = http.post(project["links"]["registrationTokens"], json={"maxUses": args.agents}, auth=auth,
                          verify=verify, timeout=30).json()
        for _ in range(200):
            token = http.get(token["links"]["self"], auth=auth, verify=verify, timeout=30).json()
            if token.get("transitioning") != "yes":
                break
            time.sleep(0.05)
        assert token["state"] == "active", token
        time.sleep(2.0)
        rss0 = status_kib(server.proc.pid, "VmRSS")
        print("server idle before the swarm: VmRSS %d KiB" % rss0, flush=True)

        swarm = SwarmProcess([swarm_bin, "--url", token["registrationUrl"]] + ([] if args.no_tls else ["--ca-file", ca]) + [
                              "--agents", str(args.agents),
                              "--register-concurrency", str(args.register_concurrency),
                              "--connect-concurrency", str(args.connect_concurrency),
                              "--report-interval", str(args.report_interval)])
        cpu_start = (cpu_seconds(server.proc.pid), cpu_seconds(swarm.proc.pid))
        got = swarm.wait_line(lambda l: l.startswith("REGISTERED"), 1200)
        if not got:
            raise RuntimeError("the swarm did not finish registering")
        _, n, secs, rate, failures = got[1].split()
        results["registered"] = (int(n), float(secs), float(rate), int(failures))
        cpu_registered = (cpu_seconds(server.proc.pid), cpu_seconds(swarm.proc.pid))
        rss_registered = status_kib(server.proc.pid, "VmRSS")
        got = swarm.wait_line(lambda l: l.startswith("CONNECTED"), 1200)
        if not got:
            raise RuntimeError("the swarm did not finish connecting")
        _, n, secs, rate, failures = got[1].split()
        results["connected"] = (int(n), float(secs), float(rate), int(failures))
        cpu_connected = (cpu_seconds(server.proc.pid), cpu_seconds(swarm.proc.pid))
        # CPU time per operation: what the rate would be on cores of their own.
        results["cpu_ms"] = {
            "register": [1000.0 * (b - a) / args.agents for a, b in zip(cpu_start, cpu_registered)],
            "connect": [1000.0 * (b - a) / args.agents for a, b in zip(cpu_registered, cpu_connected)]}
        if not swarm.wait_line(lambda l: l.startswith("ALL_CONNECTED"), 120):
            raise RuntimeError("not every agent connected")

        # Hold: pings and reports only. CPU over the window, RSS at its end.
        cpu0, swarm_cpu0, t0 = cpu_seconds(server.proc.pid), cpu_seconds(swarm.proc.pid), time.monotonic()
        time.sleep(args.hold)
        held = time.monotonic() - t0
        server_cpu = 100.0 * (cpu_seconds(server.proc.pid) - cpu0) / held
        swarm_cpu = 100.0 * (cpu_seconds(swarm.proc.pid) - swarm_cpu0) / held
        rss1 = status_kib(server.proc.pid, "VmRSS")
        hwm1 = status_kib(server.proc.pid, "VmHWM")
        swarm_rss = status_kib(swarm.proc.pid, "VmRSS")
        lost = [l for _, l in swarm.lines if l.startswith("LOST")]
        results["held"] = dict(rss0=rss0, rss_registered=rss_registered, rss1=rss1, hwm1=hwm1,
                               per_agent=(rss1 - rss0) * 1024.0 / args.agents, server_cpu=server_cpu,
                               swarm_cpu=swarm_cpu, swarm_rss=swarm_rss, lost_during_hold=len(lost))

        # kill -9 and restart on the same port.
        swarm_cpu_kill = cpu_seconds(swarm.proc.pid)
        t_kill = time.time()
        server.kill9()
        t_listen = server.start()
        got = swarm.wait_line(lambda l: l.startswith("ALL_CONNECTED") and int(l.split()[1]) > t_kill * 1000,
                              args.reconnect_timeout)
        status = [(int(l.split()[1]) / 1000.0, int(l.split()[2])) for _, l in swarm.lines if l.startswith("STATUS")]

        def first_at(fraction):
            for t, c in status:
                if t > t_listen and c >= fraction * args.agents:
                    return t - t_kill
            return None

        back = {"listen": t_listen - t_kill, "50%": first_at(0.5), "90%": first_at(0.9), "99%": first_at(0.99)}
        if got:
            back["all"] = int(got[1].split()[1]) / 1000.0 - t_kill
        else:
            last = [c for t, c in status if t > t_kill]
            back["all"] = None
            back["connected at the timeout"] = last[-1] if last else 0
        back["cpu_ms"] = [1000.0 * cpu_seconds(server.proc.pid) / args.agents,
                          1000.0 * (cpu_seconds(swarm.proc.pid) - swarm_cpu_kill) / args.agents]
        # Held again as long as before the kill: RSS at the end of it.
        time.sleep(args.hold)
        back["rss_after"] = status_kib(server.proc.pid, "VmRSS")
        results["restart"] = back

        print("\nagents: %d%s   (machine: %d cores)" % (args.agents, ", plain HTTP" if args.no_tls else ", TLS",
                                                   os.cpu_count()))
        n, secs, rate, failures = results["registered"]
        print("registration:  %d in %.2f s = %.0f/s, %d failed attempts (concurrency %d)" % (
            n, secs, rate, failures, args.register_concurrency))
        n, secs, rate, failures = results["connected"]
        print("connect+snap:  %d in %.2f s = %.0f/s, %d failed dials (concurrency %d)" % (
            n, secs, rate, failures, args.connect_concurrency))
        c = results["cpu_ms"]
        print("CPU per agent: register %.2f ms server / %.2f ms swarm; connect+snapshot %.2f ms server / %.2f ms swarm"
              % (c["register"][0], c["register"][1], c["connect"][0], c["connect"][1]))
        h = results["held"]
        print("server RSS:    %d KiB idle -> %d KiB after registering -> %d KiB with all connected "
              "(HWM %d): %.1f KiB per agent" % (h["rss0"], h["rss_registered"], h["rss1"], h["hwm1"],
                                                h["per_agent"] / 1024))
        print("hold %.0f s:    server CPU %.1f %% of one core, swarm CPU %.1f %%, swarm RSS %d KiB, %d drops" % (
            args.hold, h["server_cpu"], h["swarm_cpu"], h["swarm_rss"], h["lost_during_hold"]))
        fmt = lambda v: "n/a" if v is None else "%.1f s" % v  # noqa: E731
        print("kill -9 + restart: listening after %s; 50%% back %s, 90%% %s, 99%% %s, all %s%s" % (
            fmt(back["listen"]), fmt(back["50%"]), fmt(back["90%"]), fmt(back["99%"]), fmt(back["all"]),
            "" if back["all"] is not None else " (%d connected at the timeout)" % back["connected at the timeout"]))
        print("CPU per agent over the restart (until all back): %.2f ms server (from its start) / %.2f ms swarm" % (
            back["cpu_ms"][0], back["cpu_ms"][1]))
        print("load average at the end: %s" % open("/proc/loadavg").read().strip())
        print("server RSS after the restart, all back and held: %d KiB (%.1f KiB per agent over the idle figure)" % (
            back["rss_after"], (back["rss_after"] - h["rss0"]) / args.agents))
        return 0
    finally:
        if swarm:
            swarm.stop()
        server.stop()
        if not os.environ.get("PADDOCK_KEEP_TMP"):
            subprocess.run(["rm", "-rf", tmp])
        else:
            print("kept " + tmp)


if __name__ == "__main__":
    sys.exit(main())
