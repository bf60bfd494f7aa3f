#!/usr/bin/python3
"""The REST API of the real paddock-server, over TLS on loopback.

Driven by independent clients: Debian's python3-requests and
python3-websocket, and curl. Each TestCase class shares one server (started
in setUpClass on port 0 with a fresh data dir) unless its tests need a
server of their own. Run from this directory:

    PADDOCK_BIN_DIR=<build> PYTHONPATH=../support /usr/bin/python3 -m unittest -v test_server_api
"""

import hashlib
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import websocket

from paddock_harness import (ServerProcess, Subscriber, basic_auth_header, resource_change,
                             server_binary, wait_for)

NO_RATE_LIMIT = ["--rate-limit", "0"]
TOKEN_STATES = ["registering", "active", "inactive", "expired", "removed"]
FIELD_TYPES = {"string", "int", "float", "boolean", "date", "enum", "password", "json"}
FIELD_ATTRIBUTES = {"type", "required", "nullable", "create", "update", "default", "min", "max", "minLength",
                    "maxLength", "options", "validChars", "invalidChars"}
MIB = 1024 * 1024


def now_ms():
    return int(time.time() * 1000)


def id_number(resource_id):
    return int(resource_id[2:])


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def server_version():
    out = subprocess.run([server_binary(), "--version"], capture_output=True, text=True, timeout=10)
    m = re.fullmatch(r"paddock-server (\S+)\n", out.stdout)
    assert m, "unexpected --version output %r" % out.stdout
    return m.group(1)


def collect_pages(client, url, max_pages=1000):
    """Follows pagination.next from `url`; returns (pages, all resources in order)."""
    pages, items = [], []
    while url:
        page = client.ok("GET", url)
        pages.append(page)
        items.extend(page["data"])
        url = page["pagination"]["next"]
        assert len(pages) <= max_pages, "pagination does not end"
    return pages, items


class ServerTestCase(unittest.TestCase):
    """One server for the whole class; its log tail is printed for each failing test."""

    server_args = NO_RATE_LIMIT
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = ServerProcess(extra_args=cls.server_args)
        cls.server.__enter__()
        cls.addClassCleanup(cls.server.cleanup)
        cls.api = cls.server.session()
        cls.default_project = cls.api.ok("GET", "/v1/projects?name=Default")["data"][0]

    def run(self, result=None):
        before = len(result.failures) + len(result.errors) if result else 0
        outcome = super().run(result)
        if result and len(result.failures) + len(result.errors) > before and self.server:
            sys.stderr.write("\n---- server log (%s), last lines ----\n%s\n----\n" %
                             (self.server.log_file, self.server.log_tail(40)))
        return outcome

    # -- helpers -------------------------------------------------------

    @classmethod
    def tokens_url(cls, project=None):
        return (project or cls.default_project)["links"]["registrationTokens"]

    @classmethod
    def create_token(cls, client=None, project=None, settle=True, **fields):
        client = client or cls.api
        token = client.ok("POST", cls.tokens_url(project), json=fields, status=201)
        return client.wait_settled(token["links"]["self"]) if settle else token

    @classmethod
    def create_project(cls, name):
        return cls.api.ok("POST", "/v1/projects", json={"name": name}, status=201)

    @classmethod
    def create_account_with_key(cls, name):
        account = cls.api.ok("POST", "/v1/accounts", json={"name": name}, status=201)
        key = cls.api.ok("POST", "/v1/apiKeys", json={"accountId": account["id"], "name": name + " key"},
                         status=201)
        return account, key, (key["publicValue"], key["secretValue"])

    @classmethod
    def add_member(cls, project, account, role, client=None):
        return (client or cls.api).ok("POST", project["links"]["projectMembers"],
                                      json={"accountId": account["id"], "role": role}, status=201)

    def assert_error(self, response, status, code=None, field=None):
        self.assertEqual(response.status_code, status, response.text[:2000])
        self.assertTrue(response.headers.get("Content-Type", "").startswith("application/json"),
                        response.headers)
        body = response.json()
        self.assertEqual(body["type"], "error")
        self.assertEqual(body["status"], status)
        if code:
            self.assertEqual(body["code"], code, body)
        if field is not None:
            self.assertEqual(body["fieldName"], field, body)
        schemas = response.headers.get("X-API-Schemas", "")
        self.assertTrue(schemas.startswith(self.server.url + "/v1/") and schemas.endswith("/schemas"),
                        "X-API-Schemas: %r" % schemas)
        return body

    def total(self, url, client=None):
        return (client or self.api).ok("GET", url)["pagination"]["total"]


# ---------------------------------------------------------------------------


class CommandLineTest(unittest.TestCase):
    """Flags: --help, --version, and config errors failing fast with one line."""

    def run_server(self, *args, timeout=15):
        started = time.monotonic()
        out = subprocess.run([server_binary()] + list(args), capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        return out, time.monotonic() - started

    def test_help_lists_flags(self):
        out, _ = self.run_server("--help")
        self.assertEqual(out.returncode, 0, out.stderr)
        for flag in ("--data-dir", "--listen", "--advertise-url", "--tls-cert", "--rate-limit", "--log-level",
                     "--version"):
            self.assertIn(flag, out.stdout)

    def test_version_is_one_line(self):
        out, _ = self.run_server("--version")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"^paddock-server \d+\.\d+\.\d+\S*\n$")

    def assert_fails_fast(self, *args, mentions):
        tmp = tempfile.mkdtemp(prefix="paddock-it-cli-")
        self.addCleanup(shutil.rmtree, tmp, True)
        data = os.path.join(tmp, "data")
        out, took = self.run_server("--data-dir", data, *args)
        self.assertNotEqual(out.returncode, 0, out)
        self.assertLess(took, 5.0, "a config error must fail fast")
        lines = out.stderr.splitlines()
        self.assertEqual(len(lines), 1, "one line, got %r" % out.stderr)
        self.assertIn(mentions, lines[0])
        self.assertFalse(os.path.exists(data), "nothing is created before the config is valid")
        return lines[0]

    def test_listen_nonsense_fails_fast(self):
        self.assert_fails_fast("--listen", "nonsense", mentions="--listen")

    def test_listen_port_out_of_range_fails_fast(self):
        self.assert_fails_fast("--listen", "127.0.0.1:70000", mentions="--listen")

    def test_unknown_flag_fails_fast(self):
        self.assert_fails_fast("--no-such-flag", mentions="no-such-flag")

    def test_bad_log_level_fails_fast(self):
        self.assert_fails_fast("--log-level", "chatty", mentions="chatty")

    def test_negative_rate_limit_fails_fast(self):
        self.assert_fails_fast("--rate-limit", "-5", mentions="rate-limit")

    def test_negative_websocket_quota_fails_fast(self):
        self.assert_fails_fast("--max-websockets-per-account", "-1", mentions="max-websockets-per-account")

    def test_tls_cert_without_key_fails_fast(self):
        self.assert_fails_fast("--tls-cert", "/nonexistent.pem", mentions="--tls-key")

    def test_port_in_use_fails_with_a_clear_last_line(self):
        holder = socket.socket()
        self.addCleanup(holder.close)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        tmp = tempfile.mkdtemp(prefix="paddock-it-cli-")
        self.addCleanup(shutil.rmtree, tmp, True)
        out, took = self.run_server("--data-dir", os.path.join(tmp, "data"), "--listen",
                                    "127.0.0.1:%d" % holder.getsockname()[1], timeout=30)
        self.assertNotEqual(out.returncode, 0)
        last = out.stderr.splitlines()[-1]
        self.assertTrue(last.startswith("paddock-server: cannot listen on 127.0.0.1:%d" % holder.getsockname()[1]),
                        out.stderr)


# ---------------------------------------------------------------------------


class SystemEndpointsTest(ServerTestCase):
    """/healthz, /v1/cacerts and /metrics."""

    def test_healthz_needs_no_credentials(self):
        r = self.api.get("/healthz", auth=None)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.json(), {"status": "ok"})
        self.assertTrue(r.headers["Content-Type"].startswith("application/json"))
        self.assertEqual(r.headers["X-API-Schemas"], self.server.url + "/v1/schemas")

    def test_cacerts_are_the_ca_file_and_match_the_command_checksum(self):
        r = self.api.get("/v1/cacerts", auth=None)
        self.assertEqual(r.status_code, 200)
        with open(self.server.ca_file, "rb") as f:
            self.assertEqual(r.content, f.read())
        self.assertIn(b"-----BEGIN CERTIFICATE-----", r.content)
        checksum = sha256_hex(r.content)
        token = self.create_token()
        m = re.search(r"-e PADDOCK_CA_CHECKSUM=([0-9a-f]{64}) ", token["command"])
        self.assertTrue(m, token["command"])
        self.assertEqual(m.group(1), checksum)
        self.assertEqual(self.server.wait_for_log(r"CA checksum ([0-9a-f]{64})").group(1), checksum)
        # And the registration script names the same one.
        script = self.api.ok("GET", token["registrationUrl"], auth=None)
        self.assertEqual(script["caChecksum"], checksum)

    def test_cacerts_refuses_other_methods(self):
        self.assert_error(self.api.post("/v1/cacerts", auth=None), 405, "MethodNotAllowed")

    @staticmethod
    def metric(text, name, **labels):
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
            if not m or m.group(1) != name:
                continue
            have = ",".join(sorted(re.findall(r'\w+="[^"]*"', m.group(2) or "")))
            if have == want:
                return float(m.group(3))
        return None

    def test_metrics_count_requests_and_tokens(self):
        self.api.ok("GET", "/v1")
        self.api.get("/v1/nothing-here")
        first = self.api.get("/metrics", auth=None)
        self.assertEqual(first.status_code, 200)
        self.assertTrue(first.headers["Content-Type"].startswith("text/plain"), first.headers)
        text = first.text
        self.assertIn("# TYPE paddock_http_requests_total counter", text)
        self.assertIn("# TYPE paddock_registration_tokens gauge", text)
        ok_v1 = self.metric(text, "paddock_http_requests_total", route="/v1", method="GET", status="200")
        self.assertGreaterEqual(ok_v1 or 0, 1, text)
        self.assertGreaterEqual(self.metric(text, "paddock_http_requests_total", route="/v1/unknown",
                                            method="GET", status="404") or 0, 1, text)
        self.api.ok("GET", "/v1")
        again = self.api.get("/metrics", auth=None).text
        self.assertEqual(self.metric(again, "paddock_http_requests_total", route="/v1", method="GET",
                                     status="200"), ok_v1 + 1)
        self.assertIsNotNone(self.metric(again, "paddock_http_request_duration_seconds_count", route="/v1",
                                         method="GET"))

        # The token gauges follow the store.
        self.create_token()
        inactive = self.create_token()
        self.api.ok("POST", inactive["actions"]["deactivate"])
        text = self.api.get("/metrics", auth=None).text
        for state in ("active", "inactive"):
            want = self.total("/v1/registrationTokens?state=" + state)
            self.assertEqual(self.metric(text, "paddock_registration_tokens", state=state), want, text)


# ---------------------------------------------------------------------------


class SchemasAndLinksTest(ServerTestCase):
    """X-API-Schemas, /v1 links and the schema resources."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.reader, cls.reader_key, cls.reader_auth = cls.create_account_with_key("reader")
        cls.add_member(cls.default_project, cls.reader, "readonly")
        cls.project_url = cls.default_project["links"]["self"]

    def test_x_api_schemas_on_every_response(self):
        top = self.server.url + "/v1/schemas"
        in_project = self.project_url + "/schemas"
        anon = self.server.session(auth=False)
        cases = [
            (self.api.get("/healthz"), 200, top),
            (self.api.get("/metrics"), 200, top),
            (self.api.get("/v1"), 200, top),
            (self.api.get("/v1/schemas"), 200, top),
            (self.api.get("/v1/registrationTokens"), 200, top),
            (self.api.get("/v1/cacerts"), 200, top),
            (self.api.get("/v1/scripts/unknown"), 404, top),
            (self.api.get("/v1/no-such-collection"), 404, top),
            (self.api.get("/no-such-thing"), 404, top),
            (self.api.request("PATCH", "/v1/registrationTokens"), 405, top),
            (anon.get("/v1/registrationTokens"), 401, top),
            (self.api.post(self.tokens_url(), data="{nope"), 400, in_project),
            (self.api.post("/v1/projects", json={"name": 7}), 422, top),
            (self.api.get(self.project_url), 200, top),
            (self.api.get(self.project_url + "/registrationTokens"), 200, in_project),
            (self.api.get(self.project_url + "/schemas"), 200, in_project),
            (self.api.get(self.project_url + "/registrationTokens/1t999999"), 404, in_project),
            (self.api.get(self.project_url + "/no-such-collection"), 404, in_project),
            (self.api.post(self.project_url + "/registrationTokens", json={"ttl": "x"}), 422, in_project),
            (self.api.request("PATCH", self.project_url + "/registrationTokens"), 405, in_project),
            (self.server.session(self.reader_auth).post(self.project_url + "/registrationTokens", json={}), 403,
             in_project),
        ]
        for r, status, schemas in cases:
            with self.subTest(method=r.request.method, url=r.url):
                self.assertEqual(r.status_code, status, r.text[:500])
                self.assertEqual(r.headers.get("X-API-Schemas"), schemas)

    def test_v1_root_links_every_collection(self):
        root = self.api.ok("GET", "/v1")
        base = self.server.url + "/v1"
        links = root["links"]
        self.assertEqual(links["self"], base)
        self.assertEqual(links["schemas"], base + "/schemas")
        for collection in ("accounts", "projects", "projectMembers", "apiKeys", "registrationTokens"):
            self.assertEqual(links.get(collection), base + "/" + collection, links)
            page = self.api.ok("GET", links[collection])
            self.assertEqual(page["type"], "collection")
        self.assertEqual(links["subscribe"], base + "/subscribe")

    def test_project_root_and_links_stay_inside_the_project(self):
        project = self.api.ok("GET", self.project_url)
        for name in ("registrationTokens", "projectMembers", "schemas", "subscribe"):
            self.assertEqual(project["links"][name], self.project_url + "/" + name)
        self.assertEqual(project["links"]["self"], self.project_url)
        for name, url in project["links"].items():
            self.assertTrue(url.startswith(self.project_url), (name, url))

    def test_every_collection_a_project_links_has_its_schema_in_the_project(self):
        # A generic client starting from the project's links.self must find
        # the schema of every collection it is offered, pointing back inside.
        project = self.api.ok("GET", self.project_url)
        schemas = self.api.ok("GET", project["links"]["schemas"])
        by_collection = {s["links"]["collection"]: s for s in schemas["data"] if "collection" in s["links"]}
        for name, url in project["links"].items():
            if name in ("self", "update", "remove", "schemas", "subscribe"):
                continue
            page = self.api.ok("GET", url)
            with self.subTest(collection=name):
                self.assertIn(url, sorted(by_collection), "no schema in %s" % project["links"]["schemas"])
                self.assertEqual(by_collection[url]["id"], page["resourceType"])

    def test_schemas_collection(self):
        page = self.api.ok("GET", "/v1/schemas")
        self.assertEqual(page["type"], "collection")
        self.assertEqual(page["resourceType"], "schema")
        ids = {s["id"] for s in page["data"]}
        self.assertLessEqual({"account", "project", "projectMember", "apiKey", "registrationToken"}, ids)
        for s in page["data"]:
            with self.subTest(schema=s["id"]):
                self.assertEqual(s["type"], "schema")
                self.assertEqual(self.api.ok("GET", s["links"]["self"]), s)
                self.assertEqual(s["links"]["self"], self.server.url + "/v1/schemas/" + s["id"].lower())
                for name, field in s["resourceFields"].items():
                    base = re.sub(r"\[.*\]$", "", field["type"])
                    self.assertTrue(field["type"] in FIELD_TYPES or base in ("reference", "array", "map"),
                                    (name, field))
                    self.assertLessEqual(set(field), FIELD_ATTRIBUTES, (name, field))
                    if field["type"] == "enum":
                        self.assertTrue(field["options"])
                for name, action in s["resourceActions"].items():
                    self.assertIn("input", action)
                    self.assertIn("output", action)
                for name, f in s["collectionFilters"].items():
                    self.assertIn(name, s["resourceFields"])
                    self.assertLessEqual(set(f["modifiers"]), {"eq", "ne", "lt", "lte", "gt", "gte", "prefix",
                                                               "like", "notlike", "null", "notnull"})
                if "collection" in s["links"]:
                    coll = self.api.ok("GET", s["links"]["collection"])
                    self.assertEqual(coll["resourceType"], s["id"])

    def test_registration_token_schema(self):
        s = self.api.ok("GET", "/v1/schemas/registrationToken")
        self.assertEqual(s["id"], "registrationToken")
        self.assertEqual(s["links"]["collection"], self.server.url + "/v1/registrationTokens")
        self.assertEqual(s["collectionMethods"], ["GET", "POST"])
        self.assertEqual(s["resourceMethods"], ["GET", "PUT", "DELETE"])
        f = s["resourceFields"]
        self.assertEqual(f["state"]["type"], "enum")
        self.assertEqual(f["state"]["options"], TOKEN_STATES)
        self.assertEqual(f["name"]["type"], "string")
        self.assertEqual(f["name"]["maxLength"], 255)
        for attr in ("nullable", "create", "update"):
            self.assertIs(f["name"][attr], True, attr)
        self.assertEqual(f["ttl"]["type"], "int")
        self.assertEqual(f["ttl"]["min"], 0)
        self.assertEqual(f["ttl"]["default"], 0)
        self.assertTrue(f["ttl"]["create"])
        self.assertFalse(f["ttl"].get("update", False))
        self.assertEqual(f["token"]["type"], "password")
        self.assertFalse(f["token"].get("create", False))
        self.assertEqual(f["projectId"]["type"], "reference[project]")
        self.assertEqual(f["expiresAt"]["type"], "date")
        self.assertEqual(s["resourceActions"]["deactivate"], {"input": None, "output": "registrationToken"})
        self.assertEqual(s["resourceActions"]["activate"], {"input": None, "output": "registrationToken"})
        mods = s["collectionFilters"]["name"]["modifiers"]
        self.assertEqual(sorted(mods), sorted(["eq", "ne", "prefix", "like", "notlike", "null", "notnull"]))
        self.assertNotIn("token", s["collectionFilters"], "a secret must never be filterable")
        # Lookups by id ignore case: /v1/schemas/registrationtoken is the self link.
        self.assertEqual(self.api.ok("GET", "/v1/schemas/registrationtoken"), s)
        self.assert_error(self.api.get("/v1/schemas/noSuchType"), 404, "NotFound")

    def test_project_schemas_point_into_the_project(self):
        s = self.api.ok("GET", self.project_url + "/schemas/registrationToken")
        self.assertEqual(s["links"]["collection"], self.project_url + "/registrationTokens")
        self.assertEqual(s["links"]["self"], self.project_url + "/schemas/registrationtoken")

    def test_readonly_member_sees_no_post(self):
        reader = self.server.session(self.reader_auth)
        for url in (self.project_url + "/schemas/registrationToken",):
            s = reader.ok("GET", url)
            self.assertEqual(s["collectionMethods"], ["GET"])
            self.assertEqual(s["resourceMethods"], ["GET"])
            self.assertEqual(s["resourceActions"], {})
            self.assertNotIn("create", s["resourceFields"]["name"])
            self.assertNotIn("update", s["resourceFields"]["name"])
        # The same through the project header.
        s = reader.ok("GET", "/v1/schemas/registrationToken", headers={"X-API-Project-Id": self.default_project["id"]})
        self.assertEqual(s["collectionMethods"], ["GET"])
        members = reader.ok("GET", self.project_url + "/schemas/projectMember")
        self.assertEqual(members["collectionMethods"], ["GET"])
        # The project's keys are its members' to make, not a reader's.
        keys = reader.ok("GET", self.project_url + "/schemas/apiKey")
        self.assertEqual(keys["collectionMethods"], ["GET"])
        self.assert_error(reader.post(self.project_url + "/apiKeys", json={}), 403, "PermissionDenied")
        # His own account keys he may make.
        self.assertEqual(reader.ok("GET", "/v1/schemas/apiKey")["collectionMethods"], ["GET", "POST"])
        # The admin, for contrast, may write.
        self.assertEqual(self.api.ok("GET", self.project_url + "/schemas/registrationToken")["collectionMethods"],
                         ["GET", "POST"])


# ---------------------------------------------------------------------------


class RegistrationTokenTest(ServerTestCase):
    """The registrationToken lifecycle, seen by polling, by subscribe and by curl."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.version = server_version()
        with open(cls.server.ca_file, "rb") as f:
            cls.ca_checksum = sha256_hex(f.read())

    def expected_command(self, token):
        url = self.server.url + "/v1/scripts/" + token
        return ("sudo docker run --rm --network host -v /var/run/docker.sock:/var/run/docker.sock "
                "-v /var/lib/paddock:/var/lib/paddock -e PADDOCK_CA_CHECKSUM=%s paddock/agent:%s %s" %
                (self.ca_checksum, self.version, url))

    def assert_active_token(self, t):
        self.assertEqual(t["state"], "active")
        self.assertEqual(t["transitioning"], "no")
        self.assertIsNone(t["transitioningMessage"])
        token = t["token"]
        self.assertRegex(token, r"^[A-Za-z0-9]+$")
        self.assertGreaterEqual(len(token) * math.log2(62), 128, "a token carries at least 128 bits")
        self.assertEqual(t["registrationUrl"], self.server.url + "/v1/scripts/" + token)
        self.assertEqual(t["image"], "paddock/agent:" + self.version)
        self.assertEqual(t["command"], self.expected_command(token))
        self.assertEqual(t["actions"], {"deactivate": t["links"]["self"] + "?action=deactivate"})

    def test_create_registers_then_activates(self):
        # The checksum in the command is of the exact bytes /v1/cacerts serves.
        self.assertEqual(sha256_hex(self.api.get("/v1/cacerts", auth=None).content), self.ca_checksum)
        with Subscriber(self.server) as sub:
            r = self.api.post(self.tokens_url(), json={"name": "lifecycle"})
            self.assertEqual(r.status_code, 201, r.text)
            created = r.json()
            self.assertEqual(created["type"], "registrationToken")
            self.assertRegex(created["id"], r"^1t\d+$")
            self.assertEqual(created["name"], "lifecycle")
            self.assertEqual(created["state"], "registering")
            self.assertEqual(created["transitioning"], "yes")
            for secret in ("token", "registrationUrl", "command"):
                self.assertIsNone(created[secret], secret)
            self.assertEqual(created["projectId"], self.default_project["id"])
            self.assertEqual(created["links"]["self"], self.tokens_url() + "/" + created["id"])
            self.assertEqual(created["actions"], {})
            self.assertIsNone(created["expiresAt"])
            self.assertIsNone(created["maxUses"])
            self.assertEqual(created["uses"], 0)
            self.assertRegex(created["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
            self.assertLessEqual(abs(created["createdTS"] - now_ms()), 60000)

            active = self.api.wait_settled(created["links"]["self"])
            self.assert_active_token(active)
            self.assertEqual(active["id"], created["id"])

            # The same story through subscribe.
            first = sub.wait_for_event(resource_change("registrationToken", created["id"], state="registering"))
            self.assertEqual(first["data"]["resource"]["transitioning"], "yes")
            self.assertIsNone(first["data"]["resource"]["token"])
            self.assertRegex(first["time"], r"^\d{4}-\d\d-\d\dT")
            done = sub.wait_for_event(resource_change("registrationToken", created["id"], state="active"))
            self.assertEqual(done["data"]["resource"]["transitioning"], "no")
            self.assertEqual(done["data"]["resource"]["token"], active["token"])
            self.assertEqual(done["data"]["resource"]["command"], active["command"])
            self.assertEqual(done["data"]["resource"]["links"]["self"], active["links"]["self"])
            # The event carries the resource as GET shows it.
            self.assertEqual(done["data"]["resource"], self.api.ok("GET", created["links"]["self"]))
            names = [m["name"] for m in sub.snapshot()]
            self.assertLess(names.index("resource.change"), len(names))

    def test_tokens_are_unique(self):
        tokens = {self.create_token()["token"] for _ in range(20)}
        self.assertEqual(len(tokens), 20)

    def test_subscribe_pings_at_once_then_every_five_seconds(self):
        with Subscriber(self.server) as sub:
            # The first ping says the subscription is live (the constructor waits for it).
            self.assertEqual(sub.snapshot()[:1], [{"name": "ping"}])
            started = time.monotonic()
            wait_for(lambda: sub.snapshot().count({"name": "ping"}) >= 2, 6.5, message="a second ping")
            self.assertGreater(time.monotonic() - started, 3.0)

    def test_subscribe_refuses_bad_credentials_and_event_names(self):
        with self.assertRaises(websocket.WebSocketBadStatusException) as e:
            Subscriber(self.server, auth=("nobody", "nothing"))
        self.assertEqual(e.exception.status_code, 401)
        with self.assertRaises(websocket.WebSocketBadStatusException) as e:
            Subscriber(self.server, query="eventNames=resource.explode")
        self.assertEqual(e.exception.status_code, 422)
        r = self.api.get("/v1/subscribe")
        self.assertEqual(r.status_code, 400, r.text)

    def test_ttl_sets_expires_at_and_the_token_expires(self):
        with Subscriber(self.server) as sub:
            created = self.create_token(settle=False, ttl=2)
            self.assertEqual(created["ttl"], 2)
            self.assertEqual(created["expiresAtTS"] - created["createdTS"], 2000)
            self.assertRegex(created["expiresAt"], r"^\d{4}-\d\d-\d\dT")
            active = self.api.wait_settled(created["links"]["self"])
            if active["state"] == "active":  # unless the machine is very slow
                self.assertEqual(self.api.get(active["registrationUrl"], auth=None).status_code, 200)
            expired = wait_for(lambda: (lambda t: t if t["state"] == "expired" else None)(
                self.api.ok("GET", created["links"]["self"])), timeout=10, message="state expired")
            self.assertEqual(expired["transitioning"], "no")
            self.assertIsNone(expired["token"])
            self.assertIsNone(expired["command"])
            self.assertIsNone(expired["registrationUrl"])
            self.assertEqual(expired["actions"], {})
            sub.wait_for_event(resource_change("registrationToken", created["id"], state="expired"), timeout=10)
            if active["state"] == "active":
                self.assertEqual(self.api.get(active["registrationUrl"], auth=None).status_code, 404)
            listed = self.api.ok("GET", "/v1/registrationTokens", params={"state": "expired"})
            self.assertIn(created["id"], [t["id"] for t in listed["data"]])

    def test_ttl_one_second_is_expired_by_the_time_it_is_read(self):
        created = self.create_token(settle=False, ttl=1)
        url = created["links"]["self"]
        expired = wait_for(lambda: (lambda t: t if t["state"] == "expired" else None)(self.api.ok("GET", url)),
                           timeout=10, message="state expired")
        self.assertIsNone(expired["token"])

    def test_expired_before_the_sweep_offers_no_actions(self):
        # Regression: between expiresAt and the worker's sweep (up to 1 s) a
        # token showed state expired but still offered deactivate.
        t = self.create_token(ttl=1)
        seen = []

        def expired():
            r = self.api.ok("GET", t["links"]["self"])
            seen.append(r)
            return r if r["state"] == "expired" else None

        first = wait_for(expired, timeout=10, interval=0.02, message="state expired")
        self.assertEqual(first["actions"], {})
        self.assertIsNone(first["token"])
        self.assert_error(self.api.post(t["links"]["self"] + "?action=deactivate"), 409, "Conflict")
        for r in seen:
            self.assertEqual(bool(r["actions"]), r["state"] == "active", r)

    def test_deactivate_and_activate(self):
        t = self.create_token()
        token, url = t["token"], t["registrationUrl"]
        self.assertEqual(self.api.get(url, auth=None).status_code, 200)
        off = self.api.ok("POST", t["actions"]["deactivate"])
        self.assertEqual(off["state"], "inactive")
        self.assertEqual(off["actions"], {"activate": t["links"]["self"] + "?action=activate"})
        self.assertIsNone(off["token"])
        self.assertIsNone(off["command"])
        self.assertEqual(self.api.ok("GET", t["links"]["self"])["state"], "inactive")
        self.assertEqual(self.api.get(url, auth=None).status_code, 404)
        # An action that is not valid in this state.
        self.assert_error(self.api.post(t["links"]["self"] + "?action=deactivate"), 409, "Conflict")
        self.assert_error(self.api.post(t["links"]["self"] + "?action=explode"), 404, "NotFound")
        on = self.api.ok("POST", off["actions"]["activate"])
        self.assert_active_token(on)
        self.assertEqual(on["token"], token)
        self.assertEqual(self.api.get(url, auth=None).status_code, 200)

    def test_max_uses_is_shown(self):
        t = self.create_token(maxUses=3)
        self.assertEqual(t["maxUses"], 3)
        self.assertEqual(t["uses"], 0)
        self.assertEqual(self.api.get(t["registrationUrl"], auth=None).status_code, 200)
        self.assert_error(self.api.post(self.tokens_url(), json={"maxUses": 0}), 422, "MinLimitExceeded", "maxUses")

    def test_update_changes_only_updatable_fields(self):
        t = self.create_token(name="before", ttl=0)
        r = self.api.ok("PUT", t["links"]["update"],
                        json={"name": "after", "description": "d", "ttl": 99, "state": "inactive", "bogus": 1})
        self.assertEqual(r["name"], "after")
        self.assertEqual(r["description"], "d")
        self.assertEqual(r["ttl"], 0)
        self.assertEqual(r["state"], "active")
        self.assertEqual(r["token"], t["token"])

    def test_delete(self):
        with Subscriber(self.server) as sub:
            t = self.create_token()
            self.assertEqual(t["links"]["remove"], t["links"]["self"])
            r = self.api.ok("DELETE", t["links"]["remove"])
            self.assertEqual(r["id"], t["id"])
            self.assertEqual(r["state"], "removed")
            self.assertEqual(r["actions"], {})
            self.assertNotIn("remove", r["links"])
            self.assert_error(self.api.get(t["links"]["self"]), 404, "NotFound")
            self.assert_error(self.api.delete(t["links"]["self"]), 404, "NotFound")
            self.assertEqual(self.api.get(t["registrationUrl"], auth=None).status_code, 404)
            ids = [x["id"] for x in self.api.ok("GET", "/v1/registrationTokens?limit=1000")["data"]]
            self.assertNotIn(t["id"], ids)
            sub.wait_for_event(resource_change("registrationToken", t["id"], state="removed"))

    def test_registration_url(self):
        t = self.create_token()
        r = self.api.get(t["registrationUrl"], auth=None)
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        self.assertEqual(body["registrationUrl"], t["registrationUrl"])
        self.assertEqual(body["serverUrl"], self.server.url)
        self.assertEqual(body["caChecksum"], self.ca_checksum)
        # Unknown tokens: random, too long, a prefix of a real one, empty.
        for unknown in ("A" * 39, "x" * 300, t["token"][:-1], t["token"] + "x"):
            with self.subTest(token=unknown[:20]):
                self.assert_error(self.api.get("/v1/scripts/" + unknown, auth=None), 404, "NotFound")
        self.assert_error(self.api.get("/v1/scripts/", auth=None), 404, "NotFound")
        self.assert_error(self.api.put(t["registrationUrl"], auth=None), 405, "MethodNotAllowed")
        # Inactive.
        off = self.api.ok("POST", t["actions"]["deactivate"])
        self.assert_error(self.api.get(t["registrationUrl"], auth=None), 404, "NotFound")
        self.api.ok("POST", off["actions"]["activate"])
        self.assertEqual(self.api.get(t["registrationUrl"], auth=None).status_code, 200)
        # Expired.
        short = self.create_token(ttl=2)
        if short["state"] == "active":
            self.assertEqual(self.api.get(short["registrationUrl"], auth=None).status_code, 200)
            wait_for(lambda: self.api.get(short["registrationUrl"], auth=None).status_code == 404, timeout=10,
                     message="the expired token's URL to answer 404")

    def curl(self, method, url, body=None, auth=True):
        cmd = ["curl", "-sS", "--max-time", "20", "--cacert", self.server.ca_file, "-X", method,
               "-w", "\n%{http_code}", "-H", "Accept: application/json"]
        if auth:
            cmd += ["-u", "%s:%s" % self.server.admin]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=30,
                             env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")})
        self.assertEqual(out.returncode, 0, out.stderr)
        text, _, status = out.stdout.rpartition("\n")
        return int(status), (json.loads(text) if text else None)

    def test_lifecycle_with_curl(self):
        status, created = self.curl("POST", self.tokens_url(), {"name": "via curl"})
        self.assertEqual(status, 201, created)
        self.assertEqual(created["state"], "registering")
        self.assertEqual(created["transitioning"], "yes")
        self.assertIsNone(created["token"])
        self_url = created["links"]["self"]

        def active():
            code, t = self.curl("GET", self_url)
            return t if code == 200 and t["transitioning"] == "no" else None

        t = wait_for(active, timeout=15, interval=0.1, message="the token to settle (curl)")
        self.assert_active_token(t)
        status, script = self.curl("GET", t["registrationUrl"], auth=False)
        self.assertEqual(status, 200)
        self.assertEqual(script["caChecksum"], self.ca_checksum)
        status, off = self.curl("POST", t["actions"]["deactivate"])
        self.assertEqual((status, off["state"]), (200, "inactive"))
        self.assertEqual(self.curl("GET", t["registrationUrl"], auth=False)[0], 404)
        status, gone = self.curl("DELETE", t["links"]["self"])
        self.assertEqual((status, gone["state"]), (200, "removed"))
        status, err = self.curl("GET", self_url)
        self.assertEqual((status, err["code"]), (404, "NotFound"))
        status, err = self.curl("GET", self_url, auth=False)
        self.assertEqual((status, err["code"]), (401, "Unauthorized"))


# ---------------------------------------------------------------------------


class CollectionQueryTest(ServerTestCase):
    """Filters, sorting and pagination over ~250 tokens."""

    NAMES = ["web-a", "web-b", "db-a", "db_x", None]
    COUNT = 250

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.project = cls.create_project("query")
        cls.url = cls.tokens_url(cls.project)
        cls.created = []
        for i in range(cls.COUNT):
            fields = {}
            if cls.NAMES[i % 5] is not None:
                fields["name"] = cls.NAMES[i % 5]
            if i % 3 == 0:
                fields["maxUses"] = i + 1
            cls.created.append(cls.api.ok("POST", cls.url, json=fields, status=201))
        cls.ids = [t["id"] for t in cls.created]
        # Let the worker finish, so states stop changing under the tests.
        wait_for(lambda: cls.api.ok("GET", cls.url + "?transitioning=yes")["pagination"]["total"] == 0,
                 timeout=60, message="all tokens to settle")

    def query(self, *params, url=None):
        return self.api.ok("GET", url or self.url, params=list(params) + [("limit", "1000")])

    def expect(self, pred):
        return sorted(t["id"] for i, t in enumerate(self.created) if pred(i))

    def ids_of(self, page):
        return sorted(t["id"] for t in page["data"])

    def test_collection_shape(self):
        page = self.api.ok("GET", self.url)
        self.assertEqual(page["type"], "collection")
        self.assertEqual(page["resourceType"], "registrationToken")
        self.assertEqual(page["links"]["self"], self.url)
        self.assertEqual(page["createTypes"], {"registrationToken": self.url})
        self.assertEqual(page["actions"], {})
        self.assertEqual(page["sort"]["name"], "created")
        self.assertEqual(page["sort"]["order"], "asc")
        for name in ("name", "created", "state", "id"):
            self.assertIn(name, page["sortLinks"])
        for name in ("name", "state", "maxUses", "expiresAt", "id"):
            self.assertIn(name, page["filters"])
            self.assertIsNone(page["filters"][name])
        self.assertNotIn("token", page["filters"])

    def test_filter_equals(self):
        page = self.query(("name", "web-a"))
        self.assertEqual(self.ids_of(page), self.expect(lambda i: i % 5 == 0 and self.NAMES[0] == "web-a"))
        self.assertEqual(page["pagination"]["total"], 50)
        self.assertEqual(page["filters"]["name"], [{"modifier": "eq", "value": "web-a"}])
        self.assertIsNone(page["filters"]["state"])
        self.assertEqual(self.query(("name_eq", "web-a"))["pagination"]["total"], 50)

    def test_repeated_equals_is_any_of(self):
        page = self.query(("name", "web-a"), ("name", "db-a"))
        self.assertEqual(self.ids_of(page), self.expect(lambda i: i % 5 in (0, 2)))
        self.assertEqual(page["filters"]["name"], [{"modifier": "eq", "value": "web-a"},
                                                   {"modifier": "eq", "value": "db-a"}])
        two = self.query(("id", self.ids[0]), ("id", self.ids[7]), ("id", "1t0"))
        self.assertEqual(self.ids_of(two), sorted([self.ids[0], self.ids[7]]))

    def test_filter_not_equal(self):
        page = self.query(("name_ne", "web-a"))
        self.assertEqual(self.ids_of(page), self.expect(lambda i: i % 5 != 0))
        page = self.query(("id_ne", self.ids[3]))
        self.assertEqual(page["pagination"]["total"], self.COUNT - 1)

    def test_filter_prefix_and_like(self):
        self.assertEqual(self.ids_of(self.query(("name_prefix", "web-"))), self.expect(lambda i: i % 5 in (0, 1)))
        # A prefix is literal: "_" is no wildcard there.
        self.assertEqual(self.ids_of(self.query(("name_prefix", "db_"))), self.expect(lambda i: i % 5 == 3))
        self.assertEqual(self.ids_of(self.query(("name_like", "db_%"))), self.expect(lambda i: i % 5 in (2, 3)))
        self.assertEqual(self.ids_of(self.query(("name_like", "%-a"))), self.expect(lambda i: i % 5 in (0, 2)))
        self.assertEqual(self.ids_of(self.query(("name_notlike", "web%"))), self.expect(lambda i: i % 5 in (2, 3, 4)))
        page = self.query(("name_like", "web-_"))
        self.assertEqual(page["filters"]["name"], [{"modifier": "like", "value": "web-_"}])
        self.assertEqual(page["pagination"]["total"], 100)

    def test_filter_null_and_notnull(self):
        page = self.query(("name_null", ""))
        self.assertEqual(self.ids_of(page), self.expect(lambda i: i % 5 == 4))
        self.assertEqual(page["filters"]["name"], [{"modifier": "null", "value": None}])
        # Without "=" at all.
        bare = self.api.ok("GET", self.url + "?name_null&limit=1000")
        self.assertEqual(self.ids_of(bare), self.expect(lambda i: i % 5 == 4))
        self.assertEqual(self.ids_of(self.query(("maxUses_notnull", ""))), self.expect(lambda i: i % 3 == 0))
        self.assertEqual(self.ids_of(self.query(("maxUses_null", ""))), self.expect(lambda i: i % 3 != 0))

    def test_filters_are_anded_and_ranges(self):
        page = self.query(("name", "web-a"), ("maxUses_notnull", ""))
        self.assertEqual(self.ids_of(page), self.expect(lambda i: i % 5 == 0 and i % 3 == 0))
        page = self.query(("maxUses_gte", "100"), ("maxUses_lt", "200"))
        self.assertEqual(self.ids_of(page), self.expect(lambda i: i % 3 == 0 and 100 <= i + 1 < 200))
        page = self.query(("maxUses_gt", "100"), ("maxUses_lte", "200"), ("name_prefix", "db"))
        self.assertEqual(self.ids_of(page),
                         self.expect(lambda i: i % 3 == 0 and 100 < i + 1 <= 200 and i % 5 in (2, 3)))

    def test_filter_on_dates_and_state(self):
        mid = self.created[self.COUNT // 2]
        page = self.query(("created_gte", mid["created"]))
        self.assertTrue(all(t["createdTS"] >= mid["createdTS"] for t in page["data"]))
        self.assertIn(mid["id"], self.ids_of(page))
        self.assertEqual(self.query(("state", "active"))["pagination"]["total"], self.COUNT)
        self.assertEqual(self.query(("state", "inactive"))["pagination"]["total"], 0)

    def test_bad_filters_are_422(self):
        cases = [
            (("bogus", "1"), "bogus"),
            (("name_foo", "x"), "name_foo"),       # not a modifier: an unknown field
            (("name_gt", "x"), "name_gt"),         # a modifier the field does not take
            (("token", "x"), "token"),             # secrets are not filterable
            (("maxUses", "many"), "maxUses"),      # not an integer
            (("state", "sleeping"), "state"),      # not an option
            (("created_lt", "yesterday"), "created_lt"),
        ]
        for param, field in cases:
            with self.subTest(param=param):
                self.assert_error(self.api.get(self.url, params=[param]), 422, "InvalidFilter", field)
        self.assert_error(self.api.get(self.url, params=[("marker", "garbage")]), 422, None, "marker")
        r = self.api.get(self.url + "?name=%ff")
        self.assert_error(r, 422, "InvalidFilter", "name")

    def test_bad_sort_and_limit_are_422(self):
        self.assert_error(self.api.get(self.url, params={"sort": "bogus"}), 422, "InvalidSort", "sort")
        self.assert_error(self.api.get(self.url, params={"sort": "token"}), 422, "InvalidSort", "sort")
        self.assert_error(self.api.get(self.url, params={"sort": "name", "order": "sideways"}), 422, "InvalidSort",
                          "order")
        for bad in ("0", "-1", "abc", "1.5"):
            with self.subTest(limit=bad):
                r = self.api.get(self.url, params={"limit": bad})
                self.assertEqual(r.status_code, 422, r.text)
                self.assertEqual(r.json()["fieldName"], "limit")

    def full_order(self, sort, order):
        page = self.query(("sort", sort), ("order", order))
        self.assertEqual(page["pagination"]["total"], self.COUNT)
        self.assertEqual(len(page["data"]), self.COUNT)
        self.assertEqual(page["sort"]["name"], sort)
        self.assertEqual(page["sort"]["order"], order)
        return page

    def test_sort_is_stable_with_ties_broken_by_id(self):
        asc = self.full_order("name", "asc")
        keys = [((t["name"] or ""), id_number(t["id"])) for t in asc["data"]]
        self.assertEqual(keys, sorted(keys))
        desc = self.full_order("name", "desc")
        self.assertEqual([t["id"] for t in desc["data"]], [t["id"] for t in reversed(asc["data"])])
        # The reverse link is the other order.
        rev = self.api.ok("GET", asc["sort"]["reverse"])
        self.assertEqual(rev["sort"]["order"], "desc")
        self.assertEqual(rev["data"][0]["id"], desc["data"][0]["id"])
        # Every sort link sorts; state has only ties here (all active): pure id order.
        by_state = self.full_order("state", "asc")
        self.assertEqual([t["id"] for t in by_state["data"]], sorted(self.ids, key=id_number))
        by_id = self.full_order("id", "desc")
        self.assertEqual([t["id"] for t in by_id["data"]], sorted(self.ids, key=id_number, reverse=True))
        # uses is 0 everywhere: all ties, so descending is pure descending id.
        by_uses = self.full_order("uses", "desc")
        self.assertEqual([t["id"] for t in by_uses["data"]], sorted(self.ids, key=id_number, reverse=True))
        for name, link in asc["sortLinks"].items():
            with self.subTest(sort=name):
                self.assertEqual(self.api.ok("GET", link)["sort"]["name"], name)

    def test_pagination_default_limit(self):
        everything = [t["id"] for t in self.full_order("created", "asc")["data"]]
        pages, items = collect_pages(self.api, self.url)
        self.assertEqual([len(p["data"]) for p in pages], [100, 100, 50])
        for p in pages:
            self.assertEqual(p["pagination"]["limit"], 100)
            self.assertEqual(p["pagination"]["total"], self.COUNT)
            self.assertTrue(p["pagination"]["partial"])
        self.assertIsNone(pages[0]["pagination"]["previous"])
        self.assertIsNone(pages[-1]["pagination"]["next"])
        self.assertEqual([t["id"] for t in items], everything)

    def test_pagination_limit_7(self):
        everything = [t["id"] for t in self.full_order("created", "asc")["data"]]
        pages, items = collect_pages(self.api, self.url + "?limit=7")
        self.assertEqual(len(pages), math.ceil(self.COUNT / 7))
        self.assertTrue(all(len(p["data"]) == 7 for p in pages[:-1]))
        self.assertEqual(len(pages[-1]["data"]), self.COUNT % 7)
        ids = [t["id"] for t in items]
        self.assertEqual(len(ids), len(set(ids)), "no repeats")
        self.assertEqual(ids, everything, "no skips, same order")
        self.assertTrue(all(p["pagination"]["total"] == self.COUNT for p in pages))

    def test_pagination_keeps_filters_and_sort(self):
        want = [t["id"] for t in self.query(("name_prefix", "web-"), ("sort", "name"), ("order", "desc"))["data"]]
        pages, items = collect_pages(self.api, self.url + "?name_prefix=web-&sort=name&order=desc&limit=7")
        self.assertEqual([t["id"] for t in items], want)
        self.assertEqual(len(want), 100)
        for p in pages:
            self.assertEqual(p["pagination"]["total"], 100)
            self.assertEqual(p["filters"]["name"], [{"modifier": "prefix", "value": "web-"}])

    def test_limit_is_clamped_to_1000(self):
        page = self.api.ok("GET", self.url + "?limit=5000")
        self.assertEqual(page["pagination"]["limit"], 1000)
        self.assertEqual(len(page["data"]), self.COUNT)
        self.assertIsNone(page["pagination"]["next"])
        self.assertFalse(page["pagination"]["partial"])
        huge = self.api.ok("GET", self.url + "?limit=99999999999999999999999")
        self.assertEqual(huge["pagination"]["limit"], 1000)

    def test_previous_links(self):
        p1 = self.api.ok("GET", self.url + "?limit=7")
        p2 = self.api.ok("GET", p1["pagination"]["next"])
        p3 = self.api.ok("GET", p2["pagination"]["next"])
        ids = lambda p: [t["id"] for t in p["data"]]
        back2 = self.api.ok("GET", p3["pagination"]["previous"])
        self.assertEqual(ids(back2), ids(p2))
        back1 = self.api.ok("GET", back2["pagination"]["previous"])
        self.assertEqual(ids(back1), ids(p1))
        self.assertIsNone(back1["pagination"]["previous"])
        self.assertEqual(ids(self.api.ok("GET", back1["pagination"]["next"])), ids(p2))
        # Walking all the way back from the last page visits everything once.
        pages, _ = collect_pages(self.api, self.url + "?limit=7")
        url, seen = pages[-1]["pagination"]["previous"], ids(pages[-1])
        while url:
            page = self.api.ok("GET", url)
            seen = ids(page) + seen
            url = page["pagination"]["previous"]
        self.assertEqual(seen, [t["id"] for t in self.full_order("created", "asc")["data"]])

    def test_paging_while_the_collection_changes(self):
        # Resources that exist throughout are seen exactly once, whatever
        # is created or removed between pages.
        project = self.create_project("churn")
        url = self.tokens_url(project)
        tokens = [self.api.ok("POST", url, json={"name": "c%02d" % i}, status=201) for i in range(40)]
        doomed = {t["id"] for t in tokens[5:40:4]}
        for sort in ("created", "name"):
            with self.subTest(sort=sort):
                seen, next_url, step = [], url + "?limit=6&sort=" + sort, 0
                while next_url:
                    page = self.api.ok("GET", next_url)
                    seen += [t["id"] for t in page["data"]]
                    next_url = page["pagination"]["next"]
                    # Churn: new tokens, and some removed ahead of and behind the cursor.
                    self.api.ok("POST", url, json={"name": "c%02d-new%d" % (step, step)}, status=201)
                    for t in tokens:
                        if t["id"] in doomed and step % 2 == 0:
                            self.api.delete(t["links"]["self"])
                            doomed.discard(t["id"])
                            break
                    step += 1
                survivors = [t["id"] for t in tokens if t["id"] not in doomed and not self.removed(t)]
                for tid in survivors:
                    self.assertEqual(seen.count(tid), 1, tid)
                self.assertEqual(len(seen), len(set(seen)))

    def removed(self, t):
        return self.api.get(t["links"]["self"]).status_code == 404


# ---------------------------------------------------------------------------


class AccountsAndScopingTest(ServerTestCase):
    """Accounts, projects, members, API keys, and what each caller can see."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin_sub = Subscriber(cls.server)
        cls.addClassCleanup(cls.admin_sub.close)
        cls.bob, cls.bob_key, cls.bob_auth = cls.create_account_with_key("bob")
        cls.carol, cls.carol_key, cls.carol_auth = cls.create_account_with_key("carol")
        cls.proj_a = cls.create_project("A")
        cls.proj_b = cls.create_project("B")
        cls.add_member(cls.proj_a, cls.bob, "readonly")
        cls.add_member(cls.proj_b, cls.bob, "member")
        cls.add_member(cls.proj_b, cls.carol, "owner")
        cls.pkey_b = cls.api.ok("POST", cls.proj_b["links"]["apiKeys"], json={"name": "B key"}, status=201)
        cls.pkey_b_auth = (cls.pkey_b["publicValue"], cls.pkey_b["secretValue"])
        cls.token_a = cls.create_token(project=cls.proj_a, name="in A")
        cls.token_b = cls.create_token(project=cls.proj_b, name="in B")
        cls.token_default = cls.create_token(name="in Default")
        cls.bob_api = cls.server.session(cls.bob_auth)
        cls.carol_api = cls.server.session(cls.carol_auth)
        cls.pkey_api = cls.server.session(cls.pkey_b_auth)

    def test_accounts(self):
        self.assertEqual(self.bob["kind"], "user")
        self.assertEqual(self.bob["state"], "active")
        self.assertEqual(self.bob["actions"], {"deactivate": self.bob["links"]["self"] + "?action=deactivate"})
        # bob sees himself only, and may not create accounts.
        mine = self.bob_api.ok("GET", "/v1/accounts")
        self.assertEqual([a["id"] for a in mine["data"]], [self.bob["id"]])
        self.assertEqual(mine["createTypes"], {})
        self.assert_error(self.bob_api.post("/v1/accounts", json={"name": "eve"}), 403, "PermissionDenied")
        self.assert_error(self.bob_api.get(self.carol["links"]["self"]), 404, "NotFound")

    def test_secret_value_only_in_the_create_answer(self):
        created = self.bob_api.ok("POST", "/v1/apiKeys", json={"name": "bob's second"}, status=201)
        self.assertGreaterEqual(len(created["secretValue"]), 32)
        self.assertTrue(created["publicValue"])
        self.assertEqual(created["accountId"], self.bob["id"])
        for leak in ("secretHash", "secretSalt"):
            self.assertNotIn(leak, created)
        again = self.bob_api.ok("GET", created["links"]["self"])
        self.assertIsNone(again.get("secretValue"))
        self.assertEqual(again["publicValue"], created["publicValue"])
        for page in (self.bob_api.ok("GET", "/v1/apiKeys"), self.api.ok("GET", "/v1/apiKeys?limit=1000")):
            for key in page["data"]:
                self.assertIsNone(key.get("secretValue"), key)
                self.assertNotIn("secretHash", key)
        event = self.admin_sub.wait_for_event(resource_change("apiKey", created["id"]))
        self.assertIsNone(event["data"]["resource"].get("secretValue"))
        # The key works, with the secret from the create answer.
        self.assertEqual(self.server.session((created["publicValue"], created["secretValue"])).get("/v1").status_code,
                         200)
        # bob's keys list shows his keys only.
        owners = {k["accountId"] for k in self.bob_api.ok("GET", "/v1/apiKeys")["data"]}
        self.assertEqual(owners, {self.bob["id"]})

    def test_project_key_sees_only_its_project(self):
        tokens = self.pkey_api.ok("GET", "/v1/registrationTokens")
        self.assertTrue(tokens["data"])
        self.assertEqual({t["projectId"] for t in tokens["data"]}, {self.proj_b["id"]})
        self.assertIn(self.token_b["id"], [t["id"] for t in tokens["data"]])
        self.assertEqual(tokens["pagination"]["total"], self.total(self.tokens_url(self.proj_b)))
        projects = self.pkey_api.ok("GET", "/v1/projects")
        self.assertEqual([p["id"] for p in projects["data"]], [self.proj_b["id"]])
        # For a project key, /v1/<type> is its project's collection: creating works without a path.
        t = self.pkey_api.ok("POST", "/v1/registrationTokens", json={"name": "by project key"}, status=201)
        self.assertEqual(t["projectId"], self.proj_b["id"])
        for url in (self.token_a["links"]["self"], "/v1/registrationTokens/" + self.token_a["id"],
                    self.tokens_url(self.proj_a), self.proj_a["links"]["self"]):
            with self.subTest(url=url):
                self.assert_error(self.pkey_api.get(url), 404, "NotFound")
        self.assert_error(self.pkey_api.get("/v1/registrationTokens",
                                            headers={"X-API-Project-Id": self.proj_a["id"]}), 404, "NotFound")
        # A project key manages no members and no accounts.
        self.assert_error(self.pkey_api.post(self.proj_b["links"]["projectMembers"],
                                             json={"accountId": self.carol["id"], "role": "member"}), 403)

    def test_account_key_reaches_each_project(self):
        in_a = self.bob_api.ok("GET", self.tokens_url(self.proj_a))
        self.assertEqual([t["id"] for t in in_a["data"]], [self.token_a["id"]])
        in_b = self.bob_api.ok("GET", self.tokens_url(self.proj_b))
        self.assertIn(self.token_b["id"], [t["id"] for t in in_b["data"]])
        self.assertEqual({t["projectId"] for t in in_b["data"]}, {self.proj_b["id"]})
        by_header = self.bob_api.ok("GET", "/v1/registrationTokens", headers={"X-API-Project-Id": self.proj_a["id"]})
        self.assertEqual([t["id"] for t in by_header["data"]], [self.token_a["id"]])
        everywhere = self.bob_api.ok("GET", "/v1/registrationTokens?limit=1000")
        self.assertEqual({t["projectId"] for t in everywhere["data"]}, {self.proj_a["id"], self.proj_b["id"]})
        projects = self.bob_api.ok("GET", "/v1/projects")
        self.assertEqual(sorted(p["id"] for p in projects["data"]), sorted([self.proj_a["id"], self.proj_b["id"]]))
        # Creating through the header, as a member of B.
        t = self.bob_api.ok("POST", "/v1/registrationTokens", json={"name": "bob via header"}, status=201,
                            headers={"X-API-Project-Id": self.proj_b["id"]})
        self.assertEqual(t["projectId"], self.proj_b["id"])
        self.assertEqual(t["links"]["self"], self.tokens_url(self.proj_b) + "/" + t["id"])
        # Without path or header, a project-scoped create needs projectId.
        self.assert_error(self.bob_api.post("/v1/registrationTokens", json={}), 422, "MissingRequired", "projectId")

    def test_invisible_project_answers_404_like_a_missing_one(self):
        missing = self.bob_api.get("/v1/registrationTokens/1t999999")
        self.assert_error(missing, 404, "NotFound")
        hidden = self.token_default
        by_path = hidden["links"]["self"]
        flat = self.server.url + "/v1/registrationTokens/" + hidden["id"]
        calls = [
            ("GET", by_path, {}), ("GET", flat, {}),
            ("PUT", by_path, {"json": {"name": "mine"}}), ("PUT", flat, {"json": {"name": "mine"}}),
            ("DELETE", by_path, {}), ("DELETE", flat, {}),
            ("POST", by_path + "?action=deactivate", {}), ("POST", flat + "?action=deactivate", {}),
            ("GET", self.default_project["links"]["self"], {}),
            ("GET", self.tokens_url(), {}),
            ("POST", self.tokens_url(), {"json": {}}),
            ("GET", self.default_project["links"]["projectMembers"], {}),
            ("GET", "/v1/registrationTokens", {"headers": {"X-API-Project-Id": self.default_project["id"]}}),
            ("GET", "/v1/projects/1p999999/registrationTokens", {}),
        ]
        for method, url, kw in calls:
            with self.subTest(method=method, url=url):
                r = self.bob_api.request(method, url, **kw)
                self.assertEqual(r.status_code, 404, r.text)
                self.assertEqual(r.json(), missing.json())
        # Nothing happened to it.
        still = self.api.ok("GET", by_path)
        self.assertEqual((still["state"], still["name"]), ("active", "in Default"))
        # Naming the hidden project in the body is refused exactly like naming a missing one.
        a = self.bob_api.post("/v1/registrationTokens", json={"projectId": self.default_project["id"]})
        b = self.bob_api.post("/v1/registrationTokens", json={"projectId": "1p999999"})
        self.assertEqual((a.status_code, a.json()), (b.status_code, b.json()))

    def test_readonly_member_reads_but_cannot_write(self):
        t = self.bob_api.ok("GET", self.token_a["links"]["self"])
        self.assertEqual(t["token"], self.token_a["token"])
        self.assertNotIn("update", t["links"])
        self.assertNotIn("remove", t["links"])
        self.assertEqual(t["actions"], {})
        page = self.bob_api.ok("GET", self.tokens_url(self.proj_a))
        self.assertEqual(page["createTypes"], {})
        self.assert_error(self.bob_api.post(self.tokens_url(self.proj_a), json={}), 403, "PermissionDenied")
        self.assert_error(self.bob_api.put(t["links"]["self"], json={"name": "x"}), 403, "PermissionDenied")
        self.assert_error(self.bob_api.delete(t["links"]["self"]), 403, "PermissionDenied")
        self.assert_error(self.bob_api.post(t["links"]["self"] + "?action=deactivate"), 403, "PermissionDenied")
        self.assertEqual(self.api.ok("GET", t["links"]["self"])["state"], "active")
        # As a member of B, bob may write there.
        tb = self.bob_api.ok("GET", self.token_b["links"]["self"])
        self.assertEqual(tb["links"]["update"], tb["links"]["self"])
        self.assertEqual(tb["links"]["remove"], tb["links"]["self"])
        self.assertIn("deactivate", tb["actions"])
        mine = self.create_token(client=self.bob_api, project=self.proj_b, name="bob's")
        self.assertEqual(mine["state"], "active")
        self.bob_api.ok("DELETE", mine["links"]["remove"])

    def test_owner_manages_members_member_cannot(self):
        dave, _, _ = self.create_account_with_key("dave")
        members_b = self.proj_b["links"]["projectMembers"]
        # bob is a member of B, not an owner.
        self.assert_error(self.bob_api.post(members_b, json={"accountId": dave["id"], "role": "readonly"}), 403,
                          "PermissionDenied")
        listed = self.bob_api.ok("GET", members_b)
        self.assertTrue(all("update" not in m["links"] and "remove" not in m["links"] for m in listed["data"]))
        self.assertEqual(listed["createTypes"], {})
        # carol owns B.
        m = self.carol_api.ok("POST", members_b, json={"accountId": dave["id"], "role": "readonly"}, status=201)
        self.assertEqual((m["role"], m["accountId"], m["projectId"]), ("readonly", dave["id"], self.proj_b["id"]))
        self.assert_error(self.bob_api.put(m["links"]["self"], json={"role": "owner"}), 403, "PermissionDenied")
        self.assert_error(self.bob_api.delete(m["links"]["self"]), 403, "PermissionDenied")
        self.assert_error(self.carol_api.post(members_b, json={"accountId": dave["id"], "role": "member"}), 409,
                          "Conflict")
        up = self.carol_api.ok("PUT", m["links"]["update"], json={"role": "member"})
        self.assertEqual(up["role"], "member")
        gone = self.carol_api.ok("DELETE", m["links"]["remove"])
        self.assertEqual(gone["state"], "removed")
        # carol cannot manage A, where she is nobody.
        self.assert_error(self.carol_api.post(self.proj_a["links"]["projectMembers"],
                                              json={"accountId": dave["id"], "role": "readonly"}), 404)
        # The last owner stays.
        carol_membership = [x for x in self.carol_api.ok("GET", members_b)["data"]
                            if x["accountId"] == self.carol["id"]][0]
        self.assert_error(self.carol_api.delete(carol_membership["links"]["self"]), 409, "Conflict")
        self.assert_error(self.carol_api.put(carol_membership["links"]["self"], json={"role": "member"}), 409,
                          "Conflict")

    def test_subscribe_is_scoped_to_the_project(self):
        a_only = Subscriber(self.server, auth=self.bob_auth, path="/v1/projects/%s/subscribe" % self.proj_a["id"])
        self.addCleanup(a_only.close)
        b_key = Subscriber(self.server, auth=self.pkey_b_auth)
        self.addCleanup(b_key.close)
        bob_all = Subscriber(self.server, auth=self.bob_auth)
        self.addCleanup(bob_all.close)
        in_b = self.create_token(project=self.proj_b, name="event in B")
        in_default = self.create_token(name="event in Default")
        # The admin sees both settle: their events have been published.
        for t in (in_b, in_default):
            self.admin_sub.wait_for_event(resource_change("registrationToken", t["id"], state="active"))
        in_a = self.create_token(project=self.proj_a, name="event in A")
        got = a_only.wait_for_event(resource_change("registrationToken", in_a["id"], state="active"))
        self.assertEqual(got["data"]["resource"]["links"]["self"], in_a["links"]["self"])
        # bob is readonly in A: the event shows what his GET shows.
        self.assertEqual(got["data"]["resource"]["actions"], {})
        self.assertNotIn("update", got["data"]["resource"]["links"])
        b_key.wait_for_event(resource_change("registrationToken", in_b["id"], state="active"))
        bob_all.wait_for_event(resource_change("registrationToken", in_a["id"], state="active"))
        bob_all.wait_for_event(resource_change("registrationToken", in_b["id"], state="active"))

        def projects_seen(sub):
            return {m["data"]["resource"].get("projectId") for m in sub.events(resource_change("registrationToken"))}

        self.assertEqual(projects_seen(a_only), {self.proj_a["id"]})
        self.assertEqual(projects_seen(b_key), {self.proj_b["id"]})
        self.assertEqual(projects_seen(bob_all), {self.proj_a["id"], self.proj_b["id"]})
        # A project bob cannot see is no subscribe URL for him.
        with self.assertRaises(websocket.WebSocketBadStatusException) as e:
            Subscriber(self.server, auth=self.bob_auth,
                       path="/v1/projects/%s/subscribe" % self.default_project["id"])
        self.assertEqual(e.exception.status_code, 404)

    def test_api_key_expiring_in_the_past_is_refused(self):
        for past in ("2000-01-01T00:00:00Z", now_ms() - 1000):
            with self.subTest(expiresAt=past):
                self.assert_error(self.bob_api.post("/v1/apiKeys", json={"expiresAt": past}), 422, None, "expiresAt")
        self.assert_error(self.bob_api.post("/v1/apiKeys", json={"expiresAt": "next tuesday"}), 422, "InvalidType",
                          "expiresAt")

    def test_expired_key_is_401(self):
        unknown = self.server.session(("no-such-key", "x")).get("/v1")
        key = self.bob_api.ok("POST", "/v1/apiKeys", json={"expiresAt": now_ms() + 2000}, status=201)
        client = self.server.session((key["publicValue"], key["secretValue"]))
        self.assertEqual(client.get("/v1").status_code, 200)
        wait_for(lambda: client.get("/v1").status_code == 401, timeout=10, message="the key to expire")
        r = client.get("/v1")
        self.assertEqual(r.json(), unknown.json())
        self.assertTrue(r.headers["WWW-Authenticate"].startswith("Basic"))

    def test_deactivated_key_and_account_are_401(self):
        eve, eve_key, eve_auth = self.create_account_with_key("eve")
        eve_api = self.server.session(eve_auth)
        self.assertEqual(eve_api.get("/v1").status_code, 200)
        off = self.api.ok("POST", eve_key["actions"]["deactivate"])
        self.assertEqual(off["state"], "inactive")
        self.assert_error(eve_api.get("/v1"), 401, "Unauthorized")
        self.api.ok("POST", off["actions"]["activate"])
        self.assertEqual(eve_api.get("/v1").status_code, 200)
        self.api.ok("POST", eve["actions"]["deactivate"])
        self.assert_error(eve_api.get("/v1"), 401, "Unauthorized")
        with self.assertRaises(websocket.WebSocketBadStatusException) as e:
            Subscriber(self.server, auth=eve_auth)
        self.assertEqual(e.exception.status_code, 401)

    def test_subscriptions_end_when_access_ends(self):
        # Each subscription is open when its access ends, and must close
        # (1008, within two 5 s pings), not go on seeing the project.
        frank, frank_key, frank_auth = self.create_account_with_key("frank")
        grace, _, grace_auth = self.create_account_with_key("grace")
        heidi, heidi_key, heidi_auth = self.create_account_with_key("heidi")
        proj = self.create_project("revoked-" + str(now_ms()))
        frank_member = self.add_member(proj, frank, "member")
        self.add_member(proj, grace, "member")
        self.add_member(proj, heidi, "member")
        path = "/v1/projects/%s/subscribe" % proj["id"]
        subs = {name: Subscriber(self.server, auth=auth, path=path)
                for name, auth in (("frank", frank_auth), ("grace", grace_auth), ("heidi", heidi_auth))}
        for sub in subs.values():
            self.addCleanup(sub.close)
        self.api.ok("DELETE", frank_member["links"]["self"])   # frank leaves the project
        self.api.ok("POST", grace["actions"]["deactivate"])    # grace's account is deactivated
        self.api.ok("POST", heidi_key["actions"]["deactivate"])  # heidi's key is revoked
        for name in ("frank", "grace", "heidi"):
            with self.subTest(name):
                self.assertEqual(subs[name].wait_closed(timeout=15), 1008)

    def test_removed_project_key_is_401(self):
        c = self.create_project("short-lived")
        key = self.api.ok("POST", c["links"]["apiKeys"], json={}, status=201)
        client = self.server.session((key["publicValue"], key["secretValue"]))
        self.assertEqual(client.get("/v1/registrationTokens").status_code, 200)
        self.api.ok("DELETE", c["links"]["remove"])
        self.assert_error(client.get("/v1/registrationTokens"), 401, "Unauthorized")


# ---------------------------------------------------------------------------


class ErrorsTest(ServerTestCase):
    """Every kind of refusal, each with its status, code and fieldName."""

    def token_total(self):
        return self.total("/v1/registrationTokens")

    def test_malformed_json_is_400(self):
        for body in (b"{not json", b'{"name": "x"', b"[1, 2]", b'"text"', b"{}{}"):
            with self.subTest(body=body):
                self.assert_error(self.api.post(self.tokens_url(), data=body), 400, "InvalidBodyContent")

    def test_empty_body_is_an_empty_object(self):
        r = self.api.post(self.tokens_url(), data=b"")
        self.assertEqual(r.status_code, 201, r.text)
        # And Content-Type does not matter.
        r = self.api.post(self.tokens_url(), data=b'{"name": "plain"}', headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status_code, 201, r.text)
        self.assertEqual(r.json()["name"], "plain")

    def test_wrong_type_is_422(self):
        self.assert_error(self.api.post(self.tokens_url(), json={"ttl": "soon"}), 422, "InvalidType", "ttl")
        self.assert_error(self.api.post(self.tokens_url(), json={"name": 5}), 422, "InvalidType", "name")
        self.assert_error(self.api.post(self.tokens_url(), json={"ttl": 1.5}), 422, "InvalidType", "ttl")

    def test_missing_required_is_422(self):
        account = self.api.ok("POST", "/v1/accounts", json={"name": "req"}, status=201)
        members = self.default_project["links"]["projectMembers"]
        self.assert_error(self.api.post(members, json={"role": "member"}), 422, "MissingRequired", "accountId")
        self.assert_error(self.api.post(members, json={"accountId": account["id"]}), 422, "MissingRequired", "role")

    def test_too_long_and_out_of_range_are_422(self):
        self.assert_error(self.api.post(self.tokens_url(), json={"name": "x" * 256}), 422, "MaxLimitExceeded", "name")
        self.assertEqual(self.api.post(self.tokens_url(), json={"name": "é" * 255}).status_code, 201)
        self.assert_error(self.api.post(self.tokens_url(), json={"ttl": -1}), 422, "MinLimitExceeded", "ttl")
        self.assert_error(self.api.post(self.tokens_url(), json={"ttl": 10 ** 12}), 422, "MaxLimitExceeded", "ttl")

    def test_invalid_option_is_422(self):
        account = self.api.ok("POST", "/v1/accounts", json={"name": "king"}, status=201)
        self.assert_error(self.api.post(self.default_project["links"]["projectMembers"],
                                        json={"accountId": account["id"], "role": "king"}), 422, "InvalidOption",
                          "role")
        self.assert_error(self.api.post("/v1/accounts", json={"name": "x", "kind": "emperor"}), 422, "InvalidOption",
                          "kind")

    def test_unknown_path_is_404(self):
        for path in ("/v1/nothing", "/nothing", "/v2", "/v1/registrationTokens/1t999999",
                     "/v1/registrationTokens/garbage", "/v1/registrationTokens/1t01", "/v1/projects/1p1/nothing",
                     "/v1/projects/1p1/accounts", "/v1/projects/1t1/registrationTokens",
                     "/v1/registrationTokens/1t1/nothing", "/v1/schemas/a/b"):
            with self.subTest(path=path):
                self.assert_error(self.api.get(path), 404, "NotFound")

    def test_wrong_method_is_405(self):
        for method, path in (("PATCH", "/v1/registrationTokens"), ("DELETE", "/v1/registrationTokens"),
                             ("PUT", "/v1/registrationTokens"), ("PUT", "/v1"), ("POST", "/v1/schemas"),
                             ("POST", "/healthz"), ("DELETE", "/v1/cacerts"), ("POST", "/metrics")):
            with self.subTest(method=method, path=path):
                self.assert_error(self.api.request(method, path), 405, "MethodNotAllowed")
        t = self.create_token(settle=False)
        self.assert_error(self.api.post(t["links"]["self"]), 405, "MethodNotAllowed")
        self.assert_error(self.api.request("PATCH", t["links"]["self"]), 405, "MethodNotAllowed")

    def test_bad_credentials_are_401_with_the_same_body(self):
        access, secret = self.server.admin
        anon = self.server.session(auth=False)
        answers = {
            "no credentials": anon.get("/v1/registrationTokens"),
            "unknown access key": anon.get("/v1/registrationTokens", auth=("unknown" + access, secret)),
            "wrong secret": anon.get("/v1/registrationTokens", auth=(access, secret + "x")),
            "empty secret": anon.get("/v1/registrationTokens", auth=(access, "")),
            "very long key": anon.get("/v1/registrationTokens", auth=("k" * 500, secret)),
            "garbled header": anon.get("/v1/registrationTokens", headers={"Authorization": "Basic !!!"}),
            "no colon": anon.get("/v1/registrationTokens",
                                 headers={"Authorization": "Basic " + "bm9jb2xvbg=="}),
            "bearer": anon.get("/v1/registrationTokens", headers={"Authorization": "Bearer " + secret}),
        }
        bodies = set()
        for what, r in answers.items():
            with self.subTest(what=what):
                self.assert_error(r, 401, "Unauthorized")
                self.assertTrue(r.headers.get("WWW-Authenticate", "").startswith("Basic"), r.headers)
                bodies.add(r.text)
        self.assertEqual(len(bodies), 1, bodies)
        self.assertEqual(answers["unknown access key"].text, answers["wrong secret"].text)
        self.assertEqual(answers["unknown access key"].headers["WWW-Authenticate"],
                         answers["wrong secret"].headers["WWW-Authenticate"])

    def test_body_over_one_mib_is_413(self):
        before = self.token_total()
        body = b'{"name": "' + b"x" * (MIB) + b'"}'
        r = self.api.post(self.tokens_url(), data=body)
        self.assert_error(r, 413, "RequestTooLarge")
        # Exactly 1 MiB is within the limit: refused for what it says, not for its size.
        filler = MIB - len(b'{"name": "x", "description": ""}')
        exact = b'{"name": "x", "description": "' + b"y" * filler + b'"}'
        self.assertEqual(len(exact), MIB)
        self.assert_error(self.api.post(self.tokens_url(), data=exact), 422, "MaxLimitExceeded", "description")
        self.assertEqual(self.token_total(), before)

    def test_announced_body_over_one_mib_is_413_before_it_is_sent(self):
        with self.server.raw_tls_socket() as s:
            access, secret = self.server.admin
            s.sendall(("POST /v1/registrationTokens HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
                       "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" %
                       (self.server.port, basic_auth_header(access, secret), MIB + 1)).encode())
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = s.recv(65536)
                if not chunk:
                    break
                response += chunk
            self.assertTrue(response.startswith(b"HTTP/1.1 413 "), response[:200])
            self.assertIn(b"\r\nx-api-schemas: %s/v1/schemas\r\n" % self.server.url.encode(), response.lower())

    def test_invalid_utf8_is_refused_and_nothing_stored(self):
        before = self.token_total()
        for body in (b'{"name": "\xff\xfe"}', b'{"name": "\xc0\xaf"}', b'{"name": "\xed\xa0\x80"}',
                     b'{"name": "caf\xe9"}', b'{"name": "\\ud800"}', b'{"\xff": 1}'):
            with self.subTest(body=body):
                r = self.api.post(self.tokens_url(), data=body)
                self.assertIn(r.status_code, (400, 422), r.text)
                self.assertIn(r.json()["code"], ("InvalidBodyContent", "InvalidCharacters"))
        self.assertEqual(self.token_total(), before)

    def test_nul_and_control_characters_are_refused_and_nothing_stored(self):
        before = self.token_total()
        self.assert_error(self.api.post(self.tokens_url(), json={"name": "a\u0000b"}), 422, "InvalidCharacters",
                          "name")
        self.assert_error(self.api.post(self.tokens_url(), json={"description": "bell\u0007"}), 422,
                          "InvalidCharacters", "description")
        r = self.api.post(self.tokens_url(), json={"name\u0000": "x"})
        self.assertIn(r.status_code, (400, 422), r.text)
        # A raw NUL byte is not JSON at all.
        self.assert_error(self.api.post(self.tokens_url(), data=b'{"name": "a\x00b"}'), 400, "InvalidBodyContent")
        self.assertEqual(self.token_total(), before)
        # And an update cannot sneak one in either.
        t = self.create_token(name="clean")
        self.assert_error(self.api.put(t["links"]["update"], json={"name": "dirty\u0000"}), 422,
                          "InvalidCharacters", "name")
        self.assertEqual(self.api.ok("GET", t["links"]["self"])["name"], "clean")

    def test_slow_headers_are_cut_off_by_the_deadline(self):
        sock = self.server.raw_tls_socket(timeout=40)
        self.addCleanup(sock.close)
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
        result = {}
        done = threading.Event()

        def trickle():
            started = time.monotonic()
            try:
                for byte in request:
                    sock.sendall(bytes([byte]))
                    # One byte a second, unless the server hangs up first.
                    readable, _, _ = select.select([sock], [], [], 1.0)
                    if readable:
                        result["data"] = sock.recv(4096)
                        break
            except (OSError, ssl.SSLError) as e:
                result["error"] = repr(e)
            result["after"] = time.monotonic() - started
            done.set()

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        # Meanwhile the server keeps answering everyone else.
        answered, slowest = 0, 0.0
        other = self.server.session()
        while not done.is_set():
            started = time.monotonic()
            r = other.get("/healthz", timeout=5)
            self.assertEqual(r.status_code, 200)
            slowest = max(slowest, time.monotonic() - started)
            answered += 1
            done.wait(0.25)
            if time.monotonic() - started > 40:
                break
        thread.join(5)
        self.assertTrue(done.is_set(), "the trickling client was never cut off")
        self.assertLessEqual(result["after"], 25, result)
        self.assertGreaterEqual(result["after"], 10, "cut off by the deadline, not at once: %r" % result)
        self.assertFalse(result.get("data"), "no answer is owed to a request that never arrived: %r" % result)
        self.assertGreaterEqual(answered, 10)
        self.assertLess(slowest, 5)


# ---------------------------------------------------------------------------


class RateLimitTest(ServerTestCase):
    """--rate-limit 30: headers on every authenticated response, 429 past the limit."""

    server_args = ["--rate-limit", "30"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.keys = [cls.api.ok("POST", "/v1/apiKeys", json={"name": "k%d" % i}, status=201) for i in range(4)]

    def client(self, n):
        return self.server.session((self.keys[n]["publicValue"], self.keys[n]["secretValue"]))

    def test_headers_count_down(self):
        c = self.client(0)
        seen = []
        for _ in range(5):
            r = c.get("/v1")
            self.assertEqual(r.status_code, 200)
            self.assertEqual(r.headers["X-RateLimit-Limit"], "30")
            seen.append(int(r.headers["X-RateLimit-Remaining"]))
            reset = int(r.headers["X-RateLimit-Reset"])
            self.assertGreaterEqual(reset, int(time.time()) - 1)
            self.assertLessEqual(reset, int(time.time()) + 61)
        self.assertEqual(seen[0], 29)
        self.assertEqual(seen, sorted(seen, reverse=True))
        self.assertLessEqual(seen[-1], 26)
        # Errors of an authenticated caller carry them too.
        r = c.get("/v1/nothing")
        self.assertEqual(r.status_code, 404)
        self.assertIn("X-RateLimit-Remaining", r.headers)
        # Unauthenticated answers have no bucket to tell about.
        self.assertNotIn("X-RateLimit-Limit", self.server.session(auth=False).get("/v1").headers)

    def test_opening_subscriptions_counts_against_the_limit(self):
        auth = (self.keys[3]["publicValue"], self.keys[3]["secretValue"])
        for n in range(60):
            try:
                Subscriber(self.server, auth=auth).close()
            except websocket.WebSocketBadStatusException as e:
                self.assertEqual(e.status_code, 429)
                break
        else:
            self.fail("never limited")
        self.assertGreaterEqual(n, 29)
        self.assertLessEqual(n, 32)

    def test_429_after_the_bucket_empties(self):
        c = self.client(1)
        for n in range(60):
            r = c.get("/v1")
            if r.status_code == 429:
                break
            self.assertEqual(r.status_code, 200)
        self.assertEqual(r.status_code, 429, "never limited")
        self.assertGreaterEqual(n, 29)
        self.assertLessEqual(n, 32)
        body = self.assert_error(r, 429, "RateLimited")
        self.assertTrue(body["message"])
        retry = int(r.headers["Retry-After"])
        self.assertGreaterEqual(retry, 1)
        self.assertLessEqual(retry, 60)
        self.assertEqual(r.headers["X-RateLimit-Remaining"], "0")
        self.assertEqual(r.headers["X-RateLimit-Limit"], "30")
        # Other credentials have their own bucket.
        self.assertEqual(self.client(2).get("/v1").status_code, 200)
        # After Retry-After, a request fits again.
        started = time.monotonic()
        wait_for(lambda: c.get("/v1").status_code == 200, timeout=retry + 5, interval=0.25,
                 message="the bucket to refill")
        self.assertGreaterEqual(time.monotonic() - started, retry - 1.5)


class WebSocketQuotaTest(ServerTestCase):
    """--max-websockets-per-account 3: an account's keys share three open subscriptions and streams."""

    server_args = ["--max-websockets-per-account", "3"]

    def key_auth(self, **fields):
        key = self.api.ok("POST", "/v1/apiKeys", json=fields, status=201)
        return (key["publicValue"], key["secretValue"])

    def subscribe(self, auth):
        s = Subscriber(self.server, auth=auth)
        self.addCleanup(s.close)
        return s

    def opened(self, open_it):
        """True when open_it() opens; False while the quota refuses it with 429."""
        try:
            open_it()
            return True
        except websocket.WebSocketBadStatusException as e:
            self.assertEqual(e.status_code, 429)
            return False

    def test_an_accounts_keys_share_the_quota_and_a_closed_socket_gives_its_slot_back(self):
        account = self.api.ok("POST", "/v1/accounts", json={"name": "quota-" + os.urandom(3).hex()}, status=201)
        first, second = self.key_auth(accountId=account["id"]), self.key_auth(accountId=account["id"])
        held = [self.subscribe(first), self.subscribe(first), self.subscribe(second)]
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        for auth in (first, second):
            with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
                Subscriber(self.server, auth=auth).close()
            self.assertEqual(refused.exception.status_code, 429)
            r = self.server.session(auth).get("/v1/subscribe", headers=upgrade)
            body = self.assert_error(r, 429, "RateLimited")
            self.assertIn("3 streams and subscriptions", body["message"])
            self.assertEqual(r.headers["Retry-After"], "5")
        # The limit is the account's: another account, and the admin, are not held up.
        self.subscribe(None)
        other = self.api.ok("POST", "/v1/accounts", json={"name": "quota-" + os.urandom(3).hex()}, status=201)
        self.subscribe(self.key_auth(accountId=other["id"]))
        # A closed subscription's slot is free again once the server has seen the close.
        held.pop().close()
        wait_for(lambda: self.opened(lambda: self.subscribe(first)), timeout=10, interval=0.1,
                 message="a slot after a close")
        with self.assertRaises(websocket.WebSocketBadStatusException):
            Subscriber(self.server, auth=second).close()


    def test_a_ticket_refused_for_the_quota_opens_once_there_is_room(self):
        account = self.api.ok("POST", "/v1/accounts", json={"name": "quota-" + os.urandom(3).hex()}, status=201)
        auth = self.key_auth(accountId=account["id"])
        held = [self.subscribe(auth) for _ in range(3)]
        ticket = self.server.session(auth).post("/v1/subscribe").json()
        self.assertEqual(ticket["type"], "subscribeAccess")

        def open_with_ticket():
            ws = websocket.create_connection(
                "wss://127.0.0.1:%d/v1/subscribe?token=%s" % (self.server.port, ticket["token"]), timeout=10,
                sslopt={"ca_certs": self.server.ca_file, "cert_reqs": ssl.CERT_REQUIRED})
            self.addCleanup(ws.close)

        with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
            open_with_ticket()
        self.assertEqual(refused.exception.status_code, 429)
        held.pop().close()
        wait_for(lambda: self.opened(open_with_ticket), timeout=10, interval=0.1,
                 message="the ticket to open once a slot is free")
        # Used once, it opens nothing more, room or not.
        held.pop().close()

        def replay_refused():
            try:
                open_with_ticket()
            except websocket.WebSocketBadStatusException as e:
                if e.status_code == 429:
                    return False  # the close above not yet seen
                self.assertEqual(e.status_code, 401)
                return True
            self.fail("a used ticket opened a second subscription")
        wait_for(replay_refused, timeout=10, interval=0.1, message="the replay refused with 401")


class RateLimitOffTest(ServerTestCase):
    """--rate-limit 0 turns limiting off: no 429 and no X-RateLimit headers."""

    server_args = ["--rate-limit", "0"]

    def test_no_limit_and_no_headers(self):
        for _ in range(150):
            r = self.api.get("/v1")
            self.assertEqual(r.status_code, 200)
            self.assertFalse([h for h in r.headers if h.lower().startswith("x-ratelimit")], r.headers)


# ---------------------------------------------------------------------------


class RestartTest(unittest.TestCase):
    """Durability across SIGTERM and kill -9, and a graceful shutdown."""

    def start(self, args=NO_RATE_LIMIT):
        server = ServerProcess(extra_args=args)
        server.__enter__()
        self.addCleanup(server.cleanup)
        return server

    def test_sigterm_then_restart_keeps_everything(self):
        server = self.start()
        api = server.session()
        ca_before = api.get("/v1/cacerts", auth=None).content
        admin_before = server.admin
        project = api.ok("GET", "/v1/projects?name=Default")["data"][0]
        account = api.ok("POST", "/v1/accounts", json={"name": "durable"}, status=201)
        key = api.ok("POST", "/v1/apiKeys", json={"accountId": account["id"]}, status=201)
        other = api.ok("POST", "/v1/projects", json={"name": "durable project"}, status=201)
        api.ok("POST", other["links"]["projectMembers"], json={"accountId": account["id"], "role": "member"},
               status=201)
        tokens = [api.wait_settled(api.ok("POST", p["links"]["registrationTokens"], json={"name": "t%d" % i},
                                          status=201)["links"]["self"]) for i, p in enumerate((project, other))]
        inactive = api.ok("POST", tokens[0]["actions"]["deactivate"])
        tokens[0] = inactive

        self.assertEqual(server.stop(signal.SIGTERM), 0, server.log_tail())
        server.wait_for_log(r"received SIGTERM")
        server.restart()

        self.assertEqual(server.admin, admin_before, "the admin key file is not rewritten")
        self.assertEqual(api.get("/v1/cacerts", auth=None).content, ca_before)
        self.assertEqual(api.ok("GET", "/v1/accounts/" + account["id"])["name"], "durable")
        user = server.session((key["publicValue"], key["secretValue"]))
        self.assertEqual(user.ok("GET", "/v1/projects")["data"][0]["id"], other["id"])
        for before in tokens:
            after = api.ok("GET", "/v1/registrationTokens/" + before["id"])
            self.assertEqual(after["state"], before["state"])
            self.assertEqual(after["token"], before["token"])
        active = api.ok("GET", "/v1/registrationTokens/" + tokens[1]["id"])
        self.assertEqual(active["token"], tokens[1]["token"])
        self.assertEqual(active["registrationUrl"], server.url + "/v1/scripts/" + tokens[1]["token"])
        self.assertIn(sha256_hex(ca_before), active["command"])
        self.assertEqual(api.get(active["registrationUrl"], auth=None).status_code, 200)

    def test_kill9_right_after_201_keeps_the_token(self):
        server = self.start()
        api = server.session()
        project = api.ok("GET", "/v1/projects?name=Default")["data"][0]
        created = [api.ok("POST", project["links"]["registrationTokens"], json={"name": "k%d" % i}, status=201)
                   for i in range(5)]
        self.assertEqual(server.kill9(), -signal.SIGKILL)
        server.start()
        for t in created:
            settled = api.wait_settled("/v1/registrationTokens/" + t["id"])
            self.assertEqual(settled["name"], t["name"])
            self.assertEqual(settled["state"], "active")
            self.assertTrue(settled["token"])
        self.assertEqual(api.get("/v1").status_code, 200)

    def test_sigterm_closes_subscribers_with_1001(self):
        server = self.start()
        sub = Subscriber(server)
        self.addCleanup(sub.close)
        # The subscription is live before the signal.
        t = server.session().ok("POST", "/v1/projects/1p1/registrationTokens", json={}, status=201)
        sub.wait_for_event(resource_change("registrationToken", t["id"]))
        idle = server.raw_tls_socket()
        self.addCleanup(idle.close)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        self.assertEqual(sub.wait_closed(timeout=10), 1001)
        self.assertEqual(server.stop(timeout=15), 0, server.log_tail())
        self.assertLess(time.monotonic() - started, 10, "shutdown waited for the idle connection's timeout")
        self.assertEqual(idle.recv(1), b"")


def setUpModule():
    server_binary()  # fail early and clearly without a build


if __name__ == "__main__":
    unittest.main(verbosity=2)
