#!/usr/bin/python3
"""The API UI: content negotiation and files from the real paddock-server,
then the UI itself in headless Chromium (ui_test.mjs, playwright-core)
against that server, a real agent and a private dockerd.

Run from this directory (ctest does):

    PADDOCK_BIN_DIR=<build> PYTHONPATH=../support:../integration /usr/bin/python3 -m unittest -v test_ui

PADDOCK_SCREENSHOT_DIR=<dir> makes the browser test save docs/ui-*.png there.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import uuid

import websocket

import test_agent as agent_support
from dockerd import PrivateDockerd
from paddock_harness import ServerProcess, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
WEB = os.path.normpath(os.path.join(HERE, "..", "..", "web"))
WEB_DIST = os.path.join(WEB, "dist")
BROWSER_TIMEOUT = 600


class UiServer(unittest.TestCase):
    """One server with the UI for the whole class."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(WEB_DIST, "index.html")):
            raise unittest.SkipTest("web/dist is not built: run scripts/setup")
        cls.server = ServerProcess(extra_args=agent_support.NO_RATE_LIMIT + ["--web-dir", WEB_DIST])
        cls.server.__enter__()
        cls.addClassCleanup(cls.server.cleanup)
        cls.api = cls.server.session()

    def html(self, path, **kw):
        return self.api.get(path, auth=False, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
                            allow_redirects=False, **kw)


class NegotiationTest(UiServer):

    def test_html_at_any_v1_url_is_the_page_with_security_headers(self):
        for path in ["/v1", "/v1/hosts", "/v1/registrationTokens?name=x", "/v1/projects/1p1/hosts"]:
            r = self.html(path)
            self.assertEqual(r.status_code, 200, path)
            self.assertTrue(r.headers["Content-Type"].startswith("text/html"), path)
            self.assertIn('<script type="module" src="/ui/app/main.js">', r.text)
            csp = r.headers["Content-Security-Policy"]
            self.assertIn("script-src 'self'", csp)
            self.assertNotIn("unsafe-inline'", csp.split("script-src")[1].split(";")[0])
            self.assertEqual(r.headers["X-Content-Type-Options"], "nosniff")
            self.assertEqual(r.headers["Vary"], "Accept")

    def test_json_stays_json(self):
        r = self.api.get("/v1", headers={"Accept": "application/json"})
        self.assertEqual(r.headers["Content-Type"], "application/json")
        self.assertEqual(r.json()["type"], "apiRoot")
        r = self.api.get("/v1/hosts?_format=json", headers={"Accept": "text/html"})
        self.assertEqual(r.json()["type"], "collection")
        self.assertNotIn("_format", r.json()["links"]["self"])
        r = self.api.get("/v1/hosts")  # requests sends */*
        self.assertEqual(r.json()["type"], "collection")

    def test_root_redirects_browsers_and_json_is_unchanged(self):
        r = self.html("/")
        self.assertEqual(r.status_code, 302)
        self.assertEqual(r.headers["Location"], "/v1")
        self.assertEqual(self.api.get("/", auth=False).status_code, 404)

    def test_challenge_asks_for_the_browser_prompt(self):
        r = self.html("/v1?_challenge=1")
        self.assertEqual(r.status_code, 401)
        self.assertEqual(r.headers["WWW-Authenticate"], 'Basic realm="paddock"')
        self.assertIn("/ui/app/main.js", r.text)
        r = self.api.get("/v1?_challenge=1", headers={"Accept": "text/html"})
        self.assertEqual(r.status_code, 200)

    def test_no_challenge_header_drops_www_authenticate(self):
        r = self.api.get("/v1", auth=False)
        self.assertEqual(r.status_code, 401)
        self.assertIn("WWW-Authenticate", r.headers)
        r = self.api.get("/v1", auth=False, headers={"X-API-No-Challenge": "true"})
        self.assertEqual(r.status_code, 401)
        self.assertNotIn("WWW-Authenticate", r.headers)
        self.assertEqual(r.json()["code"], "Unauthorized")

    def test_files_types_caching_and_traversal(self):
        r = self.api.get("/ui/app/main.js", auth=False)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["Content-Type"], "text/javascript; charset=utf-8")
        self.assertEqual(r.headers["Cache-Control"], "no-cache")
        again = self.api.get("/ui/app/main.js", auth=False, headers={"If-None-Match": r.headers["ETag"]})
        self.assertEqual(again.status_code, 304)
        self.assertEqual(self.api.get("/ui/style.css", auth=False).headers["Content-Type"], "text/css; charset=utf-8")
        self.assertEqual(self.api.get("/ui/vendor/xterm/xterm.mjs", auth=False).status_code, 200)
        for bad in ["/ui/../server.log", "/ui/%2e%2e/data/admin-key.json", "/ui/app/..%2f..%2fpackage.json",
                    "/ui/.hidden.js", "/ui/build.mjs", "/ui/package.json", "/ui/nothing.js", "/ui/"]:
            with self.subTest(bad=bad):
                r = self.api.get(bad, auth=False)
                self.assertEqual(r.status_code, 404, bad)
        # A raw request target the client library would normalise.
        with self.server.raw_tls_socket() as s:
            s.sendall(b"GET /ui/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertNotIn(b"root:", data)
        self.assertRegex(data.split(b"\r\n")[0], rb" 404 ")


class SubscribeTicketTest(UiServer):

    def test_ticket_opens_subscribe_once(self):
        ticket = self.api.ok("POST", "/v1/subscribe")
        self.assertEqual(ticket["type"], "subscribeAccess")
        self.assertTrue(ticket["url"].startswith("wss://127.0.0.1:%d/v1/subscribe" % self.server.port))
        sslopt = {"ca_certs": self.server.ca_file}
        ws = websocket.create_connection(ticket["url"] + "?token=" + ticket["token"], sslopt=sslopt, timeout=10)
        try:
            created = self.api.ok("POST", "/v1/projects/%s/registrationTokens" % self.default_project(), json={},
                                  status=201)
            m = json.loads(ws.recv())
            while m.get("name") != "resource.change" or m.get("resourceId") != created["id"]:
                m = json.loads(ws.recv())
        finally:
            ws.close()
        with self.assertRaises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(ticket["url"] + "?token=" + ticket["token"], sslopt=sslopt, timeout=10)
        self.assertEqual(e.exception.status_code, 401)
        # Stream tokens are not subscribe tickets, nor the other way round.
        with self.assertRaises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection("wss://127.0.0.1:%d/v1/stream?token=%s" % (self.server.port, ticket["token"]),
                                        sslopt=sslopt, timeout=10)
        self.assertEqual(e.exception.status_code, 401)

    def test_ticket_needs_a_key(self):
        self.assertEqual(self.api.post("/v1/subscribe", auth=False).status_code, 401)

    def default_project(self):
        return self.api.ok("GET", "/v1/projects?name=Default")["data"][0]["id"]


class MissingWebDirTest(unittest.TestCase):

    def test_api_works_and_the_log_says_why(self):
        with ServerProcess(extra_args=["--web-dir", "/nonexistent/paddock-web"]) as server:
            server.wait_for_log(r"API UI not served: no web directory at /nonexistent/paddock-web")
            api = server.session()
            r = api.get("/v1", headers={"Accept": "text/html"})
            self.assertEqual(r.json()["type"], "apiRoot")


class BrowserTest(unittest.TestCase):
    """ui_test.mjs in headless Chromium against a server, an agent and a container."""

    def test_ui_in_chromium(self):
        for need in ["/usr/bin/chromium", os.path.join(WEB, "node_modules", "playwright-core"),
                     os.path.join(WEB_DIST, "index.html")]:
            if not os.path.exists(need):
                self.fail("%s is missing: run scripts/setup" % need)
        node = shutil.which("node")
        self.assertIsNotNone(node, "node is not on PATH")
        tmp = tempfile.mkdtemp(prefix="pdk-ui-")
        self.addCleanup(lambda: os.environ.get("PADDOCK_KEEP_TMP") or shutil.rmtree(tmp, True))
        dockerd = PrivateDockerd()
        dockerd.start("/tmp/pdk-u" + uuid.uuid4().hex[:10])
        self.addCleanup(dockerd.stop)
        dockerd.make_busybox_image(agent_support.BUSYBOX)
        server = ServerProcess(extra_args=agent_support.NO_RATE_LIMIT + ["--web-dir", WEB_DIST])
        server.__enter__()
        self.addCleanup(server.cleanup)
        api = server.session()
        project = api.ok("GET", "/v1/projects?name=Default")["data"][0]
        for i in range(5):
            api.ok("POST", project["links"]["registrationTokens"], json={"name": "page-%d" % i}, status=201)

        token = api.wait_settled(api.ok("POST", project["links"]["registrationTokens"], json={}, status=201)
                                 ["links"]["self"])
        agent = agent_support.AgentProcess(tmp, "ui-" + uuid.uuid4().hex[:6], dockerd.host)
        self.addCleanup(agent.kill)
        agent.start("--ca-checksum", agent_support.sha256_file(server.ca_file), "--hostname", "h-ui",
                    token["registrationUrl"])
        wait_for(lambda: os.path.exists(agent.state_file), 30, message="the agent's state.json")
        host_id = agent.state()["hostId"]
        wait_for(lambda: api.ok("GET", "/v1/hosts/" + host_id).get("dockerState") == "ok", 30,
                 message="host active with Docker")
        script = ("for i in 1 2 3; do echo hello from stdout $i; done; echo hello from stderr >&2; "
                  "exec sleep 3600")
        cid = dockerd.run(agent_support.BUSYBOX, "sh", "-c", script, name="ui-web")
        self.addCleanup(dockerd.docker, "rm", "-f", cid, check=False)
        container = wait_for(lambda: next(iter(api.ok("GET", "/v1/hosts/%s/containers?dockerId=%s" %
                                                      (host_id, cid))["data"]), None),
                             20, message="the container on the server")

        access, secret = server.admin
        env = dict(os.environ, PADDOCK_URL=server.url, PADDOCK_ACCESS_KEY=access, PADDOCK_SECRET_KEY=secret,
                   PADDOCK_CA_FILE=server.ca_file, PADDOCK_PROJECT_URL=project["links"]["self"],
                   PADDOCK_CONTAINER_URL=container["links"]["self"])
        proc = subprocess.run([node, os.path.join(HERE, "ui_test.mjs")], cwd=WEB, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=BROWSER_TIMEOUT)
        out = proc.stdout.decode("utf-8", "replace")
        sys.stderr.write(out)
        if proc.returncode != 0:
            sys.stderr.write("\n---- server log, last lines ----\n%s\n" % server.log_tail(40))
            sys.stderr.write("\n---- agent, last lines ----\n%s\n" % agent.output()[-3000:])
        self.assertEqual(proc.returncode, 0, "the browser test failed (see above)")


if __name__ == "__main__":
    unittest.main()
