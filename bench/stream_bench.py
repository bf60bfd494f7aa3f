#!/usr/bin/python3
"""Streams through the tunnel against Docker's own API, side by side in one run.

    user ──wss /v1/stream──▶ paddock-server ◀──wss /v1/tunnel── paddock-agent ──unix socket──▶ dockerd
    user ──────────────────────────── unix socket (the baseline) ──────────────────────────────▶ dockerd

Starts a private dockerd (never the system one, containers --network none),
a paddock-server on 127.0.0.1 and one connected paddock-agent, then measures:

  logs    one container's whole json-file log (follow=false, tail=all), read
          directly from Docker's API and through the tunnel, alternately;
          also with `paddock logs` (the CLI) to /dev/null. MB/s of log payload
          and the CPU time each process spent.
  many    N concurrent log streams (a smaller log each): aggregate MB/s,
          direct and through the tunnel, alternately.
  open    time from the request to the first output of `echo x`: the action
          POST, the /v1/stream upgrade and the agent's exec create + start,
          against exec create + start on Docker's API; and `paddock exec`
          against `docker exec` (both CLIs, process start included).
  echo    keystroke echo of a TTY (`cat`): one byte in, its echo out, through
          the tunnel and on a direct attach to Docker's hijacked exec
          connection, round by round alternately.
  idle    RSS of the server and the agent before and after opening N idle
          sessions (N follow-logs of a quiet container, then N `cat` execs
          more, all held together).

The client side of logs, open and echo is bench/stream_client.cpp (built with
-DPADDOCK_BUILD_BENCH=ON), blocking and single-threaded on both paths.

    bench/stream_bench.py [--bin-dir build] [--client build/bench/stream_client]
                          [--only idle,open,echo,logs,many] [--log-mb 200]
                          [--line-bytes 100] [--rounds 3] [--streams 20]
                          [--stream-mb 20] [--profile DIR] [--json FILE] ...

--profile records one more tunnel log run with `perf record` (server and
agent) and `strace -c` (one process at a time), outside the figures.
"""

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

import websocket  # noqa: E402

from dockerd import PrivateDockerd  # noqa: E402
from paddock_harness import ServerProcess, basic_auth_header, wait_for  # noqa: E402

BUSYBOX = "paddock-bench/busybox:latest"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1e6


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def cpu_seconds(pid):
    """utime + stime of pid and its reaped children."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2:].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin_dir = os.path.abspath(args.bin_dir)
        self.client = os.path.abspath(args.client)
        self.tmp = tempfile.mkdtemp(prefix="pdk-sb-")
        self.dockerd = PrivateDockerd()
        self.server = None
        self.agent = None
        self.results = {}

    # -- setup ------------------------------------------------------------

    def start(self):
        os.environ["PADDOCK_BIN_DIR"] = self.bin_dir
        self.dockerd.start()
        self.dockerd.make_busybox_image(BUSYBOX)
        self.server = ServerProcess(extra_args=["--rate-limit", "0"])
        bin_dir = self.bin_dir
        server = self.server
        server.command = lambda: [os.path.join(bin_dir, "server", "paddock-server"), "--data-dir", server.data_dir,
                                  "--listen", "127.0.0.1:0", "--log-level", self.args.log_level, "--rate-limit", "0",
                                  "--max-websockets-per-account", "0"]
        server.start()
        self.api = server.session()
        self.auth = basic_auth_header(*server.admin)
        project = self.api.ok("GET", "/v1/projects?name=Default")["data"][0]
        token = self.api.ok("POST", project["links"]["registrationTokens"], json={}, status=201)
        token = self.api.wait_settled(token["links"]["self"])
        with open(server.ca_file, "rb") as f:
            checksum = hashlib.sha256(f.read()).hexdigest()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PADDOCK_")}
        env.update({"DOCKER_HOST": self.dockerd.host, "PADDOCK_MACHINE_ID_FILE": os.path.join(self.tmp, "machine-id"),
                    "PADDOCK_STATE_DIR": os.path.join(self.tmp, "state"), "PADDOCK_LOG_LEVEL": self.args.log_level})
        self.agent_log = os.path.join(self.tmp, "agent.log")
        with open(self.agent_log, "wb") as log:
            # Reports every 5 s: the server's liveness check counts only
            # messages, not the agent's pings, and drops an agent that says
            # nothing for 15 s (at the default 30 s, opens would meet 503s).
            self.agent = subprocess.Popen([os.path.join(bin_dir, "agent", "paddock-agent"), "--ca-checksum", checksum,
                                           "--report-interval", "5s", "--hostname", "streams-bench",
                                           token["registrationUrl"]],
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True)
        self.host = wait_for(lambda: next(iter(self.api.ok("GET", "/v1/hosts?name=streams-bench")["data"]), None),
                             30, 0.2, "the agent's host")
        wait_for(lambda: self.api.ok("GET", "/v1/hosts/" + self.host["id"]).get("dockerState") == "ok", 30, 0.2,
                 "the host active with Docker")
        version = json.loads(self.docker_api_get("/version"))["ApiVersion"]
        # The agent's own version prefix, so both paths ask Docker the same thing.
        self.api_prefix = "/v" + version
        self.cli_env = dict(env, PADDOCK_URL=server.url, PADDOCK_ACCESS_KEY=server.admin[0],
                            PADDOCK_SECRET_KEY=server.admin[1], PADDOCK_CA_CHECKSUM=checksum)

    def docker_api_get(self, path):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.dockerd.socket_path)
            s.sendall(("GET %s HTTP/1.0\r\nHost: docker\r\n\r\n" % path).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.partition(b"\r\n\r\n")[2].decode()

    def container(self, name, *cmd, wait_exit=False, timeout=600):
        cid = self.dockerd.run(BUSYBOX, *cmd, name=name, timeout=timeout)
        if wait_exit:
            wait_for(lambda: self.dockerd.docker("inspect", "-f", "{{.State.Running}}", cid).strip() == "false",
                     timeout, 0.5, "container %s to exit" % name)

        def listed():
            page = self.api.ok("GET", "/v1/hosts/%s/containers?dockerId=%s" % (self.host["id"], cid))
            return next((c for c in page["data"] if c["dockerId"] == cid and
                         (wait_exit or c["state"] == "running")), None)

        return cid, wait_for(listed, 30, 0.2, "container %s on the server" % name)

    def access(self, container, action, **input):
        answer = self.api.ok("POST", container["links"]["self"] + "?action=" + action, json=input)
        assert answer["type"] == "hostAccess", answer
        return answer

    def run_client(self, *args):
        out = subprocess.run([self.client, *args], capture_output=True, check=False, timeout=900)
        if out.returncode != 0:
            raise RuntimeError("stream_client %s: %s" % (args[0], out.stderr.decode()))
        return json.loads(out.stdout)

    def procs(self):
        return {"dockerd": self.dockerd.pid, "server": self.server.proc.pid, "agent": self.agent.pid}

    # -- logs ---------------------------------------------------------------

    def log_container(self, name, lines, line_bytes):
        # One line repeated: `yes` fills the pipe, `head` stops it at `lines`.
        line = "x" * (line_bytes - 1)
        cid, c = self.container(name, "sh", "-c", "yes %s | head -n %d" % (line, lines), wait_exit=True)
        return cid, c, lines * line_bytes

    def logs(self):
        a = self.args
        lines = int(a.log_mb * MB / a.line_bytes)
        t0 = time.monotonic()
        cid, c, payload = self.log_container("biglog", lines, a.line_bytes)
        print("logs: %d lines of %d bytes (%.0f MB) written in %.1f s" % (lines, a.line_bytes, payload / MB,
                                                                         time.monotonic() - t0), flush=True)
        target = "%s/containers/%s/logs?follow=0&tail=all&timestamps=0&stdout=1&stderr=1" % (self.api_prefix, cid)
        runs = {"direct": [], "tunnel": [], "cli": []}
        for r in range(a.rounds):
            for kind in ("direct", "tunnel", "cli"):
                cpu0 = {n: cpu_seconds(p) for n, p in self.procs().items()}
                if kind == "direct":
                    out = self.run_client("docker-logs", self.dockerd.socket_path, target)
                    got = out["bytes"] - 8 * lines  # less the frame headers (HTTP framing stays: a bound)
                elif kind == "tunnel":
                    acc = self.access(c, "logs", follow=False, tail="all")
                    out = self.run_client("tunnel-logs", acc["url"], acc["token"], self.server.ca_file)
                    got = out["bytes"]
                    assert out["status"] == '{"status":"Success"}', out
                else:
                    t1 = time.monotonic()
                    ru0 = os.times()
                    subprocess.run([os.path.join(self.bin_dir, "cli", "paddock"), "logs", "--tail", "all", cid],
                                   stdout=subprocess.DEVNULL, check=True, env=self.cli_env)
                    ru1 = os.times()
                    out = {"seconds": time.monotonic() - t1,
                           "cpu": (ru1.children_user - ru0.children_user) + (ru1.children_system - ru0.children_system)}
                    got = payload
                if got < payload:
                    raise RuntimeError("%s: %d of %d bytes" % (kind, got, payload))
                cpu = {n: cpu_seconds(p) - cpu0[n] for n, p in self.procs().items()}
                cpu["client"] = out["cpu"]
                mbps = payload / MB / out["seconds"]
                runs[kind].append({"mbps": mbps, "seconds": out["seconds"], "cpu": cpu})
                print("  round %d %-6s %7.1f MB/s  %5.2f s  cpu s: %s" % (
                    r + 1, kind, mbps, out["seconds"],
                    " ".join("%s %.2f" % (n, v) for n, v in cpu.items())), flush=True)
        med = {k: statistics.median(x["mbps"] for x in v) for k, v in runs.items()}
        ratios = [t["mbps"] / d["mbps"] for d, t in zip(runs["direct"], runs["tunnel"])]
        cpu_per_gb = {k: {n: statistics.median(x["cpu"][n] for x in v) / (payload / 1e9) for n in v[0]["cpu"]}
                      for k, v in runs.items()}
        print("logs: direct %.1f MB/s, tunnel %.1f MB/s, cli %.1f MB/s (medians); tunnel/direct per round %s, "
              "median %.2f" % (med["direct"], med["tunnel"], med["cli"], " ".join("%.2f" % x for x in ratios),
                               statistics.median(ratios)))
        for k, v in cpu_per_gb.items():
            print("  cpu s per GB, %-6s %s" % (k, " ".join("%s %.2f" % (n, s) for n, s in v.items())))
        self.results["logs"] = {"payload_bytes": payload, "lines": lines, "runs": runs, "median_mbps": med,
                                "ratios": ratios, "cpu_per_gb": cpu_per_gb}
        if self.args.profile:
            self.profile_tunnel_logs(c, lines)
        self.dockerd.docker("rm", "-f", cid, check=False)

    def profile_tunnel_logs(self, c, lines):
        """One more tunnel run under `perf record` (server and agent), and one
        under `strace -c` per process (system calls per log line), outside
        the figures."""
        out_dir = os.path.abspath(self.args.profile)
        os.makedirs(out_dir, exist_ok=True)
        pids = "%d,%d" % (self.server.proc.pid, self.agent.pid)
        self.traced_run(c, ["perf", "record", "-q", "-F", "999", "-e", "cpu-clock", "-g", "-p", pids,
                            "-o", os.path.join(out_dir, "tunnel-logs.perf.data")])
        for who, pid in (("server", self.server.proc.pid), ("agent", self.agent.pid)):
            self.traced_run(c, ["strace", "-c", "-f", "-o", os.path.join(out_dir, "tunnel-logs.strace-%s.txt" % who),
                                "-p", str(pid)])
        print("  profiles in %s (%d log lines a run)" % (out_dir, lines), flush=True)

    def traced_run(self, c, argv):
        tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attaching takes a moment; a late start only shortens the sample
        acc = self.access(c, "logs", follow=False, tail="all")
        out = self.run_client("tunnel-logs", acc["url"], acc["token"], self.server.ca_file)
        tracer.send_signal(2)
        tracer.wait(60)
        print("  traced run (%s): %d messages in %.2f s" % (argv[0], out["messages"], out["seconds"]), flush=True)

    def many(self):
        a = self.args
        lines = int(a.stream_mb * MB / a.line_bytes)
        cid, c, payload = self.log_container("manylog", lines, a.line_bytes)
        target = "%s/containers/%s/logs?follow=0&tail=all&timestamps=0&stdout=1&stderr=1" % (self.api_prefix, cid)
        runs = {"direct": [], "tunnel": []}
        for r in range(a.rounds):
            for kind in ("direct", "tunnel"):
                if kind == "direct":
                    argv = [["docker-logs", self.dockerd.socket_path, target]] * a.streams
                else:
                    argv = []
                    for _ in range(a.streams):
                        acc = self.access(c, "logs", follow=False, tail="all")
                        argv.append(["tunnel-logs", acc["url"], acc["token"], self.server.ca_file])
                t0 = time.monotonic()
                ps = [subprocess.Popen([self.client, *x], stdout=subprocess.PIPE) for x in argv]
                outs = [json.loads(p.communicate(timeout=900)[0]) for p in ps]
                wall = time.monotonic() - t0
                for o in outs:
                    got = o["bytes"] - (8 * lines if kind == "direct" else 0)
                    if got < payload:
                        raise RuntimeError("%s: %d of %d bytes" % (kind, got, payload))
                agg = payload * a.streams / MB / wall
                slowest = max(o["seconds"] for o in outs)
                fastest = min(o["seconds"] for o in outs)
                runs[kind].append({"mbps": agg, "wall": wall, "slowest": slowest, "fastest": fastest})
                print("  round %d %-6s %d streams: %7.1f MB/s aggregate (%.2f s; per stream %.2f–%.2f s)" % (
                    r + 1, kind, a.streams, agg, wall, fastest, slowest), flush=True)
        med = {k: statistics.median(x["mbps"] for x in v) for k, v in runs.items()}
        ratios = [t["mbps"] / d["mbps"] for d, t in zip(runs["direct"], runs["tunnel"])]
        print("many: %d streams of %.0f MB: direct %.1f MB/s, tunnel %.1f MB/s aggregate; ratio median %.2f" % (
            a.streams, payload / MB, med["direct"], med["tunnel"], statistics.median(ratios)))
        self.results["many"] = {"streams": a.streams, "payload_bytes": payload, "runs": runs, "median_mbps": med,
                                "ratios": ratios}
        self.dockerd.docker("rm", "-f", cid, check=False)

    # -- exec -----------------------------------------------------------------

    def sleeper(self, name):
        return self.container(name, "sleep", "1000000")

    def open_time(self):
        a = self.args
        cid, c = self.sleeper("opener")
        out = self.run_client("exec-open", self.auth, self.server.ca_file, c["links"]["self"],
                              self.dockerd.socket_path, cid, str(a.open_rounds))
        print("open (API, %d rounds alternating): tunnel %.2f ms to first output (action %.2f, upgrade %.2f), "
              "direct %.2f ms; added %.2f ms" % (
                  a.open_rounds, out["tunnel_first_ms"]["p50"], out["tunnel_action_ms"], out["tunnel_upgrade_ms"],
                  out["direct_first_ms"]["p50"], out["tunnel_first_ms"]["p50"] - out["direct_first_ms"]["p50"]),
              flush=True)
        # Both command lines, process start included.
        paddock = [os.path.join(self.bin_dir, "cli", "paddock"), "exec", cid, "--", "echo", "x"]
        docker = ["docker", "-H", self.dockerd.host, "exec", cid, "echo", "x"]
        docker_env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
        times = {"paddock": [], "docker": []}
        for _ in range(a.cli_rounds):
            for name, argv, env in (("paddock", paddock, self.cli_env), ("docker", docker, docker_env)):
                t0 = time.monotonic()
                p = subprocess.run(argv, capture_output=True, env=env, check=True)
                times[name].append((time.monotonic() - t0) * 1e3)
                assert p.stdout.strip() == b"x", p
        cli = {k: statistics.median(v) for k, v in times.items()}
        print("open (CLIs, %d rounds alternating): paddock exec %.1f ms, docker exec %.1f ms; added %.1f ms" % (
            a.cli_rounds, cli["paddock"], cli["docker"], cli["paddock"] - cli["docker"]), flush=True)
        self.results["open"] = {"api": out, "cli_ms": cli}

    def echo(self):
        cid, c = self.sleeper("echoer")
        out = self.run_client("exec-echo", self.auth, self.server.ca_file, c["links"]["self"],
                              self.dockerd.socket_path, cid, str(self.args.echo_rounds))
        print("echo (%d rounds alternating): tunnel p50 %.0f µs p99 %.0f µs, direct p50 %.0f µs p99 %.0f µs; "
              "added p50 %.0f µs p99 %.0f µs" % (
                  out["rounds"], out["tunnel_us"]["p50"], out["tunnel_us"]["p99"], out["direct_us"]["p50"],
                  out["direct_us"]["p99"], out["added_us"]["p50"], out["added_us"]["p99"]), flush=True)
        self.results["echo"] = out

    # -- idle sessions ---------------------------------------------------------

    def open_websockets(self):
        text = self.api.request("GET", "/metrics").text
        for line in text.splitlines():
            if line.startswith('paddock_websockets_open{kind="tunnel"}'):
                return int(float(line.split()[-1]))
        return 0

    def idle(self):
        n = self.args.idle
        cid, c = self.sleeper("idler")
        ssl_opt = {"ca_certs": self.server.ca_file}

        def hold(kinds):
            socks = []
            for kind in kinds:
                if kind == "logs":
                    acc = self.access(c, "logs", follow=True, tail="0")
                else:
                    acc = self.access(c, "execute", command=["cat"], tty=False)
                socks.append(websocket.create_connection(acc["url"], header=["Authorization: Bearer " + acc["token"]],
                                                         sslopt=ssl_opt, timeout=60))
            wait_for(lambda: self.open_websockets() >= len(kinds), 60, 0.2, "%d tunnels joined" % len(kinds))
            return socks

        def settle():
            time.sleep(3)
            return {"server": rss_kib(self.server.proc.pid), "agent": rss_kib(self.agent.pid)}

        def close(socks):
            for s in socks:
                s.close(timeout=2)
            wait_for(lambda: self.open_websockets() == 0, 60, 0.2, "every tunnel closed")

        # One session of each kind first, so one-time costs stay out of the figures.
        close(hold(["logs", "exec"]))
        # Then n of each kind, held together: each delta is live memory, not
        # the allocator reusing what the previous kind freed.
        out = {}
        held = []
        before = settle()
        for kind in ("logs", "exec"):
            held += hold([kind] * n)
            during = settle()
            per = {p: (during[p] - before[p]) / n for p in before}
            out[kind] = {"before_kib": before, "during_kib": during, "kib_per_session": per}
            print("idle %s: %d more sessions: server %d → %d KiB (%.1f KiB each), agent %d → %d KiB (%.1f KiB each)" % (
                kind, n, before["server"], during["server"], per["server"], before["agent"], during["agent"],
                per["agent"]), flush=True)
            before = during
        close(held)
        out["after_close_kib"] = settle()
        print("idle: all closed: server %(server)d KiB, agent %(agent)d KiB" % out["after_close_kib"], flush=True)
        self.results["idle"] = {"sessions": n, **out}

    def print_logs(self, lines=30):
        if self.agent is not None:
            with open(self.agent_log, errors="replace") as f:
                sys.stderr.write("---- agent log, last lines ----\n" + "".join(f.readlines()[-lines:]))
        if self.server is not None:
            sys.stderr.write("---- server log, last lines ----\n" + self.server.log_tail(lines) + "\n")

    def keep_logs(self, directory):
        os.makedirs(directory, exist_ok=True)
        if self.agent is not None:
            subprocess.run(["cp", self.agent_log, os.path.join(directory, "agent.log")])
        if self.server is not None:
            with open(os.path.join(directory, "server.log"), "w") as f:
                f.write(self.server.log())

    def stop(self):
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(15)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        if self.server is not None:
            self.server.cleanup()
        self.dockerd.stop()
        subprocess.run(["rm", "-rf", self.tmp])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build"),
                    help="directory with server/paddock-server, agent/paddock-agent and cli/paddock")
    ap.add_argument("--client", default=os.path.join(HERE, "..", "build", "bench", "stream_client"))
    ap.add_argument("--only", default="idle,open,echo,logs,many", help="which parts, in this order")
    ap.add_argument("--log-mb", type=float, default=200.0, help="size of the big log's payload")
    ap.add_argument("--line-bytes", type=int, default=100, help="bytes per log line, newline included")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of each log measure")
    ap.add_argument("--streams", type=int, default=20, help="concurrent log streams")
    ap.add_argument("--stream-mb", type=float, default=20.0, help="log payload of each concurrent stream")
    ap.add_argument("--open-rounds", type=int, default=50)
    ap.add_argument("--cli-rounds", type=int, default=20)
    ap.add_argument("--echo-rounds", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=100,
                    help="idle sessions of each kind, held together (the agent allows 256 in all)")
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--log-level", default="info", help="of the server and the agent")
    ap.add_argument("--logs", metavar="DIR", help="keep the server's and the agent's logs in DIR")
    ap.add_argument("--profile", metavar="DIR",
                    help="after the logs figures, profile one more tunnel run (perf record, strace -c) into DIR")
    args = ap.parse_args()
    bench = Bench(args)
    try:
        bench.start()
        for part in args.only.split(","):
            getattr(bench, {"open": "open_time"}.get(part, part))()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(bench.results, f, indent=1)
        return 0
    except BaseException:
        bench.print_logs()
        raise
    finally:
        if args.logs:
            bench.keep_logs(args.logs)
        bench.stop()


if __name__ == "__main__":
    sys.exit(main())
