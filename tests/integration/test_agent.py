#!/usr/bin/python3
"""paddock-agent against the real paddock-server and a private dockerd.

Every agent here is a real process with its own state directory and its own
machine id file (PADDOCK_MACHINE_ID_FILE), so one box plays several
machines. The server runs on loopback with its own CA; Docker is a private
dockerd (tests/support/dockerd.py), never the system one. Nothing sleeps to
synchronise: every wait polls a condition with a timeout. Run from this
directory:

    PADDOCK_BIN_DIR=<build> PYTHONPATH=../support /usr/bin/python3 -m unittest -v test_agent
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

from dockerd import PrivateDockerd
from paddock_harness import ServerProcess, Subscriber, resource_change, wait_for

NO_RATE_LIMIT = ["--rate-limit", "0"]
BUSYBOX = "paddock-test/busybox:latest"
AGENT_EXIT_TIMEOUT = 30.0
TOKEN_REFUSAL = "the registration token is unknown, expired, used up or deactivated; create a new one"
CONFLICT = "another machine is connected with this host's identity (was the state copied?)"


def agent_binary():
    bin_dir = os.environ.get("PADDOCK_BIN_DIR")
    if not bin_dir:
        raise RuntimeError("PADDOCK_BIN_DIR must name the build directory")
    path = os.path.join(bin_dir, "agent", "paddock-agent")
    if not os.access(path, os.X_OK):
        raise RuntimeError("no executable paddock-agent at " + path)
    return path


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class AgentProcess:
    """One paddock-agent: its own state dir and machine id, output collected."""

    def __init__(self, tmp, name, docker_host, machine_id_file=None, state_dir=None):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.state_dir = state_dir or os.path.join(self.dir, "state")
        self.machine_id_file = machine_id_file or os.path.join(self.dir, "machine-id")
        self.docker_host = docker_host
        self.proc = None
        self.lines = []
        self._lock = threading.Lock()
        self._reader = None

    @property
    def state_file(self):
        return os.path.join(self.state_dir, "state.json")

    def state(self):
        with open(self.state_file, encoding="utf-8") as f:
            return json.load(f)

    def start(self, *args, env=None):
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("PADDOCK_"):
                del e[k]
        e.update({"DOCKER_HOST": self.docker_host, "PADDOCK_MACHINE_ID_FILE": self.machine_id_file,
                  "PADDOCK_STATE_DIR": self.state_dir, "PADDOCK_LOG_LEVEL": "debug"})
        e.update(env or {})
        self.lines = []
        # Reports every second unless a test says otherwise.
        interval = [] if "--report-interval" in args else ["--report-interval", "1s"]
        cmd = [agent_binary()] + interval + list(args)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=e, start_new_session=True)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc):
        for raw in iter(proc.stdout.readline, b""):
            with self._lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
        proc.stdout.close()

    def output(self):
        with self._lock:
            return "\n".join(self.lines)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout=AGENT_EXIT_TIMEOUT):
        """The exit code; AssertionError with the output if it keeps running."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("paddock-agent still running after %.0fs:\n%s" % (timeout, self.output()))
        self._reader.join(5)
        return code

    def run(self, *args, env=None, timeout=AGENT_EXIT_TIMEOUT):
        """Runs to the end; returns (exit code, output)."""
        self.start(*args, env=env)
        code = self.wait(timeout)
        return code, self.output()

    def stop(self, sig=signal.SIGTERM, timeout=AGENT_EXIT_TIMEOUT):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait_for_output(self, pattern, timeout=15.0):
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.output()), timeout, message="agent output /%s/" % pattern)

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(10)


class SameAddressServer(ServerProcess):
    """A ServerProcess that can come back on the port it had (for agents that keep its URL)."""

    fixed_port = None

    def command(self):
        cmd = super().command()
        if self.fixed_port:
            cmd[cmd.index("--listen") + 1] = "127.0.0.1:%d" % self.fixed_port
        return cmd


class AgentTestCase(unittest.TestCase):
    """One server and one private dockerd for the class; a temp dir per test."""

    @classmethod
    def setUpClass(cls):
        cls.dockerd = PrivateDockerd()
        cls.dockerd.start()
        cls.addClassCleanup(cls.dockerd.stop)
        cls.dockerd.make_busybox_image(BUSYBOX)
        cls.server = SameAddressServer(extra_args=NO_RATE_LIMIT)
        cls.server.__enter__()
        cls.addClassCleanup(cls.server.cleanup)
        cls.api = cls.server.session()
        cls.project = cls.api.ok("GET", "/v1/projects?name=Default")["data"][0]

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pdk-agent-")
        self.agents = []

    def tearDown(self):
        for a in self.agents:
            a.kill()
        if not os.environ.get("PADDOCK_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            for a in getattr(self, "agents", []):
                sys.stderr.write("\n---- agent %s output ----\n%s\n" % (a.dir, a.output()[-6000:]))
            if self.server:
                sys.stderr.write("\n---- server log, last lines ----\n%s\n----\n" % self.server.log_tail(40))
        return outcome

    # -- helpers ---------------------------------------------------------

    def agent(self, name="agent", docker_host=None, **kw):
        a = AgentProcess(self.tmp, name, docker_host or self.dockerd.host, **kw)
        self.agents.append(a)
        return a

    def create_token(self, **fields):
        token = self.api.ok("POST", self.project["links"]["registrationTokens"], json=fields, status=201)
        token = self.api.wait_settled(token["links"]["self"])
        self.assertEqual(token["state"], "active", token)
        return token

    def checksum(self):
        return sha256_file(self.server.ca_file)

    def token(self, token_id):
        return self.api.ok("GET", "/v1/registrationTokens/" + token_id)

    def host(self, host_id):
        return self.api.ok("GET", "/v1/hosts/" + host_id)

    def hosts_named(self, name):
        return [h for h in self.api.ok("GET", "/v1/hosts?limit=1000")["data"] if h.get("name") == name]

    def wait_host(self, host_id, pred, timeout=20.0, message="host condition"):
        return wait_for(lambda: (lambda h: h if pred(h) else None)(self.host(host_id)), timeout, message=message)

    def register(self, name="agent", token=None, hostname=None, **kw):
        """Starts an agent that registers with a fresh token; returns (agent, host id)."""
        token = token or self.create_token()
        hostname = hostname or "h-" + uuid.uuid4().hex[:10]
        a = self.agent(name, **kw)
        a.start("--ca-checksum", self.checksum(), "--hostname", hostname, token["registrationUrl"])
        wait_for(lambda: os.path.exists(a.state_file), 20, message="state.json of " + name)
        host_id = a.state()["hostId"]
        self.wait_host(host_id, lambda h: h["state"] == "active" and h.get("dockerState") == "ok", 30,
                       "host %s active" % host_id)
        return a, host_id

    def connected_lines(self, host_number):
        return len(re.findall(r"agent of host %d connected" % host_number, self.server.log()))


class RegistrationTest(AgentTestCase):

    def test_register_with_checksum_makes_an_active_host_with_facts(self):
        token = self.create_token()
        a, host_id = self.register(token=token, hostname="web-checksum")
        h = self.wait_host(host_id, lambda h: h.get("memoryTotal") and h.get("cpuCount"), message="facts")
        self.assertEqual(h["name"], "web-checksum")
        self.assertEqual(h["dockerState"], "ok")
        self.assertTrue(h["dockerVersion"])
        self.assertTrue(h["dockerApiVersion"])
        self.assertEqual(h["arch"], os.uname().machine)
        self.assertEqual(h["kernel"], os.uname().release)
        self.assertEqual(h["cpuCount"], os.cpu_count())
        self.assertGreater(h["memoryTotal"], h["memoryUsed"])
        self.assertGreater(h["diskTotal"], 0)
        self.assertTrue(h["os"])
        self.assertTrue(h["agentVersion"])
        self.assertEqual(self.token(token["id"])["uses"], 1)
        # The state: private, and pinned to exactly the server's CA.
        self.assertEqual(os.stat(a.state_file).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(a.state_dir).st_mode & 0o777, 0o700)
        state = a.state()
        with open(self.server.ca_file, encoding="utf-8") as f:
            self.assertEqual(state["caPem"], f.read())
        self.assertEqual(state["serverUrl"], self.server.url)
        self.assertNotIn(state["credential"]["secretKey"], a.output(), "secrets are never logged")
        # Resource usage keeps coming (every --report-interval): lastSeen moves.
        seen = self.host(host_id)["lastSeen"]
        self.wait_host(host_id, lambda h: h["lastSeen"] != seen, 10, "a later report")
        self.assertEqual(a.stop(), 0)
        self.wait_host(host_id, lambda h: h["state"] == "disconnected", 10, "disconnected after SIGTERM")

    def test_labels_and_agent_ip(self):
        token = self.create_token()
        a = self.agent()
        a.start("--ca-checksum", self.checksum(), "--label", "zone=a", "--agent-ip", "10.9.8.7",
                token["registrationUrl"], env={"PADDOCK_HOST_LABELS": "ignored=1"})
        wait_for(lambda: os.path.exists(a.state_file), 20)
        h = self.wait_host(a.state()["hostId"], lambda h: h["state"] == "active", 20)
        self.assertEqual(h["labels"], {"zone": "a"})
        self.assertEqual(h["agentIp"], "10.9.8.7")

    def test_wrong_checksum_is_refused_and_nothing_is_registered(self):
        token = self.create_token()
        before = self.api.ok("GET", "/v1/hosts?limit=1000")["data"]
        a = self.agent()
        code, out = a.run("--ca-checksum", "0" * 64, token["registrationUrl"])
        self.assertEqual(code, 2, out)
        self.assertIn("CA checksum mismatch", out)
        self.assertEqual(self.token(token["id"])["uses"], 0)
        self.assertEqual(len(self.api.ok("GET", "/v1/hosts?limit=1000")["data"]), len(before))
        self.assertFalse(os.path.exists(a.state_file))
        self.assertNotIn(token["token"], out, "the token is a secret")

    def test_without_checksum_the_private_ca_is_not_trusted(self):
        token = self.create_token()
        a = self.agent()
        code, out = a.run(token["registrationUrl"])
        self.assertEqual(code, 2, out)
        self.assertIn("certificate verify failed", out)
        self.assertIn("PADDOCK_CA_CHECKSUM", out)
        self.assertEqual(self.token(token["id"])["uses"], 0)
        self.assertFalse(os.path.exists(a.state_file))

    def test_token_refusals_are_exit_2_with_one_clear_line(self):
        cases = {}
        cases["unknown"] = self.create_token()["registrationUrl"].rsplit("/", 1)[0] + "/" + "x" * 40
        expired = self.create_token(ttl=1)
        wait_for(lambda: self.token(expired["id"])["state"] == "expired", 10, message="token expiry")
        cases["expired"] = expired["registrationUrl"]
        deactivated = self.create_token()
        self.api.ok("POST", deactivated["links"]["self"] + "?action=deactivate")
        cases["deactivated"] = deactivated["registrationUrl"]
        used_up = self.create_token(maxUses=1)
        first, _ = self.register(name="first-user", token=used_up)
        first.stop()
        cases["used up"] = used_up["registrationUrl"]
        for what, url in cases.items():
            with self.subTest(what):
                a = self.agent("refused-" + what.replace(" ", "-"))
                code, out = a.run("--ca-checksum", self.checksum(), url)
                self.assertEqual(code, 2, out)
                self.assertIn(TOKEN_REFUSAL, out)
                self.assertEqual(len([l for l in out.splitlines() if "error" in l]), 1, out)
                self.assertFalse(os.path.exists(a.state_file))
        self.assertEqual(self.token(used_up["id"])["uses"], 1)

    def test_rerun_with_state_keeps_one_host(self):
        token = self.create_token()
        a, host_id = self.register(token=token, hostname="rerun")
        self.assertEqual(a.stop(), 0)
        # Again with the same command: no new registration, the same host.
        a.start("--hostname", "rerun", "--ca-checksum", self.checksum(), token["registrationUrl"])
        a.wait_for_output("already registered")
        self.wait_host(host_id, lambda h: h["state"] == "active", 20)
        self.assertEqual(a.stop(), 0)
        # And without any URL: the state alone.
        a.start("--hostname", "rerun")
        self.wait_host(host_id, lambda h: h["state"] == "active", 20)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(self.token(token["id"])["uses"], 1)
        self.assertEqual([h["id"] for h in self.hosts_named("rerun")], [host_id])

    def test_lost_state_on_the_same_machine_gets_the_same_host(self):
        token = self.create_token()
        a, host_id = self.register(token=token, hostname="lost-state")
        self.assertEqual(a.stop(), 0)
        old_key = a.state()["credential"]["accessKey"]
        os.unlink(a.state_file)
        a.start("--hostname", "lost-state", "--ca-checksum", self.checksum(), token["registrationUrl"])
        wait_for(lambda: os.path.exists(a.state_file), 20)
        self.assertEqual(a.state()["hostId"], host_id)
        self.assertNotEqual(a.state()["credential"]["accessKey"], old_key)
        self.wait_host(host_id, lambda h: h["state"] == "active", 20)
        self.assertEqual([h["id"] for h in self.hosts_named("lost-state")], [host_id])

    def test_state_of_another_server_is_refused(self):
        token = self.create_token()
        a, _ = self.register(token=token)
        self.assertEqual(a.stop(), 0)
        other = "https://127.0.0.2:%d/v1/scripts/%s" % (self.server.port, "y" * 40)
        code, out = a.run(other)
        self.assertEqual(code, 2, out)
        self.assertIn("belongs to " + self.server.url, out)

    def test_no_state_and_no_url(self):
        code, out = self.agent().run()
        self.assertEqual(code, 2, out)
        self.assertIn("no state in", out)


class StateFileTest(AgentTestCase):

    def registered_then_stopped(self):
        a, host_id = self.register()
        self.assertEqual(a.stop(), 0)
        self.wait_host(host_id, lambda h: h["state"] == "disconnected", 10)
        return a, host_id

    def assert_refused_silently(self, a, host_id, text):
        connects = self.connected_lines(int(host_id[2:]))
        seen = self.host(host_id)["lastSeen"]
        code, out = a.run()
        self.assertEqual(code, 2, out)
        self.assertIn(text, out)
        self.assertIn("state.json", out)
        # Nothing reached the server.
        self.assertEqual(self.connected_lines(int(host_id[2:])), connects)
        self.assertEqual(self.host(host_id)["lastSeen"], seen)

    def test_tampered_state_is_refused(self):
        a, host_id = self.registered_then_stopped()
        state = a.state()
        state["hostId"] = "1h999999"
        with open(a.state_file, "w", encoding="utf-8") as f:
            json.dump(state, f)
        self.assert_refused_silently(a, host_id, "checksum")

    def test_truncated_state_is_refused(self):
        a, host_id = self.registered_then_stopped()
        with open(a.state_file, "rb") as f:
            data = f.read()
        with open(a.state_file, "wb") as f:
            f.write(data[: len(data) // 2])
        self.assert_refused_silently(a, host_id, "not valid JSON")


class HostLifecycleTest(AgentTestCase):

    def test_copied_state_on_a_second_machine_is_refused(self):
        a, host_id = self.register(hostname="original")
        b = self.agent("clone", machine_id_file=os.path.join(self.tmp, "clone-machine-id"))
        os.makedirs(b.state_dir, exist_ok=True)
        shutil.copy(a.state_file, b.state_file)
        # The clone retries a 409 for 40 s (its own dead connection could hold
        # the identity for the server's 15 s liveness window), then gives up.
        code, out = b.run(timeout=90)
        self.assertEqual(code, 2, out)
        self.assertIn(CONFLICT, out)
        h = self.host(host_id)
        self.assertTrue(h.get("conflict"), h)
        self.assertEqual(h["state"], "active", "the first machine keeps its connection")
        self.assertTrue(a.running())
        self.assertEqual(len(self.hosts_named("original")), 1)

    def test_removed_host_stops_the_agent(self):
        a, host_id = self.register()
        self.api.ok("DELETE", "/v1/hosts/" + host_id)
        self.assertEqual(a.wait(), 2, a.output())
        self.assertIn("this host was removed", a.output())
        self.assertIn("register it again with a new command", a.output())
        code, out = a.run()  # the stored state is refused from now on
        self.assertEqual(code, 2, out)
        self.assertIn("this host was removed", out)

    def test_removing_the_project_stops_its_agents(self):
        project = self.api.ok("POST", "/v1/projects", json={"name": "gone-" + uuid.uuid4().hex[:6]}, status=201)
        token = self.api.ok("POST", project["links"]["registrationTokens"], json={}, status=201)
        token = self.api.wait_settled(token["links"]["self"])
        a, host_id = self.register(token=token)
        watcher = Subscriber(self.server)
        self.addCleanup(watcher.close)
        self.api.ok("DELETE", project["links"]["self"])
        watcher.wait_for_event(resource_change("host", host_id, state="removed"))
        self.assertEqual(a.wait(), 2, a.output())
        self.assertIn("this host was removed", a.output())
        self.assertEqual(self.api.request("GET", "/v1/hosts/" + host_id).status_code, 404)
        code, out = a.run()
        self.assertEqual(code, 2, out)
        self.assertIn("this host was removed", out)

    def test_deactivated_host_stops_the_agent(self):
        a, host_id = self.register()
        self.api.ok("POST", "/v1/hosts/" + host_id + "?action=deactivate")
        self.assertEqual(a.wait(), 2, a.output())
        self.assertIn("deactivated", a.output())
        code, out = a.run()
        self.assertEqual(code, 2, out)
        self.assertIn("deactivated", out)

    def test_a_quiet_agent_stays_connected_on_its_pings_alone(self):
        # Nothing to report for longer than the server's 15 s liveness window:
        # the agent's pings (every 5 s) must keep the one connection. This is
        # a watch over a fixed window, the only way to see that nothing happens.
        token = self.create_token()
        a = self.agent("quiet")
        a.start("--report-interval", "1h", "--ca-checksum", self.checksum(), "--hostname", "h-quiet",
                token["registrationUrl"])
        wait_for(lambda: os.path.exists(a.state_file), 20, message="state.json of the quiet agent")
        host_id = a.state()["hostId"]
        self.wait_host(host_id, lambda h: h["state"] == "active", 30, "host %s active" % host_id)
        self.assertEqual(self.connected_lines(int(host_id[2:])), 1)
        time.sleep(22)
        self.assertEqual(self.connected_lines(int(host_id[2:])), 1, self.server.log_tail(20))
        self.assertEqual(self.host(host_id)["state"], "active")
        self.assertTrue(a.running())

    def test_sigint_is_a_clean_stop(self):
        a, host_id = self.register()
        self.assertEqual(a.stop(signal.SIGINT), 0)
        self.wait_host(host_id, lambda h: h["state"] == "disconnected", 10)


class ServerRestartTest(AgentTestCase):

    def test_server_killed_and_restarted_on_the_same_port(self):
        a, host_id = self.register()
        port = self.server.port
        self.server.kill9()
        a.wait_for_output("lost the connection|retrying in", 30)
        self.server.fixed_port = port
        try:
            self.server.start()
        finally:
            self.server.fixed_port = None
        self.assertEqual(self.server.port, port)
        # Back without intervention (backoff up to 60 s, jittered).
        self.wait_host(host_id, lambda h: h["state"] == "active", 90, "active again after the restart")
        self.assertTrue(a.running())


class DockerTest(AgentTestCase):

    def containers(self, host_id):
        return {c["dockerId"]: c for c in
                self.api.ok("GET", "/v1/hosts/%s/containers?limit=1000" % host_id)["data"]}

    def wait_container(self, host_id, docker_id, pred, timeout, message):
        return wait_for(lambda: (lambda c: c if c is not None and pred(c) else None)(
            self.containers(host_id).get(docker_id)), timeout, 0.02, message)

    def test_container_changes_show_within_a_second(self):
        a, host_id = self.register()
        name = "c-" + uuid.uuid4().hex[:8]
        with Subscriber(self.server) as sub:
            cid = self.dockerd.run(BUSYBOX, "sleep", "300", name=name)
            t0 = time.monotonic()
            c = self.wait_container(host_id, cid, lambda c: c["state"] == "running", 1.0, "running within 1s")
            self.assertEqual(c["name"], name)
            self.assertEqual(c["image"], BUSYBOX)
            self.assertIn("sleep 300", c["command"])
            sub.wait_for_event(lambda m: resource_change("container", c["id"])(m), timeout=1.0)

            self.dockerd.docker("rename", name, name + "-renamed")
            self.wait_container(host_id, cid, lambda c: c["name"] == name + "-renamed", 1.0, "renamed within 1s")

            self.dockerd.docker("stop", "-t", "0", cid)
            self.wait_container(host_id, cid, lambda c: c["state"] == "exited", 1.0, "exited within 1s")

            self.dockerd.docker("rm", cid)
            wait_for(lambda: cid not in self.containers(host_id), 1.0, 0.02, "removed within 1s")
            sub.wait_for_event(lambda m: resource_change("container", c["id"], state="removed")(m), timeout=1.0)
        self.assertLess(time.monotonic() - t0, 30)

    def test_a_killed_container_shows_exited_on_a_quiet_host(self):
        # `docker kill` sends kill and die, and Docker may still list the
        # container as running right after the die; no later event follows.
        a, host_id = self.register()
        for _ in range(3):
            cid = self.dockerd.run(BUSYBOX, "sleep", "300")
            self.addCleanup(self.dockerd.docker, "rm", "-f", cid, check=False)
            self.wait_container(host_id, cid, lambda c: c["state"] == "running", 5.0, "running")
            self.dockerd.docker("kill", cid)
            self.wait_container(host_id, cid, lambda c: c["state"] == "exited", 1.5, "exited within 1.5s of a kill")

    def test_images_are_reported(self):
        a, host_id = self.register()
        images = self.api.ok("GET", "/v1/hosts/%s/images" % host_id)["data"]
        self.assertIn(BUSYBOX, [t for i in images for t in (i.get("tags") or [])])
        self.dockerd.docker("tag", BUSYBOX, "paddock-test/extra:1")
        wait_for(lambda: "paddock-test/extra:1" in [
            t for i in self.api.ok("GET", "/v1/hosts/%s/images" % host_id)["data"] for t in (i.get("tags") or [])],
            5, message="the new tag")
        self.dockerd.docker("rmi", "paddock-test/extra:1")
        wait_for(lambda: "paddock-test/extra:1" not in [
            t for i in self.api.ok("GET", "/v1/hosts/%s/images" % host_id)["data"] for t in (i.get("tags") or [])],
            5, message="the tag gone")


class DockerRestartTest(AgentTestCase):
    """Stops and starts a dockerd of its own (the class's stays up)."""

    def test_dockerd_stopped_and_started(self):
        own = PrivateDockerd()
        own.start()
        self.addCleanup(own.stop)
        own.make_busybox_image(BUSYBOX)
        keep = own.run(BUSYBOX, "sleep", "300", name="survivor")
        a, host_id = self.register(docker_host=own.host)
        self.assertIn(keep, DockerTest.containers(self, host_id))

        own.stop(remove_dir=False)
        h = self.wait_host(host_id, lambda h: h.get("dockerState") == "unreachable", 20, "dockerState unreachable")
        self.assertEqual(h["state"], "active", "the agent stays connected without Docker")
        # The server's picture of the containers is kept, not wiped.
        self.assertIn(keep, DockerTest.containers(self, host_id))

        own.start(own.dir)
        self.wait_host(host_id, lambda h: h.get("dockerState") == "ok", 40, "dockerState ok again")
        # Resynced: the container stopped with dockerd, and the server knows.
        wait_for(lambda: DockerTest.containers(self, host_id).get(keep, {}).get("state") == "exited", 10,
                 message="survivor exited")
        cid = own.run(BUSYBOX, "sleep", "300", name="after")
        wait_for(lambda: cid in DockerTest.containers(self, host_id), 5, message="events followed again")


if __name__ == "__main__":
    unittest.main()
