#!/usr/bin/python3
"""paddock-agent's footprint on a host with N running containers.

Starts a private dockerd (never the system one) with N busybox containers
(`sleep`, --network none), a paddock-server on loopback and one connected
paddock-agent at its defaults (report every 30 s, ping every 5 s), then
samples every --interval seconds for --duration seconds, after --warmup:

  VmRSS, VmHWM, RssAnon/RssFile and CPU (utime+stime from /proc/PID/stat)

of the agent (with GNUTLS_NO_IMPLICIT_INIT=1, as its image and systemd
unit run it) and, side by side in the same run, of the baselines: dockerd
itself, a `docker events` client following the same daemon (a minimal
Docker event follower), `paddock-curl-floor` (bench/curl_floor.cpp: Debian's
libcurl initialized and one GET /version on the same socket, then idle: the
floor of any libcurl-based Docker client) and an idle `sleep` (the floor of
any process).
Prints one line per sample and a summary: RSS first/last/max, the slope of
a least-squares fit (KiB per hour) and CPU as % of one core; with
--mappings N, the agent's N largest mappings by resident size at the end.

    bench/agent_footprint.py [--bin-dir build] [--containers 50]
                             [--duration 120] [--interval 10] [--warmup 20]
                             [--mappings N]
"""

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

from dockerd import PrivateDockerd  # noqa: E402
from bench_host import start_agent, start_server, tear_down, wait_reported  # noqa: E402

BUSYBOX = "paddock-bench/busybox:latest"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    """{field: KiB} for the Vm*/Rss* lines of /proc/PID/status, and Pss."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0])
    # Pss: shared library pages divided among the processes that map them.
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


def rss_by_mapping(pid):
    """[(KiB resident, KiB private dirty, name)] of /proc/PID/smaps, one row per file or kind of
    anonymous memory, largest first: what the resident set is made of."""
    rows = {}
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = head[5] if len(head) > 5 else "[anonymous]"
            elif head[0] in ("Rss:", "Private_Dirty:"):
                row = rows.setdefault(name, [0, 0])
                row[0 if head[0] == "Rss:" else 1] += int(head[1])
    return sorted(((r, d, n) for n, (r, d) in rows.items()), reverse=True)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2:].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def slope_per_hour(points):
    """Least-squares slope of (seconds, KiB) points, in KiB per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build"),
                    help="directory holding server/paddock-server and agent/paddock-agent")
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--duration", type=float, default=120.0, help="measured window, seconds")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds after the agent reported all containers")
    ap.add_argument("--report-interval", default="30s", help="the agent's --report-interval (its default: 30s)")
    ap.add_argument("--csv", help="also write every sample to this CSV file")
    ap.add_argument("--mappings", type=int, default=0, metavar="N",
                    help="at the end, print the agent's N largest mappings by resident size")
    args = ap.parse_args()

    bin_dir = os.path.abspath(args.bin_dir)
    # As the agent image and the systemd unit run it (and the curl floor
    # beside it, alike): GnuTLS, which libcurl loads only through librtmp,
    # is not set up.
    os.environ.setdefault("GNUTLS_NO_IMPLICIT_INIT", "1")
    tmp = tempfile.mkdtemp(prefix="pdk-fp-")
    dockerd = PrivateDockerd()
    server = None
    agent = events = idle = floor = None
    try:
        dockerd.start()
        dockerd.make_busybox_image(BUSYBOX)
        t0 = time.monotonic()
        for i in range(args.containers):
            dockerd.run(BUSYBOX, "sleep", "1000000", name="fp-%03d" % i)
        print("started %d containers in %.1fs" % (args.containers, time.monotonic() - t0), flush=True)

        server = start_server(bin_dir)
        agent, _ = start_agent(server, bin_dir, dockerd.host, tmp, "footprint", "--report-interval",
                               args.report_interval)
        host = wait_reported(server.session(), "footprint", args.containers)
        print("agent connected: host %s, %d containers reported" % (host["id"], args.containers), flush=True)

        # Baselines in the same run: a `docker events` follower of the same daemon, an idle sleep.
        events = subprocess.Popen(["docker", "-H", dockerd.host, "events"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={k: v for k, v in os.environ.items() if k != "DOCKER_HOST"})
        idle = subprocess.Popen(["sleep", "infinity"])
        floor = subprocess.Popen([os.path.join(bin_dir, "bench", "paddock-curl-floor"), dockerd.socket_path],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        if not floor.stdout.readline():
            raise RuntimeError("paddock-curl-floor could not reach Docker")
        time.sleep(args.warmup)

        procs = {"agent": agent.pid, "dockerd": dockerd.pid, "docker-events": events.pid, "curl-floor": floor.pid,
                 "sleep": idle.pid}
        start = time.monotonic()
        cpu0 = {n: cpu_seconds(p) for n, p in procs.items()}
        samples = {n: [] for n in procs}
        writer = None
        if args.csv:
            csv_file = open(args.csv, "w", newline="")
            writer = csv.writer(csv_file)
            writer.writerow(["t", "process", "VmRSS", "VmHWM", "RssAnon", "RssFile", "Pss", "cpu_s"])
        while True:
            t = time.monotonic() - start
            line = ["%6.0fs" % t]
            for n, p in procs.items():
                st = proc_status(p)
                cpu = cpu_seconds(p) - cpu0[n]
                samples[n].append((t, st, cpu))
                line.append("%s %d KiB (hwm %d)" % (n, st["VmRSS"], st["VmHWM"]))
                if writer:
                    writer.writerow(["%.1f" % t, n, st["VmRSS"], st["VmHWM"], st.get("RssAnon", 0),
                                     st.get("RssFile", 0), st.get("Pss", 0), "%.2f" % cpu])
            if writer:
                csv_file.flush()
            print("  ".join(line), flush=True)
            if agent.poll() is not None:
                raise RuntimeError("paddock-agent exited with %s" % agent.returncode)
            if t >= args.duration:
                break
            time.sleep(min(args.interval, max(0.0, args.duration - t)))

        connects = sum(1 for line in server.log().splitlines() if "agent of host" in line and "connected from" in line)
        print("\nthe agent connected %d time(s) during the run" % connects)
        print("summary over %.0f s, %d containers (RSS in KiB; CPU as %% of one core)" % (
            samples["agent"][-1][0], args.containers))
        print("%-14s %8s %8s %8s %8s %8s %8s %8s %12s %8s" % ("process", "first", "last", "max", "HWM", "anon",
                                                               "file", "Pss", "slope KiB/h", "CPU %"))
        for n, rows in samples.items():
            rss = [st["VmRSS"] for _, st, _ in rows]
            last = rows[-1][1]
            elapsed = rows[-1][0] or 1.0
            print("%-14s %8d %8d %8d %8d %8d %8d %8d %12.1f %8.3f" % (
                n, rss[0], rss[-1], max(rss), last["VmHWM"], last.get("RssAnon", 0), last.get("RssFile", 0),
                last.get("Pss", 0),
                slope_per_hour([(t, st["VmRSS"]) for t, st, _ in rows]), 100.0 * rows[-1][2] / elapsed))
        if args.mappings:
            print("\nthe agent's resident set by mapping (KiB): resident, private dirty, file")
            for rss, dirty, name in rss_by_mapping(agent.pid)[:args.mappings]:
                print("%8d %8d  %s" % (rss, dirty, name))
        return 0
    finally:
        tear_down((agent, events, floor, idle), server, dockerd, tmp)


if __name__ == "__main__":
    sys.exit(main())
