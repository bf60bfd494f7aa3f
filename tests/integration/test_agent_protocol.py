#!/usr/bin/python3
"""The agent side of paddock-server, spoken by a client of our own making:
Python `requests` registers, python3-websocket plays the control connection
(docs/agent-protocol.md). Covers what a real agent never sends: malformed,
deeply nested and oversized messages, and a second machine registering with
the identity of a connected one.
"""

import json
import unittest
import uuid

from paddock_harness import ServerProcess, Subscriber, wait_for

MIB = 1024 * 1024
POLICY_ERROR = 1008
TOO_BIG = 1009


class AgentProtocolTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = ServerProcess(extra_args=["--rate-limit", "0"])
        cls.server.__enter__()
        cls.addClassCleanup(cls.server.cleanup)
        cls.api = cls.server.session()
        project = cls.api.ok("GET", "/v1/projects?name=Default")["data"][0]
        token = cls.api.ok("POST", project["links"]["registrationTokens"], json={}, status=201)
        cls.token = cls.api.wait_settled(token["links"]["self"])

    def register(self, machine_id, hostname="proto"):
        return self.api.post(self.token["registrationUrl"], auth=False,
                             json={"hostname": hostname, "machineId": machine_id})

    def new_host(self):
        r = self.register(uuid.uuid4().hex)
        self.assertEqual(r.status_code, 201, r.text)
        return r.json()

    def connect(self, reg, instance=None):
        cred = reg["credential"]
        conn = Subscriber(self.server, auth=(cred["accessKey"], cred["secretKey"]), path="/v1/connect", query="",
                          headers={"X-Paddock-Agent-Instance": instance or uuid.uuid4().hex})
        self.addCleanup(conn.close)
        self.assertEqual(conn.messages[0]["type"], "welcome", conn.messages)
        return conn

    def host(self, reg):
        return self.api.ok("GET", "/v1/hosts/" + reg["hostId"])

    def wait_state(self, reg, state):
        return wait_for(lambda: self.host(reg)["state"] == state and self.host(reg), timeout=10,
                        message="host %s %s" % (reg["hostId"], state))

    def test_a_well_formed_report_is_stored(self):
        reg = self.new_host()
        conn = self.connect(reg)
        self.wait_state(reg, "active")
        conn.ws.send(json.dumps({"type": "host", "host": {"os": "Debian GNU/Linux 12", "cpuCount": 3}}))
        wait_for(lambda: self.host(reg).get("cpuCount") == 3, message="the reported cpuCount")
        self.assertFalse(conn._closed.is_set())

    def test_bad_messages_disconnect_that_agent_with_a_reason_and_the_server_carries_on(self):
        deep = '{"type":"host","host":' + "[" * 1000000 + "]" * 1000000 + "}"
        cases = [
            ("not JSON", lambda ws: ws.send("{not json"), "malformed message"),
            ("no type", lambda ws: ws.send('{"host": {}}'), "message without a type"),
            ("unknown type", lambda ws: ws.send('{"type": "bogus"}'), "unknown message type"),
            ("binary frame", lambda ws: ws.send_binary(b'{"type": "host", "host": {}}'), "malformed message"),
            ("a million levels deep", lambda ws: ws.send(deep), "nests deeper than 64 levels"),
            ("bad container", lambda ws: ws.send(json.dumps({"type": "container", "container": {"dockerId": "x"}})),
             "malformed container"),
        ]
        bystander = self.new_host()
        watching = self.connect(bystander)
        for name, send, reason in cases:
            with self.subTest(name):
                reg = self.new_host()
                conn = self.connect(reg)
                self.wait_state(reg, "active")
                send(conn.ws)
                self.assertEqual(conn.wait_closed(), POLICY_ERROR)
                self.assertIn(reason, conn.close_reason)
                self.wait_state(reg, "disconnected")
                # The same agent may come back with good messages.
                again = self.connect(reg)
                self.wait_state(reg, "active")
                again.close()
        # Another agent's connection saw none of it; the server still answers.
        self.assertFalse(watching._closed.is_set())
        self.assertEqual(self.host(bystander)["state"], "active")
        self.assertTrue(self.server.running())

    def test_an_oversized_message_is_refused_by_size(self):
        reg = self.new_host()
        conn = self.connect(reg)
        self.wait_state(reg, "active")
        conn.ws.send(json.dumps({"type": "host", "host": {"os": "x" * (4 * MIB)}}))
        self.assertEqual(conn.wait_closed(), TOO_BIG)
        self.wait_state(reg, "disconnected")
        self.assertTrue(self.server.running())

    def test_registering_with_the_machine_id_of_a_connected_host_is_a_conflict(self):
        machine = uuid.uuid4().hex
        first = self.register(machine, hostname="original")
        self.assertEqual(first.status_code, 201, first.text)
        first = first.json()
        conn = self.connect(first)
        self.wait_state(first, "active")
        uses = self.api.ok("GET", self.token["links"]["self"])["uses"]

        # A clone (same machine id, no state) is refused while the original is connected.
        clone = self.register(machine, hostname="clone")
        self.assertEqual(clone.status_code, 409, clone.text)
        self.assertEqual(clone.json()["code"], "HostConflict")
        self.assertIn(first["hostId"], clone.json()["message"])
        host = wait_for(lambda: self.host(first)["conflict"] and self.host(first), message="the conflict note")
        self.assertIn("registered with this host's machine id", host["conflict"])
        self.assertEqual(host["name"], "original")
        self.assertEqual(self.api.ok("GET", self.token["links"]["self"])["uses"], uses, "a refusal uses nothing")
        # The original keeps its connection and its credential.
        self.assertFalse(conn._closed.is_set())
        conn.close()
        self.wait_state(first, "disconnected")
        self.connect(first).close()

        # Once nobody holds it, the same machine registering again gets its host back.
        self.wait_state(first, "disconnected")
        back = self.register(machine, hostname="original")
        self.assertEqual(back.status_code, 201, back.text)
        self.assertEqual(back.json()["hostId"], first["hostId"])


if __name__ == "__main__":
    unittest.main()
