#!/usr/bin/python3
"""Streams end to end (streams.md): logs, exec and stats of real containers
through the real paddock-server and paddock-agent.

    user (Python websocket) ──wss /v1/stream──▶ server ◀──wss /v1/tunnel── agent ──▶ private dockerd

The user side is Python's own `websocket` client, sharing no code with the
server, the agent or the CLI. Docker is a private dockerd
(tests/support/dockerd.py). Nothing sleeps to synchronise: waits poll a
condition, or read the stream, with a timeout. Run from this directory:

    PADDOCK_BIN_DIR=<build> PYTHONPATH=../support /usr/bin/python3 -m unittest -v test_streams
"""

import base64
import calendar
import json
import os
import re
import shutil
import ssl
import sys
import tempfile
import threading
import time
import unittest
import uuid

import websocket

import test_agent as agent_support
from dockerd import PrivateDockerd
from paddock_harness import ServerProcess, Subscriber, wait_for

BUSYBOX = agent_support.BUSYBOX
STDIN, STDOUT, STDERR, STATUS, RESIZE = 0, 1, 2, 3, 4
READ_TIMEOUT = 60.0


# -- the user's side of a stream ------------------------------------------------

class Stream:
    """One /v1/stream WebSocket: send on a channel, read messages until the close."""

    def __init__(self, server, access, timeout=READ_TIMEOUT, token=None, header=True):
        self.url = access["url"]
        token = access["token"] if token is None else token
        headers = ["Authorization: Bearer " + token] if header else []
        self.ws = websocket.create_connection(
            self.url if header else self.url + "?token=" + token, header=headers, timeout=timeout,
            sslopt={"ca_certs": server.ca_file, "cert_reqs": ssl.CERT_REQUIRED}, skip_utf8_validation=True)
        self.close_code = None
        self.status = None

    def send(self, channel, payload=b""):
        if isinstance(payload, str):
            payload = payload.encode()
        self.ws.send_binary(bytes([channel]) + payload)

    def resize(self, width, height):
        self.send(RESIZE, json.dumps({"width": width, "height": height}))

    def recv(self):
        """("text", str), ("bin", channel, bytes), or ("close", code)."""
        opcode, data = self.ws.recv_data(control_frame=False)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            self.ws.shutdown()  # the close was answered: nothing more to read or send
            return ("close", self.close_code)
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return ("text", data.decode("utf-8"))
        message = ("bin", data[0], bytes(data[1:])) if data else ("bin", None, b"")
        if message[1] == STATUS:
            self.status = json.loads(message[2])
        return message

    def collect(self, until=None):
        """Reads until the close (or until(message) is true); returns the messages."""
        out = []
        while True:
            m = self.recv()
            if m[0] == "close":
                return out
            out.append(m)
            if until and until(m):
                return out

    def output(self, messages, channel=STDOUT):
        return b"".join(m[2] for m in messages if m[0] == "bin" and m[1] == channel)

    def read_until(self, pattern, channel=STDOUT, timeout=READ_TIMEOUT):
        """Reads until the output on `channel` since this call matches the regex; returns that output."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        seen = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv()
            if m[0] == "close":
                raise AssertionError("closed (%s) before /%s/; got %r" % (m[1], pattern, seen[-2000:]))
            if m[0] == "bin" and m[1] == channel:
                seen += m[2]
                if rx.search(seen):
                    return seen
        raise AssertionError("no /%s/ within %.0fs; got %r" % (pattern, timeout, seen[-2000:]))

    def close(self):
        try:
            self.ws.close(timeout=2)
        except Exception:
            pass


# The server's quota of open streams and subscriptions per account, in these
# tests: above the 50 sessions of the concurrency test.
WEBSOCKETS_PER_ACCOUNT = 64


def refusal(server, access=None, token=None, header=True):
    """The HTTP status of a /v1/stream upgrade that must be refused."""
    try:
        s = Stream(server, access or {"url": "wss://127.0.0.1:%d/v1/stream" % server.port, "token": ""},
                   timeout=15, token=token, header=header)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    s.close()
    raise AssertionError("the upgrade was accepted")


def agent_rss(agent):
    """Resident memory of an agent process, in bytes."""
    with open("/proc/%d/status" % agent.proc.pid, encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims_of(token):
    return json.loads(b64url_decode(token.split(".")[1]))


def server_sign(server, claims):
    """A token signed with the server's own current key (to reach the agent's checks)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    keys = os.path.join(server.data_dir, "jwt-keys")
    with open(os.path.join(keys, "current"), encoding="utf-8") as f:
        kid = f.read().strip()
    with open(os.path.join(keys, kid + ".pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    header = b64url(json.dumps({"alg": "ES256", "typ": "JWT", "kid": kid}).encode())
    payload = b64url(json.dumps(claims).encode())
    der = key.sign((header + "." + payload).encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return header + "." + payload + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


# -- the test case ------------------------------------------------------------------

class StreamTestCase(unittest.TestCase):
    """One dockerd, one server and one registered agent for the whole class."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pdk-streams-")
        cls.addClassCleanup(lambda: os.environ.get("PADDOCK_KEEP_TMP") or shutil.rmtree(cls.tmp, True))
        cls.dockerd = PrivateDockerd()
        # A name of letters and digits: dockerd.py derives a containerd
        # namespace from it, which "_" next to "-" makes invalid.
        cls.dockerd.start("/tmp/pdk-s" + uuid.uuid4().hex[:10])
        cls.addClassCleanup(cls.dockerd.stop)
        cls.dockerd.make_busybox_image(BUSYBOX)
        cls.server = ServerProcess(extra_args=agent_support.NO_RATE_LIMIT +
                                   ["--max-websockets-per-account", str(WEBSOCKETS_PER_ACCOUNT)])
        cls.server.__enter__()
        cls.addClassCleanup(cls.server.cleanup)
        cls.api = cls.server.session()
        cls.project = cls.api.ok("GET", "/v1/projects?name=Default")["data"][0]
        cls.agents = []
        cls.addClassCleanup(cls.keep_agent_logs)
        cls.agent, cls.host_id = cls.register_agent(cls.server, "main")

    @classmethod
    def keep_agent_logs(cls):
        if os.environ.get("PADDOCK_KEEP_TMP"):
            for a in cls.agents:
                with open(os.path.join(a.dir, "agent.log"), "w", encoding="utf-8") as f:
                    f.write(a.output())

    @classmethod
    def register_agent(cls, server, name, docker_host=None):
        api = server.session()
        project = api.ok("GET", "/v1/projects?name=Default")["data"][0]
        token = api.ok("POST", project["links"]["registrationTokens"], json={}, status=201)
        token = api.wait_settled(token["links"]["self"])
        a = agent_support.AgentProcess(cls.tmp, name + "-" + uuid.uuid4().hex[:6], docker_host or cls.dockerd.host)
        cls.agents.append(a)
        cls.addClassCleanup(a.kill)
        a.start("--ca-checksum", agent_support.sha256_file(server.ca_file), "--hostname", "h-" + name,
                token["registrationUrl"])
        wait_for(lambda: os.path.exists(a.state_file), 30, message="state.json of " + name)
        host_id = a.state()["hostId"]
        wait_for(lambda: api.ok("GET", "/v1/hosts/" + host_id).get("dockerState") == "ok", 30,
                 message="host %s active with Docker" % host_id)
        return a, host_id

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            for a in self.agents:
                sys.stderr.write("\n---- agent %s, last lines ----\n%s\n" % (a.dir, a.output()[-5000:]))
            sys.stderr.write("\n---- server log, last lines ----\n%s\n----\n" % self.server.log_tail(40))
        return outcome

    # -- helpers ---------------------------------------------------------------------

    def start_container(self, *cmd, tty=False, host_id=None, api=None):
        """Runs a busybox container; returns (docker id, the API's container)."""
        extra = ["-t"] if tty else []
        cid = self.dockerd.run(BUSYBOX, *cmd, extra=extra)
        self.addCleanup(self.dockerd.docker, "rm", "-f", cid, check=False)
        return cid, self.wait_container(cid, host_id=host_id, api=api)

    def wait_container(self, cid, host_id=None, api=None, pred=lambda c: True):
        api = api or self.api

        def find():
            page = api.ok("GET", "/v1/hosts/%s/containers?dockerId=%s" % (host_id or self.host_id, cid))
            return next((c for c in page["data"] if c["dockerId"] == cid and pred(c)), None)

        return wait_for(find, 20, message="container %s on the server" % cid[:12])

    def access(self, container, action, api=None, **input):
        api = api or self.api
        answer = api.ok("POST", container["links"]["self"] + "?action=" + action, json=input)
        self.assertEqual(answer["type"], "hostAccess")
        return answer

    def open(self, container, action, **input):
        s = Stream(self.server, self.access(container, action, **input))
        self.addCleanup(s.close)
        return s

    def logs(self, container, **input):
        s = self.open(container, "logs", **input)
        messages = s.collect()
        self.assertEqual(s.status, {"status": "Success"}, messages[-3:])
        self.assertEqual(s.close_code, 1000)
        return s, messages

    def wait_exited(self, cid):
        wait_for(lambda: self.dockerd.docker("inspect", "-f", "{{.State.Running}}", cid).strip() == "false", 30,
                 message="container %s exited" % cid[:12])

    def agent_stream_lines(self, agent=None):
        return len(re.findall(r"stream \S+: \w+( of container \w+)? opened", (agent or self.agent).output()))


class LogsTest(StreamTestCase):

    def test_hundred_thousand_lines_arrive_complete_and_in_order(self):
        cid, c = self.start_container("seq", "1", "100000")
        self.wait_exited(cid)
        s, messages = self.logs(c, follow=False, tail="all")
        out = s.output(messages)
        expected = "".join("%d\n" % i for i in range(1, 100001)).encode()
        self.assertEqual(len(out), len(expected))
        self.assertTrue(out == expected, "lines missing or out of order")
        self.assertEqual(s.output(messages, STDERR), b"")
        # One message per Docker frame: a log line each.
        self.assertEqual(len([m for m in messages if m[0] == "bin" and m[1] == STDOUT]), 100000)

    def test_every_stream_ends_with_the_servers_tls_close_notify(self):
        # A client that shuts TLS down cleanly must get the server's
        # close_notify after the close handshake, or it sees a truncated
        # stream. (The server once lost it when the user's answer was read
        # before the write of the server's close frame had completed, a race
        # this client is too slow to hit every time.)
        cid, c = self.start_container("seq", "1", "2000")
        self.wait_exited(cid)
        for i in range(40):
            s = Stream(self.server, self.access(c, "logs", follow=False, tail="all"))
            try:
                lines = 0
                while True:
                    opcode, data = s.ws.recv_data(control_frame=False)
                    if opcode == websocket.ABNF.OPCODE_CLOSE:
                        break  # websocket-client has answered it
                    lines += data[:1] == bytes([STDOUT])
                self.assertEqual(lines, 2000)
                try:
                    raw = s.ws.sock.unwrap()  # our close_notify, then the server's
                except ssl.SSLError as e:
                    self.fail("stream %d: no TLS close_notify from the server: %s" % (i, e))
                raw.close()
            finally:
                s.ws.shutdown()

    def test_stdout_and_stderr_channels_and_their_switches(self):
        cid, c = self.start_container("sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2")
        self.wait_exited(cid)
        s, m = self.logs(c, follow=False, tail="all")
        self.assertEqual(s.output(m, STDOUT), b"out1\nout2\n")
        self.assertEqual(s.output(m, STDERR), b"err1\nerr2\n")
        s, m = self.logs(c, follow=False, tail="all", stdout=False)
        self.assertEqual(s.output(m, STDOUT), b"")
        self.assertEqual(s.output(m, STDERR), b"err1\nerr2\n")
        s, m = self.logs(c, follow=False, tail="all", stderr=False)
        self.assertEqual(s.output(m, STDOUT), b"out1\nout2\n")
        self.assertEqual(s.output(m, STDERR), b"")

    def test_tail_since_until_and_timestamps(self):
        cid, c = self.start_container("sh", "-c", "seq 1 10; sleep 2; echo late")
        self.wait_exited(cid)
        s, m = self.logs(c, follow=False, tail=3)
        self.assertEqual(s.output(m), b"9\n10\nlate\n")
        s, m = self.logs(c, follow=False, tail="all")
        self.assertEqual(s.output(m).count(b"\n"), 11)
        s, m = self.logs(c, follow=False, tail="all", timestamps=True)
        lines = s.output(m).decode().splitlines()
        self.assertEqual(len(lines), 11)
        stamps = []
        for line in lines:
            stamp, _, text = line.partition(" ")
            self.assertRegex(stamp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
            stamps.append(stamp)
        self.assertEqual(lines[-1].split(" ", 1)[1], "late")
        # A cut in whole seconds between "10" and "late" (two seconds apart).
        ten = calendar.timegm(time.strptime(stamps[-2][:19], "%Y-%m-%dT%H:%M:%S"))
        cut = int(ten) + 1
        s, m = self.logs(c, follow=False, tail="all", since=cut)
        self.assertEqual(s.output(m), b"late\n")
        s, m = self.logs(c, follow=False, tail="all", until=cut)
        self.assertEqual(s.output(m), b"".join(b"%d\n" % i for i in range(1, 11)))
        rfc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cut))
        s, m = self.logs(c, follow=False, tail="all", since=rfc)
        self.assertEqual(s.output(m), b"late\n")

    def test_follow_streams_new_lines_and_ends_when_the_container_exits(self):
        cid, c = self.start_container("sh", "-c", "echo first; sleep 600; echo second")
        s = self.open(c, "logs", follow=True, tail="all")
        self.assertIn(b"first\n", s.read_until("first\n"))
        self.dockerd.docker("kill", cid)
        rest = s.collect()
        self.assertEqual(s.status, {"status": "Success"})
        self.assertEqual(s.close_code, 1000)
        self.assertNotIn(b"second", s.output(rest))

    def test_tty_container_logs_are_raw_on_channel_1(self):
        cid, c = self.start_container("sh", "-c", "echo tty-out; echo tty-err >&2", tty=True)
        self.wait_exited(cid)
        s, m = self.logs(c, follow=False, tail="all")
        out = s.output(m)
        self.assertIn(b"tty-out", out)
        self.assertIn(b"tty-err", out)
        self.assertEqual(s.output(m, STDERR), b"")

    def test_removed_container_is_not_found(self):
        cid, c = self.start_container("true")
        self.wait_exited(cid)
        access = self.access(c, "logs", follow=False)
        self.dockerd.docker("rm", cid)
        s = Stream(self.server, access)
        s.collect()
        self.assertEqual(s.status, {"status": "Failure", "message": "container not found"})
        self.assertEqual(s.close_code, 1000)

    def test_logs_without_since_or_until_regression_const_json_lookup(self):
        cid, c = self.start_container("sh", "-c", "echo plain")
        self.wait_exited(cid)
        answer = self.api.ok("POST", c["links"]["self"] + "?action=logs", json={"follow": False})
        s = Stream(self.server, answer)
        messages = s.collect()
        self.assertEqual(s.output(messages), b"plain\n")

    def test_input_on_a_logs_stream_is_ignored(self):
        cid, c = self.start_container("sh", "-c", "echo ready; sleep 600")
        s = self.open(c, "logs", follow=True, tail="all")
        s.read_until("ready\n")
        s.send(STDIN, b"ignored\n")
        s.resize(80, 24)
        s.send(9, b"junk")
        s.ws.send("text is ignored too")
        s.ws.send_binary(b"")
        self.dockerd.docker("kill", cid)
        s.collect()
        self.assertEqual(s.status, {"status": "Success"})
        self.assertTrue(self.agent.running())


class ExecTest(StreamTestCase):

    def running(self):
        cid, c = self.start_container("sleep", "600")
        return cid, self.wait_container(cid, pred=lambda c: c["state"] == "running")

    def test_interactive_shell_round_trip_and_terminal_size(self):
        cid, c = self.running()
        s = self.open(c, "execute", command=["sh"], tty=True)
        s.resize(80, 24)
        s.send(STDIN, "echo hi\n")
        s.read_until(r"\r?\nhi\r?\n")
        s.send(STDIN, "stty size\n")
        s.read_until(r"\n24 80\r?\n")
        s.resize(132, 40)
        s.send(STDIN, "stty size\n")
        s.read_until(r"\n40 132\r?\n")
        s.send(STDIN, "exit\n")
        s.collect()
        self.assertEqual(s.status, {"status": "Success"})
        self.assertEqual(s.close_code, 1000)

    def test_exit_code_is_in_the_status(self):
        cid, c = self.running()
        s = self.open(c, "execute", command=["sh", "-c", "exit 3"], tty=False)
        s.collect()
        self.assertEqual(s.status, {"status": "Failure", "exitCode": 3})
        self.assertEqual(s.close_code, 1000)

    def test_without_tty_stdout_and_stderr_are_separate_and_stdin_ends(self):
        cid, c = self.running()
        s = self.open(c, "execute", command=["sh", "-c", "echo out; echo err >&2; cat; echo done"], tty=False)
        s.send(STDIN, "from stdin\n")
        s.send(STDIN, b"")  # end of input: cat ends
        messages = s.collect()
        self.assertEqual(s.output(messages, STDOUT), b"out\nfrom stdin\ndone\n")
        self.assertEqual(s.output(messages, STDERR), b"err\n")
        self.assertEqual(s.status, {"status": "Success"})

    def test_env_user_and_working_dir(self):
        cid, c = self.running()
        s = self.open(c, "execute", command=["sh", "-c", "echo $GREETING; id -u; pwd"], tty=False,
                      env=["GREETING=hello there"], user="nobody", workingDir="/tmp")
        messages = s.collect()
        self.assertEqual(s.output(messages), b"hello there\n65534\n/tmp\n")
        self.assertEqual(s.status, {"status": "Success"})

    def test_large_stdin_and_output_keep_every_byte(self):
        cid, c = self.running()
        # Stdin first (the process reads all of it), then the output: one
        # thread suffices (Python's SSL sockets must not read and write from
        # two threads at once).
        s = self.open(c, "execute", command=["sh", "-c", "wc -c; head -c 3000000 /dev/zero | tr '\\0' x"],
                      tty=False)
        chunk = b"y" * 65536
        for _ in range(40):
            s.send(STDIN, chunk)
        s.send(STDIN, b"")
        messages = s.collect()
        count, _, out = s.output(messages).partition(b"\n")
        self.assertEqual(count.strip(), str(40 * 65536).encode())
        self.assertEqual(len(out), 3000000)
        self.assertTrue(out == b"x" * 3000000)
        self.assertEqual(s.status, {"status": "Success"})

    def test_user_closing_ends_the_exec_process_within_5s(self):
        cid, c = self.running()
        for marker, command in (("7771", ["sleep", "7771"]), ("7772", ["sh", "-c", "sleep 7772"])):
            with self.subTest(command=command):
                s = Stream(self.server, self.access(c, "execute", command=command, tty=True))
                wait_for(lambda: marker in self.dockerd.docker("top", cid), 20, message="the exec runs")
                s.ws.close()
                t0 = time.monotonic()
                wait_for(lambda: marker not in self.dockerd.docker("top", cid), 5.0,
                         message="the exec process gone within 5 s")
                self.assertLess(time.monotonic() - t0, 5.0)
        # An interactive shell ends too (its terminal hangs up).
        s = Stream(self.server, self.access(c, "execute", command=["sh"], tty=True))
        s.send(STDIN, "echo shell-$((6000+1))\n")
        s.read_until("shell-6001")
        before = self.dockerd.docker("top", cid)
        self.assertIn(" sh", before)
        s.ws.abort()  # vanish without a close handshake
        s.ws.shutdown()
        wait_for(lambda: len([l for l in self.dockerd.docker("top", cid).splitlines() if l.rstrip().endswith(" sh")])
                 == 0, 5.0, message="the shell gone within 5 s")

    def test_closing_while_the_process_takes_no_input_still_ends_it(self):
        # Input the process never reads fills Docker's buffers and the pipe;
        # the user's close must still be seen and the process ended.
        cid, c = self.running()
        s = self.open(c, "execute", command=["sleep", "7774"], tty=False)
        wait_for(lambda: "7774" in self.dockerd.docker("top", cid), 20, message="the exec runs")
        for _ in range(8):
            s.send(STDIN, b"z" * 65536)
        s.ws.close()
        wait_for(lambda: "7774" not in self.dockerd.docker("top", cid), 10.0,
                 message="the exec process gone within 10 s of the close")

    def test_input_beyond_the_agents_buffer_waits_for_a_slow_reader(self):
        cid, c = self.running()
        s = self.open(c, "execute", command=["sh", "-c", "sleep 2; wc -c"], tty=False)
        for _ in range(48):  # 3 MiB: more than the agent holds for the process
            s.send(STDIN, b"y" * 65536)
        s.send(STDIN, b"")
        messages = s.collect()
        self.assertEqual(s.output(messages).strip(), str(48 * 65536).encode())
        self.assertEqual(s.status, {"status": "Success"})

    def test_exec_in_a_stopped_container_fails(self):
        cid, c = self.running()
        access = self.access(c, "execute", command=["true"])
        self.dockerd.docker("kill", cid)
        s = Stream(self.server, access)
        s.collect()
        self.assertEqual(s.status["status"], "Failure")
        self.assertTrue(s.status.get("message"), s.status)


class StatsTest(StreamTestCase):

    def test_samples_of_a_busy_container(self):
        cid, c = self.start_container("sh", "-c", "while :; do :; done")
        self.wait_container(cid, pred=lambda c: c["state"] == "running")
        s = self.open(c, "stats")
        samples = []
        while len(samples) < 4:
            m = s.recv()
            self.assertEqual(m[0], "text", m)
            samples.append(json.loads(m[1]))
        keys = {"time", "container", "cpuPercent", "cpuCount", "memoryUsage", "memoryLimit", "networkRx",
                "networkTx", "blockRead", "blockWrite", "pids"}
        for sample in samples:
            self.assertEqual(set(sample), keys)
            self.assertEqual(sample["container"], cid)
            self.assertRegex(sample["time"], r"^\d{4}-\d\d-\d\dT")
            self.assertGreater(sample["memoryUsage"], 0)
            self.assertGreater(sample["memoryLimit"], sample["memoryUsage"])
            self.assertGreaterEqual(sample["pids"], 1)
            self.assertEqual(sample["cpuCount"], os.cpu_count())
        # After the first (no previous reading), a busy loop shows.
        for sample in samples[1:]:
            self.assertGreater(sample["cpuPercent"], 1.0, samples)
            self.assertLessEqual(sample["cpuPercent"], 100.0 * os.cpu_count() + 1)
        # About one per second.
        t = [calendar.timegm(time.strptime(x["time"][:19], "%Y-%m-%dT%H:%M:%S")) for x in samples]
        self.assertGreaterEqual(t[-1] - t[0], 2)
        self.assertLessEqual(t[-1] - t[0], 10)

    def test_one_sample_without_stream(self):
        cid, c = self.start_container("sh", "-c", "while :; do :; done")
        self.wait_container(cid, pred=lambda c: c["state"] == "running")
        s = self.open(c, "stats", stream=False)
        messages = s.collect()
        texts = [json.loads(m[1]) for m in messages if m[0] == "text"]
        self.assertEqual(len(texts), 1, messages)
        self.assertGreater(texts[0]["cpuPercent"], 1.0)
        self.assertEqual(s.status, {"status": "Success"})

    def test_container_exit_ends_the_stream_with_a_status(self):
        cid, c = self.start_container("sleep", "600")
        self.wait_container(cid, pred=lambda c: c["state"] == "running")
        s = self.open(c, "stats")
        m = s.recv()
        self.assertEqual(m[0], "text")
        self.dockerd.docker("kill", cid)
        rest = s.collect()
        self.assertEqual(s.status, {"status": "Failure", "message": "the container stopped"}, rest[-3:])
        self.assertEqual(s.close_code, 1000)

    def test_host_stats_cover_every_running_container(self):
        ids = []
        for _ in range(2):
            cid, _c = self.start_container("sleep", "600")
            self.wait_container(cid, pred=lambda c: c["state"] == "running")
            ids.append(cid)
        s = Stream(self.server, self.api.ok("POST", "/v1/hosts/%s?action=stats" % self.host_id, json={}))
        self.addCleanup(s.close)
        seen = set()
        for _ in range(4):
            m = s.recv()
            self.assertEqual(m[0], "text", m)
            samples = json.loads(m[1])
            self.assertIsInstance(samples, list)
            seen |= {x["container"] for x in samples}
        self.assertTrue(set(ids) <= seen, (ids, seen))
        s.close()
        s = Stream(self.server, self.api.ok("POST", "/v1/hosts/%s?action=stats" % self.host_id,
                                            json={"stream": False}))
        messages = s.collect()
        texts = [json.loads(m[1]) for m in messages if m[0] == "text"]
        self.assertEqual(len(texts), 1)
        self.assertTrue(set(ids) <= {x["container"] for x in texts[0]})
        self.assertEqual(s.status, {"status": "Success"})


class ConcurrencyTest(StreamTestCase):

    def test_fifty_concurrent_sessions_over_ten_containers(self):
        containers = []
        for i in range(10):
            script = 'i=0; while [ $i -lt 3000 ]; do echo "c%d line $i"; i=$((i+1)); done; sleep 600' % i
            cid, c = self.start_container("sh", "-c", script)
            c = self.wait_container(cid, pred=lambda c: c["state"] == "running")
            containers.append((i, cid, c))
        for i, cid, c in containers:
            wait_for(lambda: "c%d line 2999" % i in self.dockerd.docker("logs", "--tail", "1", cid), 30)
        jobs = []
        for n in range(50):
            i, cid, c = containers[n % 10]
            if n % 5 == 4:
                jobs.append(("exec", i, self.access(c, "execute", command=["sh", "-c", "echo exec-%d" % n],
                                                    tty=False), n))
            else:
                jobs.append(("logs", i, self.access(c, "logs", follow=False, tail="all"), n))
        results = [None] * len(jobs)
        start = threading.Barrier(len(jobs))

        def run(k, kind, i, access, n):
            try:
                start.wait(30)
                s = Stream(self.server, access, timeout=120)
                messages = s.collect()
                results[k] = (kind, i, n, s.output(messages), s.status, s.close_code)
                s.close()
            except Exception as e:
                results[k] = ("error", i, n, repr(e).encode(), None, None)

        threads = [threading.Thread(target=run, args=(k,) + job) for k, job in enumerate(jobs)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        self.assertLess(time.monotonic() - t0, 180)
        for kind, i, n, out, status, code in results:
            self.assertNotEqual(kind, "error", out)
            self.assertEqual(status, {"status": "Success"}, (kind, n))
            self.assertEqual(code, 1000)
            if kind == "logs":
                expected = "".join("c%d line %d\n" % (i, j) for j in range(3000)).encode()
                self.assertTrue(out == expected, "session %d: %d bytes, expected %d" % (n, len(out), len(expected)))
            else:
                self.assertEqual(out, b"exec-%d\n" % n)

    def test_a_stalled_reader_holds_up_nothing_else(self):
        cid, c = self.start_container("sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' z; sleep 600")
        log_path = self.dockerd.docker("inspect", "-f", "{{.LogPath}}", cid).strip()
        wait_for(lambda: os.path.getsize(log_path) > 20000000, 60, message="20 MB of logs written")
        rss_before = agent_rss(self.agent)
        stalled = self.open(c, "logs", follow=True, tail="all")
        stalled.read_until("z")  # started, then never read again
        cid2, c2 = self.start_container("sh", "-c", "echo quick")
        self.wait_exited(cid2)
        t0 = time.monotonic()
        s, m = self.logs(c2, follow=False, tail="all")
        self.assertEqual(s.output(m), b"quick\n")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(self.api.ok("GET", "/v1/hosts/" + self.host_id)["state"], "active")
        # The agent read from Docker only what the tunnel took: 20 MB did not pile up in it.
        # (Under AddressSanitizer freed memory sits in its quarantine, so only
        # the normal build measures this bound; both check that nothing waited.)
        if not os.environ.get("PADDOCK_SANITIZED"):
            self.assertLess(agent_rss(self.agent) - rss_before, 8 << 20)


class RefusalTest(StreamTestCase):

    def container(self):
        cid, c = self.start_container("sh", "-c", "echo x")
        self.wait_exited(cid)
        return cid, c

    def test_bad_tokens_are_refused_before_the_upgrade(self):
        cid, c = self.container()
        opened = self.agent_stream_lines()
        good = self.access(c, "logs", follow=False)
        token = good["token"]
        self.assertEqual(refusal(self.server, good, token=""), 401, "missing")
        self.assertEqual(refusal(self.server, good, token="not-a-jwt"), 401, "malformed")
        self.assertEqual(refusal(self.server, good, token="a.b.c"), 401, "malformed parts")
        head, payload, sig = token.split(".")
        claims = claims_of(token)
        claims["container"] = "0" * 64
        forged = head + "." + b64url(json.dumps(claims).encode()) + "." + sig
        self.assertEqual(refusal(self.server, good, token=forged), 401, "tampered payload")
        flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        self.assertEqual(refusal(self.server, good, token=head + "." + payload + "." + flipped), 401,
                         "tampered signature")
        # Another host: a token the server signed itself, for a host that is not this one.
        other = dict(claims_of(token), aud="1h999999", jti=uuid.uuid4().hex)
        self.assertIn(refusal(self.server, good, token=server_sign(self.server, other)), (401, 503), "wrong host")
        # Used once, then replayed (in the header and in the query).
        s = Stream(self.server, good)
        s.collect()
        self.assertEqual(s.status, {"status": "Success"})
        self.assertEqual(refusal(self.server, good), 401, "replayed")
        self.assertEqual(refusal(self.server, good, header=False), 401, "replayed in ?token=")
        self.assertEqual(self.agent_stream_lines(), opened + 1, "only the good token reached the agent")

    def test_query_token_works_where_headers_cannot(self):
        cid, c = self.container()
        s = Stream(self.server, self.access(c, "logs", follow=False), header=False)
        messages = s.collect()
        self.assertEqual(s.output(messages), b"x\n")

    def new_member(self, name):
        """A fresh account with one key, a member of the project: (account, key, a session of the key, membership)."""
        account = self.api.ok("POST", "/v1/accounts", json={"name": name + "-" + uuid.uuid4().hex[:6]}, status=201)
        key = self.api.ok("POST", "/v1/apiKeys", json={"accountId": account["id"]}, status=201)
        member = self.api.ok("POST", self.project["links"]["projectMembers"],
                             json={"accountId": account["id"], "role": "member"}, status=201)
        return account, key, self.server.session((key["publicValue"], key["secretValue"])), member

    def ticking(self):
        """A running container that prints "tick" five times a second."""
        cid, c = self.start_container("sh", "-c", "while true; do echo tick; sleep 0.2; done")
        return cid, self.wait_container(cid, pred=lambda x: x["state"] == "running")

    def test_caller_removed_from_the_project_is_forbidden(self):
        cid, c = self.container()
        account, _, dave, member = self.new_member("dave")
        access = self.access(c, "logs", api=dave, follow=False)
        self.api.ok("DELETE", member["links"]["self"])
        opened = self.agent_stream_lines()
        self.assertEqual(refusal(self.server, access), 403)
        # Another project's key cannot even ask.
        other = self.api.ok("POST", "/v1/projects", json={"name": "other-" + uuid.uuid4().hex[:6]}, status=201)
        pkey = self.api.ok("POST", other["links"]["apiKeys"], json={}, status=201)
        outsider = self.server.session((pkey["publicValue"], pkey["secretValue"]))
        r = outsider.post(c["links"]["self"] + "?action=logs", json={})
        self.assertIn(r.status_code, (403, 404), r.text)
        self.assertEqual(self.agent_stream_lines(), opened)

    def test_deactivating_an_account_refuses_its_tokens_and_ends_its_streams(self):
        cid, c = self.ticking()
        account, key, erin, _ = self.new_member("erin")
        live = Stream(self.server, self.access(c, "logs", api=erin, follow=True))
        self.addCleanup(live.close)
        live.read_until("tick")
        unused = self.access(c, "logs", api=erin, follow=False)

        self.api.ok("POST", account["links"]["self"] + "?action=deactivate")
        deadline = time.monotonic() + 15
        while live.close_code is None:
            self.assertLess(time.monotonic(), deadline, "the stream went on after the account was deactivated")
            live.recv()
        # The key itself is still active: its account is what was deactivated.
        self.assertEqual(self.api.ok("GET", key["links"]["self"])["state"], "active")
        self.assertEqual(refusal(self.server, unused), 403)

    def test_losing_the_member_role_ends_the_accounts_streams_on_the_project(self):
        cid, c = self.ticking()
        _, _, fay, member = self.new_member("fay")

        def live_stream():
            s = Stream(self.server, self.access(c, "logs", api=fay, follow=True))
            self.addCleanup(s.close)
            s.read_until("tick")
            return s

        def ended(s, why):
            deadline = time.monotonic() + 15
            while s.close_code is None:
                self.assertLess(time.monotonic(), deadline, "the stream went on after " + why)
                s.recv()

        # Promoted: the stream goes on (a tick still arrives after the change).
        live = live_stream()
        self.api.ok("PUT", member["links"]["self"], json={"role": "owner"})
        live.read_until("tick")
        self.assertIsNone(live.close_code)
        # Down to readonly: it ends, as does an admin's stream never.
        admin_stream = Stream(self.server, self.access(c, "logs", follow=True))
        self.addCleanup(admin_stream.close)
        admin_stream.read_until("tick")
        self.api.ok("PUT", member["links"]["self"], json={"role": "readonly"})
        ended(live, "the account became readonly")
        admin_stream.read_until("tick")
        self.assertIsNone(admin_stream.close_code)
        # Member again, then removed from the project: it ends.
        self.api.ok("PUT", member["links"]["self"], json={"role": "member"})
        live = live_stream()
        self.api.ok("DELETE", member["links"]["self"])
        ended(live, "the account left the project")
        admin_stream.read_until("tick")
        self.assertIsNone(admin_stream.close_code)

    def test_streams_and_subscriptions_share_the_accounts_quota(self):
        cid, c = self.ticking()
        _, key, gil, _ = self.new_member("gil")
        auth = (key["publicValue"], key["secretValue"])
        live = Stream(self.server, self.access(c, "logs", api=gil, follow=True))
        self.addCleanup(live.close)
        live.read_until("tick")
        subs = []
        self.addCleanup(lambda: [x.close() for x in subs])
        for _ in range(WEBSOCKETS_PER_ACCOUNT - 1):
            subs.append(Subscriber(self.server, auth=auth))
        # Full: neither another stream nor another subscription opens.
        self.assertEqual(refusal(self.server, self.access(c, "logs", api=gil, follow=False)), 429)
        with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
            Subscriber(self.server, auth=auth).close()
        self.assertEqual(refused.exception.status_code, 429)
        # The stream ends: its slot opens a stream again (once the server has seen the end).
        live.close()
        access = None

        def stream_opens():
            nonlocal access
            access = access or self.access(c, "logs", api=gil, follow=False)
            try:
                s = Stream(self.server, access)
            except websocket.WebSocketBadStatusException as e:
                self.assertEqual(e.status_code, 429)
                return False
            self.addCleanup(s.close)
            s.collect()
            self.assertEqual(s.status, {"status": "Success"})
            return True
        wait_for(stream_opens, timeout=10, interval=0.2, message="a stream after one ended")

    def test_the_agent_checks_tokens_itself(self):
        cid, c = self.container()
        base = claims_of(self.access(c, "logs", follow=False)["token"])
        cases = {
            "bad container id": dict(base, container="../../../version"),
            "unknown op": dict(base, op="attach"),
        }
        for what, claims in cases.items():
            with self.subTest(what):
                claims = dict(claims, jti=uuid.uuid4().hex)
                s = Stream(self.server, {"url": "wss://127.0.0.1:%d/v1/stream" % self.server.port,
                                         "token": server_sign(self.server, claims)})
                s.collect()
                # The server waits for a tunnel that never comes.
                self.assertEqual(s.status["status"], "Failure")
                self.assertIn("did not open", s.status["message"])
        self.agent.wait_for_output("refused to open a stream: the token names no valid container id")
        self.agent.wait_for_output("refused to open a stream: the token names an unknown operation")

    def test_host_not_connected_is_503(self):
        agent, host_id = self.register_agent(self.server, "stopping")
        cid, _ = self.container()
        c = self.wait_container(cid, host_id=host_id)
        access = self.access(c, "logs", follow=False)
        self.assertEqual(agent.stop(), 0)
        wait_for(lambda: self.api.ok("GET", "/v1/hosts/" + host_id)["state"] == "disconnected", 20)
        self.assertEqual(refusal(self.server, access), 503)

    def test_expired_token(self):
        server = ServerProcess(extra_args=agent_support.NO_RATE_LIMIT + ["--stream-token-ttl", "1"])
        server.__enter__()
        self.addCleanup(server.cleanup)
        agent, host_id = self.register_agent(server, "short-ttl")
        api = server.session()
        cid, _ = self.container()
        c = self.wait_container(cid, host_id=host_id, api=api)
        access = self.access(c, "logs", api=api, follow=False)
        exp = claims_of(access["token"])["exp"]
        wait_for(lambda: time.time() > exp + 1.5, 10, message="the token to expire")
        opened = self.agent_stream_lines(agent)
        self.assertEqual(refusal(server, access), 401)
        self.assertEqual(self.agent_stream_lines(agent), opened)


class LifetimeTest(StreamTestCase):

    def test_agent_stopping_ends_its_streams_and_exits_promptly(self):
        agent, host_id = self.register_agent(self.server, "sigterm")
        cid, _ = self.start_container("sh", "-c", "echo up; sleep 600")
        c = self.wait_container(cid, host_id=host_id, pred=lambda c: c["state"] == "running")
        logs = Stream(self.server, self.access(c, "logs", follow=True, tail="all"))
        self.addCleanup(logs.close)
        logs.read_until("up\n")
        shell = Stream(self.server, self.access(c, "execute", command=["sh"], tty=True))
        self.addCleanup(shell.close)
        shell.send(STDIN, "echo in-$((40+2))\n")
        shell.read_until("in-42")
        stats = Stream(self.server, self.access(c, "stats"))
        self.addCleanup(stats.close)
        self.assertEqual(stats.recv()[0], "text")
        t0 = time.monotonic()
        self.assertEqual(agent.stop(), 0)
        self.assertLess(time.monotonic() - t0, 10)
        for s in (logs, shell, stats):
            s.collect()
            self.assertEqual(s.close_code, 1001)
        wait_for(lambda: not [l for l in self.dockerd.docker("top", cid).splitlines() if l.rstrip().endswith(" sh")],
                 5, message="the exec's shell ended with the agent")


if __name__ == "__main__":
    unittest.main()
