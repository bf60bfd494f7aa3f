"""What the bench drivers share: a paddock-server on loopback and one agent
registered with it, from the binaries of a build tree, on the test harness.

    server = start_server(bin_dir)
    agent, log_path = start_agent(server, bin_dir, dockerd.host, tmp, "footprint", "--report-interval", "10s")
    host = wait_reported(server.session(), "footprint", containers=50)
"""

import hashlib
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

from paddock_harness import ServerProcess, wait_for  # noqa: E402


def start_server(bin_dir):
    """paddock-server from bin_dir on 127.0.0.1, rate limits off, logging at info
    (the harness's debug logging would be part of what is measured)."""
    os.environ["PADDOCK_BIN_DIR"] = bin_dir
    server = ServerProcess(extra_args=["--rate-limit", "0"])
    server.command = lambda: [os.path.join(bin_dir, "server", "paddock-server"), "--data-dir", server.data_dir,
                              "--listen", "127.0.0.1:0", "--log-level", "info", "--rate-limit", "0"]
    server.start()
    return server


def start_agent(server, bin_dir, docker_host, tmp, hostname, *args):
    """paddock-agent registering with a fresh token as `hostname`, its state
    and log under tmp; returns (the process, the log's path)."""
    api = server.session()
    project = api.ok("GET", "/v1/projects?name=Default")["data"][0]
    token = api.ok("POST", project["links"]["registrationTokens"], json={}, status=201)
    token = api.wait_settled(token["links"]["self"])
    with open(server.ca_file, "rb") as f:
        checksum = hashlib.sha256(f.read()).hexdigest()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDOCK_")}
    env.update({"DOCKER_HOST": docker_host, "PADDOCK_MACHINE_ID_FILE": os.path.join(tmp, "machine-id"),
                "PADDOCK_STATE_DIR": os.path.join(tmp, "state"), "PADDOCK_LOG_LEVEL": "info"})
    log_path = os.path.join(tmp, "agent.log")
    with open(log_path, "wb") as log:
        agent = subprocess.Popen([os.path.join(bin_dir, "agent", "paddock-agent"), "--ca-checksum", checksum,
                                  "--hostname", hostname, *args, token["registrationUrl"]],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
    return agent, log_path


def wait_reported(api, hostname, containers, timeout=60):
    """The host named `hostname` once it is active with at least `containers` running."""
    def reported():
        hosts = api.ok("GET", "/v1/hosts?name=" + hostname)["data"]
        if not hosts or hosts[0]["state"] != "active":
            return None
        running = api.ok("GET", "/v1/containers?hostId=%s&state=running&limit=1000" % hosts[0]["id"])["data"]
        return hosts[0] if len(running) >= containers else None

    return wait_for(reported, timeout, 0.5, "the agent to report %d running containers" % containers)


def tear_down(processes, server, dockerd, tmp):
    """Stops what a driver started: its processes (politely, then by force),
    the server, the private dockerd, and the temp dir."""
    for p in processes:
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    if server is not None:
        server.cleanup()
    dockerd.stop()
    shutil.rmtree(tmp, ignore_errors=True)
