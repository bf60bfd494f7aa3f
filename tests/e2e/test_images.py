"""End to end through the container images, as a user meets them.

Both images are built here, offline (a base image made by scripts/base-image,
`docker build --network host`), in a private dockerd. The server runs from
its image on the host's loopback; a registration token's command runs as the
server issued it, with two host paths pointed at this test's own (the private
daemon's socket and a fresh state directory) and without `sudo`. The
containerized agent must then serve logs, exec and stats; running the command
again must keep the single host and replace the agent container.

PADDOCK_E2E_DOCKERD_DIR=<dir> runs it in a private dockerd started earlier by
`tests/support/dockerd.py start <dir>` instead of a fresh one, so that images
built there before are reused from the layer cache.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import requests

from dockerd import PrivateDockerd
from paddock_harness import Client, wait_for
from test_streams import STDOUT, Stream

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUSYBOX = "paddock-test/busybox:latest"
SERVER_UID = 999  # the paddock user of Dockerfile.server
BUILD_TIMEOUT = 3000


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(paddock VERSION ([0-9.]+)", f.read()).group(1)


def container_logs(dockerd, name, tail="all"):
    """A container's output, stdout and stderr together ('' when there is none)."""
    done = subprocess.run(["docker", "-H", dockerd.host, "logs", "--tail", str(tail), name],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return done.stdout.decode("utf-8", "replace")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerContainer:
    """paddock-server from its image: enough of ServerProcess for Client."""

    name = "paddock-server-e2e"

    def __init__(self, dockerd, image, data_dir, port):
        self.dockerd, self.image, self.data_dir, self.port = dockerd, image, data_dir, port
        self.url = "https://127.0.0.1:%d" % port

    def start(self):
        self.dockerd.docker("run", "-d", "--name", self.name, "--network", "host",
                            "-v", "%s:/var/lib/paddock" % self.data_dir,
                            "-e", "PADDOCK_LISTEN=127.0.0.1:%d" % self.port,
                            "-e", "PADDOCK_RATE_LIMIT=0", self.image)

    def logs(self):
        return container_logs(self.dockerd, self.name, 60)

    @property
    def ca_file(self):
        return os.path.join(self.data_dir, "tls", "ca.pem")

    @property
    def admin(self):
        with open(os.path.join(self.data_dir, "admin-key.json"), encoding="utf-8") as f:
            key = json.load(f)
        return key["accessKey"], key["secretKey"]

    def session(self):
        return Client(self, self.admin)

    def healthy(self):
        try:
            return self.session().get("/healthz").status_code == 200
        except requests.RequestException:
            return False  # not listening yet


class ImagesEndToEnd(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.version = project_version()
        cls.tmp = tempfile.mkdtemp(prefix="pdk-e2e-")
        cls.addClassCleanup(lambda: os.environ.get("PADDOCK_KEEP_TMP") or shutil.rmtree(cls.tmp, True))
        if os.environ.get("PADDOCK_E2E_DOCKERD_DIR"):
            cls.dockerd = PrivateDockerd.attach(os.environ["PADDOCK_E2E_DOCKERD_DIR"])
        else:
            cls.dockerd = PrivateDockerd()
            cls.dockerd.start("/tmp/pdk-e" + uuid.uuid4().hex[:10])
            cls.addClassCleanup(cls.dockerd.stop)
        cls.dockerd.make_busybox_image(BUSYBOX)
        # Cleanups run last in, first out: these go before the daemon stops.
        for name in ("paddock-agent", "paddock-agent-replaced", ServerContainer.name):
            cls.addClassCleanup(cls.dockerd.docker, "rm", "-f", name, check=False)
        cls.env = dict(os.environ, DOCKER_HOST=cls.dockerd.host)
        cls.server_image = "paddock/server:" + cls.version
        cls.agent_image = "paddock/agent:" + cls.version
        cls.build_images()

        data = os.path.join(cls.tmp, "server-data")
        os.mkdir(data, 0o700)
        os.chown(data, SERVER_UID, SERVER_UID)
        cls.server = ServerContainer(cls.dockerd, cls.server_image, data, free_port())
        cls.server.start()
        wait_for(lambda: os.path.exists(cls.server.ca_file) and os.path.exists(os.path.join(data, "admin-key.json")),
                 60, message="the server container's CA and admin key")
        cls.api = cls.server.session()
        wait_for(cls.server.healthy, 60, message="/healthz of the server container")
        cls.state_dir = os.path.join(cls.tmp, "agent-state")
        os.mkdir(cls.state_dir, 0o700)

    @classmethod
    def build_images(cls):
        log = os.path.join(cls.tmp, "images.log")
        done = subprocess.run([os.path.join(ROOT, "scripts", "images"), log], env=cls.env, timeout=BUILD_TIMEOUT,
                              stdout=sys.stderr)
        if done.returncode != 0:
            with open(log, encoding="utf-8", errors="replace") as f:
                raise AssertionError("scripts/images failed:\n" + f.read()[-6000:])

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            sys.stderr.write("\n---- server container ----\n%s\n" % self.server.logs())
            sys.stderr.write("---- paddock-agent container ----\n%s\n" %
                             container_logs(self.dockerd, "paddock-agent", 60))
        return outcome

    # -- helpers -------------------------------------------------------------------

    def new_token(self):
        project = self.api.ok("GET", "/v1/projects?name=Default")["data"][0]
        token = self.api.ok("POST", project["links"]["registrationTokens"], json={}, status=201)
        token = self.api.wait_settled(token["links"]["self"], 30)
        self.assertEqual(token["state"], "active")
        return token

    def as_run_here(self, command, state_dir=None):
        """The issued command, for this machine: no sudo (root already), the
        private daemon's socket and this test's state dir in place of the host's."""
        args = shlex.split(command)
        self.assertEqual(args[:3], ["sudo", "docker", "run"], command)
        args = args[1:]
        socket_path = self.dockerd.host[len("unix://"):]
        mounts = {"/var/run/docker.sock:/var/run/docker.sock": socket_path + ":/var/run/docker.sock",
                  "/var/lib/paddock:/var/lib/paddock": (state_dir or self.state_dir) + ":/var/lib/paddock"}
        for i, a in enumerate(args):
            if a in mounts:
                args[i] = mounts.pop(a)
        self.assertEqual(mounts, {}, "the command mounts the socket and the state dir: " + command)
        return args

    def run_command(self, args):
        return subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=180)

    def agent_container(self):
        return json.loads(self.dockerd.docker("inspect", "paddock-agent"))[0]

    def hosts(self):
        return self.api.ok("GET", "/v1/hosts")["data"]

    def wait_host_active(self, host_id):
        def active():
            h = self.api.ok("GET", "/v1/hosts/" + host_id)
            return h if h["state"] == "active" and h["dockerState"] == "ok" else None
        return wait_for(active, 60, message="host %s active through the containerized agent" % host_id)

    def wait_agent_connected(self, host_id):
        wait_for(lambda: "connected to %s as host %s" % (self.server.url, host_id) in
                 container_logs(self.dockerd, "paddock-agent"),
                 60, message="the paddock-agent container to connect")

    def wait_container(self, host_id, cid):
        def find():
            page = self.api.ok("GET", "/v1/hosts/%s/containers?dockerId=%s" % (host_id, cid))
            return page["data"][0] if page["data"] else None
        return wait_for(find, 30, message="container %s on the server" % cid[:12])

    def stream(self, container, action, **input):
        access = self.api.ok("POST", container["links"]["self"] + "?action=" + action, json=input)
        s = Stream(self.server, access)
        self.addCleanup(s.close)
        return s

    # -- the tests, in order ---------------------------------------------------------

    def test_1_images_are_labelled_and_the_server_runs_unprivileged_and_healthy(self):
        for image, title in ((self.server_image, "paddock-server"), (self.agent_image, "paddock-agent")):
            config = json.loads(self.dockerd.docker("image", "inspect", image))[0]["Config"]
            self.assertEqual(config["Labels"]["org.opencontainers.image.version"], self.version)
            self.assertEqual(config["Labels"]["org.opencontainers.image.title"], title)
        server = json.loads(self.dockerd.docker("inspect", self.server.name))[0]
        self.assertEqual(server["Config"]["User"], "paddock")
        self.assertIn("/var/lib/paddock", server["Config"]["Volumes"])
        top = self.dockerd.docker("top", self.server.name, "-o", "pid,uid,comm")
        self.assertRegex(top, r"\b%d\s+paddock-server" % SERVER_UID)
        # The API UI ships in the image: a browser at /v1 gets the page.
        page = self.api.get("/v1", headers={"Accept": "text/html"})
        self.assertEqual(page.status_code, 200, page.text[:300])
        self.assertTrue(page.headers["Content-Type"].startswith("text/html"), page.headers)
        wait_for(lambda: self.dockerd.docker("inspect", "-f", "{{.State.Health.Status}}",
                                             self.server.name).strip() == "healthy",
                 60, message="the server container's HEALTHCHECK to pass")

    def test_2_a_command_without_the_state_mount_is_refused_before_the_token_is_used(self):
        token = self.new_token()
        args = self.as_run_here(token["command"])
        i = args.index(self.state_dir + ":/var/lib/paddock")
        del args[i - 1:i + 1]
        done = self.run_command(args)
        self.assertEqual(done.returncode, 2, done)
        self.assertIn("-v /var/lib/paddock:/var/lib/paddock", done.stderr)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        self.assertEqual(self.api.ok("GET", token["links"]["self"]).get("uses", 0), 0)
        self.assertEqual(self.hosts(), [])

    def test_3_the_issued_command_registers_and_leaves_a_running_agent(self):
        token = self.new_token()
        self.assertIn(" %s " % self.agent_image, token["command"])
        done = self.run_command(self.as_run_here(token["command"]))
        self.assertEqual(done.returncode, 0, done)
        lines = done.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, done.stdout)
        docker_name = json.loads(self.dockerd.docker("info", "--format", "{{json .Name}}"))
        self.assertIn('registered this host as "%s"' % docker_name, lines[0])

        hosts = self.hosts()
        self.assertEqual(len(hosts), 1, hosts)
        self.wait_agent_connected(hosts[0]["id"])
        host = self.wait_host_active(hosts[0]["id"])
        self.assertIn("(%s)" % host["id"], lines[0])
        self.assertEqual(host["name"], docker_name)
        self.assertEqual(host["agentVersion"], self.version)
        self.assertEqual(host["dockerVersion"],
                         json.loads(self.dockerd.docker("version", "--format", "{{json .Server.Version}}")))

        agent = self.agent_container()
        self.assertTrue(agent["State"]["Running"])
        self.assertEqual(agent["Config"]["Image"], self.agent_image)
        self.assertEqual(agent["HostConfig"]["NetworkMode"], "host")
        self.assertEqual(agent["HostConfig"]["PidMode"], "host")
        self.assertIn("GNUTLS_NO_IMPLICIT_INIT=1", agent["Config"]["Env"])
        self.assertEqual(agent["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped")
        self.assertEqual(agent["Config"]["Labels"]["io.paddock.host-id"], host["id"])
        self.assertEqual(sorted(m["Destination"] for m in agent["Mounts"]), ["/var/lib/paddock", "/var/run/docker.sock"])
        self.assertTrue(os.path.exists(os.path.join(self.state_dir, "state.json")))
        # --rm: the bootstrap container is gone; only the agent runs from the agent image.
        from_image = self.dockerd.docker("ps", "-a", "--filter", "ancestor=" + self.agent_image,
                                         "--format", "{{.Names}}").split()
        self.assertEqual(from_image, ["paddock-agent"])
        type(self).host_id = host["id"]

    def test_4_logs_exec_and_stats_work_through_the_containerized_agent(self):
        cid = self.dockerd.run(BUSYBOX, "sh", "-c", "for i in 1 2 3; do echo e2e-line-$i; done; exec sleep 300")
        self.addCleanup(self.dockerd.docker, "rm", "-f", cid, check=False)
        container = self.wait_container(self.host_id, cid)

        logs = self.stream(container, "logs", follow=False)
        messages = logs.collect()
        self.assertEqual(logs.output(messages, STDOUT), b"e2e-line-1\ne2e-line-2\ne2e-line-3\n")
        self.assertEqual(logs.status, {"status": "Success"})

        echo = self.stream(container, "execute", command=["echo", "hi"], tty=False)
        self.assertEqual(echo.output(echo.collect(), STDOUT), b"hi\n")
        self.assertEqual(echo.status, {"status": "Success"})

        shell = self.stream(container, "execute", command=["sh"], tty=True)
        shell.send(0, "echo sum-$((40+2)); exit 3\n")
        self.assertIn(b"sum-42", shell.output(shell.collect(), STDOUT))
        self.assertEqual(shell.status, {"status": "Failure", "exitCode": 3})

        # The user going away ends the exec's process: the agent can see and
        # signal it in the host's pid namespace.
        sleeper = self.stream(container, "execute", command=["sleep", "7773"], tty=True)
        wait_for(lambda: "7773" in self.dockerd.docker("top", cid), 20, message="the exec runs")
        sleeper.ws.close()
        wait_for(lambda: "7773" not in self.dockerd.docker("top", cid), 10, message="the exec process gone")

        stats = self.stream(container, "stats")
        kind, text = stats.recv()
        self.assertEqual(kind, "text")
        sample = json.loads(text)
        self.assertEqual(sample["container"], cid)
        self.assertGreater(sample["memoryUsage"], 0, sample)

    def test_5_running_the_command_again_keeps_the_host_and_replaces_the_agent(self):
        before = self.agent_container()
        token = self.new_token()
        done = self.run_command(self.as_run_here(token["command"]))
        self.assertEqual(done.returncode, 0, done)
        self.assertEqual(len(done.stdout.strip().splitlines()), 1, done.stdout)
        self.assertIn("already registered", done.stdout)
        self.assertIn("(%s)" % self.host_id, done.stdout)

        after = self.agent_container()
        self.assertNotEqual(after["Id"], before["Id"])
        self.assertTrue(after["State"]["Running"])
        names = self.dockerd.docker("ps", "-a", "--format", "{{.Names}}").split()
        self.assertEqual(names.count("paddock-agent"), 1, names)
        self.assertNotIn("paddock-agent-replaced", names)
        hosts = self.hosts()
        self.assertEqual([h["id"] for h in hosts], [self.host_id])
        self.wait_agent_connected(self.host_id)
        self.wait_host_active(self.host_id)

    def test_6_a_deactivated_host_stays_stopped_until_started_again(self):
        # Exit 2 under Docker's unless-stopped policy would start the agent
        # into the same refusal for ever: it turns the policy off first.
        self.api.ok("POST", "/v1/hosts/%s?action=deactivate" % self.host_id)
        stopped = wait_for(lambda: (lambda a: a if not a["State"]["Running"] else None)(self.agent_container()),
                           30, message="the agent container to stop")
        self.assertEqual(stopped["State"]["ExitCode"], 2, stopped["State"])
        self.assertEqual(stopped["HostConfig"]["RestartPolicy"]["Name"], "no")
        self.assertIn("deactivated", container_logs(self.dockerd, "paddock-agent"))
        self.assertIn("docker start", container_logs(self.dockerd, "paddock-agent"))
        # Docker leaves it alone (its first restart would come within a
        # second): a watch over a fixed window, the only way to see that
        # nothing happens.
        watch_until = time.monotonic() + 3
        while time.monotonic() < watch_until:
            now = self.agent_container()
            self.assertEqual(now["State"]["Status"], "exited", now["State"])
            self.assertEqual(now["RestartCount"], stopped["RestartCount"])
            time.sleep(0.5)

        # Activated and started again, it comes back with its restart policy.
        self.api.ok("POST", "/v1/hosts/%s?action=activate" % self.host_id)
        self.dockerd.docker("start", "paddock-agent")
        self.wait_host_active(self.host_id)
        wait_for(lambda: self.agent_container()["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped", 30,
                 message="the restart policy back to unless-stopped")
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, "restart-policy")))


if __name__ == "__main__":
    unittest.main()
