#!/usr/bin/python3
"""`paddock`, the CLI, against the real paddock-server on loopback.

The CLI is $PADDOCK_BIN_DIR/cli/paddock, run as a user would: configured
through PADDOCK_URL, PADDOCK_ACCESS_KEY, PADDOCK_SECRET_KEY and
PADDOCK_CA_CHECKSUM (or the flags), its output and exit code checked.

The stream commands (logs, exec, stats) need a host with a real agent and
Docker. They run when PADDOCK_TEST_DOCKER_HOST names a dockerd (e.g. one
started by tests/support/dockerd.py) and are skipped otherwise; once it is
set, anything missing or wrong on the way (agent, server stream endpoint,
CLI) is a failure, not a skip. Interactive cases run the CLI on a
pseudo-terminal. Run from this directory:

    PADDOCK_BIN_DIR=<build> PYTHONPATH=../support /usr/bin/python3 -m unittest -v test_cli
"""

import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unittest
import uuid

from paddock_harness import ServerProcess, wait_for

NO_RATE_LIMIT = ["--rate-limit", "0"]
CLI_TIMEOUT = 60
BUSYBOX = os.environ.get("PADDOCK_TEST_DOCKER_IMAGE", "paddock-test/busybox:latest")


def bin_dir():
    d = os.environ.get("PADDOCK_BIN_DIR")
    if not d:
        raise RuntimeError("PADDOCK_BIN_DIR must name the build directory")
    return d


def cli_binary():
    path = os.path.join(bin_dir(), "cli", "paddock")
    if not os.access(path, os.X_OK):
        raise RuntimeError("no executable paddock at " + path)
    return path


def agent_binary():
    path = os.path.join(bin_dir(), "agent", "paddock-agent")
    if not os.access(path, os.X_OK):
        raise AssertionError("PADDOCK_TEST_DOCKER_HOST is set but there is no paddock-agent at " + path)
    return path


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PADDOCK_")}
    env.pop("DOCKER_HOST", None)
    return env


def free_port():
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class CliMixin:
    """Runs the CLI against cls.server with the admin key and the CA checksum."""

    server = None

    def cli_env(self, auth=None, checksum=True, extra=None):
        access, secret = auth or self.server.admin
        env = clean_env()
        env.update({"PADDOCK_URL": self.server.url, "PADDOCK_ACCESS_KEY": access, "PADDOCK_SECRET_KEY": secret})
        if checksum:
            env["PADDOCK_CA_CHECKSUM"] = sha256_file(self.server.ca_file)
        env.update(extra or {})
        return env

    def paddock(self, *args, auth=None, checksum=True, env=None, input=None, timeout=CLI_TIMEOUT):
        """Runs the CLI to its end; returns CompletedProcess with text stdout/stderr."""
        return subprocess.run([cli_binary(), *args], env=env or self.cli_env(auth, checksum), input=input,
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args, **kw):
        r = self.paddock(*args, **kw)
        self.assertEqual(r.returncode, 0, "paddock %s: exit %d\nstdout: %s\nstderr: %s" %
                         (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def one_line_error(self, r, code=1):
        self.assertEqual(r.returncode, code, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, "expected one line on stderr, got: %r" % r.stderr)
        self.assertTrue(lines[0].startswith("error: "), lines[0])
        return lines[0]


class CliApiTest(CliMixin, unittest.TestCase):
    """The REST commands: one server for the class, no hosts."""

    @classmethod
    def setUpClass(cls):
        cls.server = ServerProcess(extra_args=NO_RATE_LIMIT)
        cls.server.__enter__()
        cls.addClassCleanup(cls.server.cleanup)
        cls.api = cls.server.session()

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result and len(result.failures) + len(result.errors) > before and self.server:
            sys.stderr.write("\n---- server log, last lines ----\n%s\n----\n" % self.server.log_tail(30))
        return outcome

    # -- tokens --------------------------------------------------------------

    def test_tokens_create_wait_prints_the_command_with_the_ca_checksum(self):
        r = self.ok("tokens", "create", "--wait")
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        command = lines[0]
        self.assertTrue(command.startswith("sudo docker run "), command)
        self.assertIn("-e PADDOCK_CA_CHECKSUM=" + sha256_file(self.server.ca_file), command)
        self.assertRegex(command, r" https://127\.0\.0\.1:%d/v1/scripts/[A-Za-z0-9]+$" % self.server.port)
        # The token it made is active and carries the same command.
        tokens = self.api.ok("GET", "/v1/registrationTokens?limit=1000")["data"]
        self.assertIn(command, [t.get("command") for t in tokens])

    def test_tokens_create_without_wait_prints_the_new_resource(self):
        r = self.ok("tokens", "create", "--max-uses", "3", "--ttl", "3600", "--name", "cli-no-wait", "-o", "json")
        token = json.loads(r.stdout)
        self.assertEqual(token["type"], "registrationToken")
        self.assertEqual(token["maxUses"], 3)
        self.assertEqual(token["name"], "cli-no-wait")
        self.assertIn(token["state"], ("registering", "active"))
        table = self.ok("tokens", "create", "--name", "cli-table")
        self.assertRegex(table.stdout.splitlines()[0], r"^ID\s+NAME\s+STATE\s+USES\s+MAX USES\s+EXPIRES\s+CREATED$")
        self.assertIn("cli-table", table.stdout)

    def test_tokens_create_wait_json_is_the_active_token(self):
        r = self.ok("tokens", "create", "--wait", "-o", "json")
        token = json.loads(r.stdout)
        self.assertEqual(token["state"], "active")
        self.assertEqual(token["transitioning"], "no")
        self.assertIn(sha256_file(self.server.ca_file), token["command"])

    def test_tokens_ls_lists_them_and_json_parses(self):
        project = self.api.ok("GET", "/v1/projects?name=Default")["data"][0]
        made = self.api.ok("POST", project["links"]["registrationTokens"], json={"name": "cli-ls"}, status=201)
        r = self.ok("tokens", "ls")
        header = r.stdout.splitlines()[0]
        self.assertRegex(header, r"^ID\s+NAME\s+STATE")
        self.assertIn(made["id"], r.stdout)
        self.assertIn("cli-ls", r.stdout)
        listed = json.loads(self.ok("tokens", "ls", "-o", "json").stdout)
        self.assertIsInstance(listed, list)
        self.assertIn(made["id"], [t["id"] for t in listed])
        # The project may be named instead of given by id.
        scoped = json.loads(self.ok("tokens", "ls", "--project", "Default", "-o", "json").stdout)
        self.assertIn(made["id"], [t["id"] for t in scoped])

    def test_tokens_create_with_a_project_key_needs_no_project(self):
        project = self.api.ok("GET", "/v1/projects?name=Default")["data"][0]
        key = self.api.ok("POST", "/v1/projects/%s/apiKeys" % project["id"], json={}, status=201)
        r = self.ok("tokens", "create", "--wait", auth=(key["publicValue"], key["secretValue"]))
        self.assertIn("/v1/scripts/", r.stdout)

    # -- hosts and containers -----------------------------------------------

    def test_hosts_with_no_hosts(self):
        r = self.ok("hosts")
        self.assertEqual(r.stdout.splitlines(),
                         ["ID   NAME   STATE   AGENT IP   DOCKER   CPU%   MEMORY"])
        self.assertEqual(json.loads(self.ok("hosts", "-o", "json").stdout), [])
        self.assertEqual(json.loads(self.ok("-o", "json", "hosts", "ls").stdout), [])

    def test_containers_with_no_hosts(self):
        r = self.ok("containers")
        self.assertRegex(r.stdout.splitlines()[0], r"^ID\s+NAME\s+HOST\s+IMAGE\s+STATE\s+STATUS\s+DOCKER ID$")
        self.assertEqual(len(r.stdout.splitlines()), 1)
        self.assertEqual(json.loads(self.ok("containers", "--state", "running", "-o", "json").stdout), [])

    def test_unknown_host_is_one_line_exit_1(self):
        line = self.one_line_error(self.paddock("hosts", "rm", "1h999"))
        self.assertEqual(line, "error: no host matches '1h999'")
        line = self.one_line_error(self.paddock("hosts", "deactivate", "nosuchhost"))
        self.assertEqual(line, "error: no host matches 'nosuchhost'")

    def test_unknown_container_is_one_line_exit_1(self):
        line = self.one_line_error(self.paddock("logs", "nosuchcontainer"))
        self.assertEqual(line, "error: no container matches 'nosuchcontainer'")
        line = self.one_line_error(self.paddock("exec", "1c12345", "--", "true"))
        self.assertEqual(line, "error: no container matches '1c12345'")

    def test_422_shows_message_and_field(self):
        line = self.one_line_error(self.paddock("tokens", "create", "--ttl", "999999999999"))
        self.assertIn("422", line)
        self.assertIn("field ttl", line)

    def test_unknown_project_is_an_error(self):
        line = self.one_line_error(self.paddock("hosts", "--project", "no-such-project"))
        self.assertEqual(line, "error: no project matches 'no-such-project'")

    # -- configuration, trust and credentials -------------------------------

    def test_bad_credentials_are_one_line_exit_1(self):
        access, _ = self.server.admin
        line = self.one_line_error(self.paddock("hosts", auth=(access, "wrong-secret")))
        self.assertIn("401", line)
        self.assertIn("PADDOCK_SECRET_KEY", line)

    def test_wrong_ca_checksum_is_refused_before_any_credential_is_sent(self):
        env = self.cli_env(extra={"PADDOCK_CA_CHECKSUM": "0" * 64})
        line = self.one_line_error(self.paddock("hosts", env=env))
        self.assertIn("does not match the CA checksum", line)
        self.assertIn(sha256_file(self.server.ca_file), line)  # what the server has, for the operator

    def test_ca_file_and_flags_instead_of_the_environment(self):
        access, secret = self.server.admin
        r = subprocess.run([cli_binary(), "hosts", "--url", self.server.url, "--access-key", access,
                            "--secret-key", secret, "--ca-file", self.server.ca_file, "-o", "json"],
                           env=clean_env(), capture_output=True, text=True, timeout=CLI_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), [])
        r = subprocess.run([cli_binary(), "hosts", "--url", self.server.url, "--access-key", access,
                            "--secret-key", secret, "--ca-checksum", sha256_file(self.server.ca_file)],
                           env=clean_env(), capture_output=True, text=True, timeout=CLI_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_without_a_pin_the_private_ca_is_not_trusted(self):
        line = self.one_line_error(self.paddock("hosts", checksum=False))
        self.assertIn("certificate verify failed", line)

    def test_unreachable_server_is_one_line_exit_1(self):
        env = self.cli_env(extra={"PADDOCK_URL": "https://127.0.0.1:%d" % free_port()})
        line = self.one_line_error(self.paddock("hosts", env=env))
        self.assertIn("cannot connect to https://127.0.0.1:", line)

    def test_usage_errors_exit_2_and_help_exits_0(self):
        for args in (["logs"], ["-o", "yaml", "hosts"], ["hosts", "rm"], ["nosuchcommand"], ["exec", "web"],
                     ["logs", "--tail", "many", "web"]):
            r = self.paddock(*args)
            self.assertEqual(r.returncode, 2, "%s: %s" % (args, r.stderr))
            self.assertTrue(r.stderr.startswith("error: "), r.stderr)
        r = self.paddock("hosts", env=clean_env())
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "error: no server URL: set PADDOCK_URL or pass --url\n")
        for args in (["--help"], ["hosts", "--help"], ["tokens", "create", "--help"], ["logs", "--help"],
                     ["exec", "--help"], ["stats", "--help"], ["containers", "--help"]):
            r = self.paddock(*args, env=clean_env())
            self.assertEqual(r.returncode, 0, "%s: %s" % (args, r.stderr))
            self.assertIn("Usage", r.stdout)
            self.assertIn("--url", r.stdout)


# -- streams: a real agent and Docker -------------------------------------------


class PtyProcess:
    """The CLI on a pseudo-terminal: read its output, type into it, signal it."""

    def __init__(self, args, env, cols=100, rows=30):
        self.master, self.slave = pty.openpty()
        self.set_size(cols, rows)
        self.initial_attrs = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(args, stdin=self.slave, stdout=self.slave, stderr=self.slave, env=env,
                                     start_new_session=True)
        self.output = b""

    def set_size(self, cols, rows):
        import fcntl
        import struct
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def attrs(self):
        return termios.tcgetattr(self.slave)

    def raw(self):
        return not (self.attrs()[3] & termios.ICANON)

    def read_until(self, pattern, timeout=20.0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while not rx.search(self.output):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r on the terminal within %.0fs; got %r" % (pattern, timeout,
                                                                                   self.output[-2000:]))
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:  # EIO: the other side is gone
                    time.sleep(0.05)
        return rx.search(self.output)

    def write(self, data):
        os.write(self.master, data)

    def wait(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError("paddock still running after %.0fs; output %r" % (timeout, self.output[-2000:]))
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


@unittest.skipUnless(os.environ.get("PADDOCK_TEST_DOCKER_HOST"),
                     "PADDOCK_TEST_DOCKER_HOST is not set: no dockerd for the stream commands")
class CliStreamTest(CliMixin, unittest.TestCase):
    """logs, exec and stats through a registered agent on a private dockerd."""

    @classmethod
    def docker(cls, *args, input=None, timeout=120):
        env = clean_env()
        env["DOCKER_CLI_HINTS"] = "false"
        r = subprocess.run(["docker", "-H", cls.docker_host, *args], input=input, capture_output=True,
                           env=env, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("docker %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                            r.stderr.decode("utf-8", "replace")))
        return r.stdout.decode("utf-8", "replace").strip()

    @classmethod
    def setUpClass(cls):
        cls.docker_host = os.environ["PADDOCK_TEST_DOCKER_HOST"]
        cls.tmp = tempfile.mkdtemp(prefix="pdk-cli-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.server = ServerProcess(extra_args=NO_RATE_LIMIT)
        cls.server.__enter__()
        cls.addClassCleanup(cls.server.cleanup)
        cls.api = cls.server.session()

        # An agent on the private dockerd, registered with a token from the CLI itself.
        cls.hostname = "cli-host-" + uuid.uuid4().hex[:8]
        env = clean_env()
        env["PADDOCK_URL"] = cls.server.url
        env["PADDOCK_ACCESS_KEY"], env["PADDOCK_SECRET_KEY"] = cls.server.admin
        env["PADDOCK_CA_CHECKSUM"] = sha256_file(cls.server.ca_file)
        r = subprocess.run([cli_binary(), "tokens", "create", "--wait", "-o", "json"], env=env,
                           capture_output=True, text=True, timeout=CLI_TIMEOUT)
        assert r.returncode == 0, r.stderr
        token = json.loads(r.stdout)
        agent_env = clean_env()
        agent_env.update({"DOCKER_HOST": cls.docker_host,
                          "PADDOCK_MACHINE_ID_FILE": os.path.join(cls.tmp, "machine-id"),
                          "PADDOCK_STATE_DIR": os.path.join(cls.tmp, "state"),
                          "PADDOCK_LOG_LEVEL": "debug"})
        cls.agent_log = open(os.path.join(cls.tmp, "agent.log"), "wb")
        cls.addClassCleanup(cls.agent_log.close)
        cls.agent = subprocess.Popen([agent_binary(), "--report-interval", "1s", "--ca-checksum",
                                      sha256_file(cls.server.ca_file), "--hostname", cls.hostname,
                                      token["registrationUrl"]],
                                     stdin=subprocess.DEVNULL, stdout=cls.agent_log, stderr=subprocess.STDOUT,
                                     env=agent_env, start_new_session=True)
        cls.addClassCleanup(cls.stop_agent)

        def active_host():
            hosts = cls.api.ok("GET", "/v1/hosts?name=" + cls.hostname)["data"]
            return hosts[0] if hosts and hosts[0]["state"] == "active" else None

        cls.host = wait_for(active_host, 60, message="host %s active" % cls.hostname)

        cls.name = "cli-web-" + uuid.uuid4().hex[:8]
        script = ("echo hello-out; echo hello-err >&2; "
                  "trap 'exit 0' TERM; while true; do sleep 1; done")
        cls.docker_id = cls.docker("run", "-d", "--network", "none", "--name", cls.name, BUSYBOX,
                                   "sh", "-c", script)
        cls.addClassCleanup(cls.docker, "rm", "-f", cls.docker_id)

        def listed():
            found = cls.api.ok("GET", "/v1/containers?name=" + cls.name)["data"]
            return found[0] if found and found[0]["state"] == "running" else None

        cls.container = wait_for(listed, 30, message="container %s in the API" % cls.name)

    @classmethod
    def stop_agent(cls):
        if cls.agent.poll() is None:
            cls.agent.send_signal(signal.SIGTERM)
            try:
                cls.agent.wait(20)
            except subprocess.TimeoutExpired:
                cls.agent.kill()
                cls.agent.wait()

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            try:
                with open(os.path.join(self.tmp, "agent.log"), encoding="utf-8", errors="replace") as f:
                    sys.stderr.write("\n---- agent log, last lines ----\n%s\n" % "\n".join(f.read().splitlines()[-40:]))
            except OSError:
                pass
            if self.server:
                sys.stderr.write("\n---- server log, last lines ----\n%s\n----\n" % self.server.log_tail(40))
        return outcome

    def pty_cli(self, *args, **kw):
        p = PtyProcess([cli_binary(), *args], self.cli_env(), **kw)
        self.addCleanup(p.close)
        return p

    # -- names -----------------------------------------------------------------

    def test_names_across_hosts(self):
        # A second host on the same dockerd sees the same containers: names clash.
        token = json.loads(self.ok("tokens", "create", "--wait", "-o", "json").stdout)
        state = os.path.join(self.tmp, "state-second")
        env = clean_env()
        env.update({"DOCKER_HOST": self.docker_host, "PADDOCK_MACHINE_ID_FILE": os.path.join(self.tmp, "machine-2"),
                    "PADDOCK_STATE_DIR": state})
        second = "cli-second-" + uuid.uuid4().hex[:8]
        agent = subprocess.Popen([agent_binary(), "--report-interval", "1s", "--ca-checksum",
                                  sha256_file(self.server.ca_file), "--hostname", second, token["registrationUrl"]],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=env, start_new_session=True)

        def stop():
            agent.kill()
            agent.wait(10)
            for h in self.api.ok("GET", "/v1/hosts?name=" + second)["data"]:
                self.api.delete(h["links"]["self"])

        self.addCleanup(stop)
        wait_for(lambda: len(self.api.ok("GET", "/v1/containers?name=" + self.name)["data"]) == 2, 30,
                 message="the container seen from both hosts")
        line = self.one_line_error(self.paddock("logs", self.name))
        self.assertEqual(line, "error: '%s' matches 2 containers on hosts %s, %s; use --host or an id" %
                         (self.name, self.hostname, second))
        line = self.one_line_error(self.paddock("exec", self.docker_id[:10], "--", "true"))
        self.assertIn("matches 2 containers", line)
        rows = [line.split() for line in self.ok("containers", "--host", second).stdout.splitlines()[1:]]
        self.assertIn(self.name, [r[1] for r in rows])
        self.assertEqual({r[2] for r in rows}, {second})
        # Removing the second host by name settles it.
        removed = json.loads(self.ok("hosts", "rm", second, "-o", "json").stdout)
        self.assertEqual(removed["state"], "removed")
        wait_for(lambda: len(self.api.ok("GET", "/v1/containers?name=" + self.name)["data"]) == 1, 30,
                 message="one container again")

    # -- logs ------------------------------------------------------------------

    def test_logs_split_stdout_and_stderr(self):
        # By name, by Paddock id and by a Docker id prefix: the same container.
        for ref in (self.name, self.container["id"], self.docker_id[:12]):
            r = self.ok("logs", ref)
            self.assertEqual(r.stdout, "hello-out\n", ref)
            self.assertEqual(r.stderr, "hello-err\n", ref)

    def test_logs_timestamps_and_tail(self):
        r = self.ok("logs", "-t", "--tail", "1", self.name)
        lines = (r.stdout + r.stderr).splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z hello-(out|err)$")

    def test_logs_follow_ends_on_ctrl_c_with_the_terminal_intact(self):
        p = self.pty_cli("logs", "-f", self.name)
        p.read_until(rb"hello-out")
        before = p.attrs()
        p.proc.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(), 128 + signal.SIGINT)
        self.assertEqual(p.attrs(), before)

    def test_logs_of_a_stopped_container_end_on_their_own(self):
        name = "cli-short-" + uuid.uuid4().hex[:8]
        cid = self.docker("run", "-d", "--network", "none", "--name", name, BUSYBOX, "sh", "-c", "echo bye")
        self.addCleanup(self.docker, "rm", "-f", cid)
        wait_for(lambda: self.api.ok("GET", "/v1/containers?name=" + name)["data"], 30, message=name)
        r = self.ok("logs", "-f", name, timeout=30)
        self.assertEqual(r.stdout, "bye\n")

    # -- exec ------------------------------------------------------------------

    def test_exec_returns_the_remote_exit_code(self):
        r = self.paddock("exec", self.name, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, "out\n")
        self.assertEqual(r.stderr, "err\n")
        self.assertEqual(self.ok("exec", self.name, "true").returncode, 0)

    def test_exec_forwards_stdin(self):
        r = self.paddock("exec", "-i", self.name, "--", "head", "-n", "1", input="line-one\nline-two\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "line-one\n")

    def test_exec_tty_in_a_terminal(self):
        # A script rather than an interactive shell: busybox's line editing
        # asks the terminal for the cursor position, which a pty never answers.
        # Each line typed prints the size the container's terminal has then
        # (the first size may land just after the process starts).
        script = "echo $((6*7)); while read line; do [ \"$line\" = done ] && exit 5; stty size; done"
        p = self.pty_cli("exec", "-it", self.name, "sh", "-c", script, cols=91, rows=27)
        before = p.initial_attrs
        wait_for(p.raw, 20, message="raw mode")
        p.read_until(rb"\b42\b")

        def shows(size):
            def check():
                p.write(b"size\r")
                try:
                    return p.read_until(size, timeout=1)
                except AssertionError:
                    return None
            return check

        wait_for(shows(rb"27 91"), 20, message="the size sent at the start")
        p.set_size(120, 40)
        os.killpg(p.proc.pid, signal.SIGWINCH)
        wait_for(shows(rb"40 120"), 20, message="the new size after SIGWINCH")
        p.write(b"done\r")
        self.assertEqual(p.wait(), 5)
        self.assertEqual(p.attrs(), before, "the terminal mode is restored")

    def test_exec_restores_the_terminal_on_sigterm(self):
        p = self.pty_cli("exec", "-it", self.name, "sh")
        before = p.initial_attrs
        wait_for(p.raw, 20, message="raw mode")
        p.proc.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(), 128 + signal.SIGTERM)
        self.assertEqual(p.attrs(), before)

    def test_exec_of_a_missing_command_fails_clearly(self):
        r = self.paddock("exec", self.name, "--", "/no/such/binary")
        self.assertNotEqual(r.returncode, 0)
        # Docker's own exit codes (126/127) or a message naming the problem;
        # never a broken stream.
        self.assertTrue(r.returncode in (126, 127) or re.search(r"(?i)no such file|not found", r.stderr),
                        "exit %d, stderr %r" % (r.returncode, r.stderr))
        self.assertNotIn("stream broke", r.stderr)
        self.assertNotIn("cannot connect", r.stderr)

    # -- stats -----------------------------------------------------------------

    def test_stats_no_stream(self):
        samples = json.loads(self.ok("stats", "--no-stream", "-o", "json", self.name).stdout)
        self.assertEqual(len(samples), 1)
        s = samples[0]
        self.assertEqual(s["id"], self.container["id"])
        for field in ("cpuPercent", "memoryUsage", "memoryLimit", "networkRx", "networkTx", "blockRead",
                      "blockWrite", "pids"):
            self.assertIn(field, s)
        table = self.ok("stats", "--no-stream", self.name).stdout.splitlines()
        self.assertRegex(table[0], r"^ID\s+NAME\s+HOST\s+CPU %\s+MEM USAGE / LIMIT\s+MEM %\s+NET I/O\s+BLOCK I/O\s+PIDS$")
        self.assertEqual(len(table), 2)
        self.assertIn(self.name, table[1])
        self.assertIn(self.hostname, table[1])

    def test_stats_live_redraws_on_a_terminal(self):
        p = self.pty_cli("stats", self.name)
        p.read_until(rb"\x1b\[2J\x1b\[H")
        p.read_until(re.escape(self.name.encode()) + rb".*%")
        p.proc.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(), 128 + signal.SIGINT)


if __name__ == "__main__":
    unittest.main()
