#!/usr/bin/python3
"""The real paddock-server for process-level tests, and clients to drive it.

Run by /usr/bin/python3 with Debian's ``requests`` and ``websocket``
(python3-websocket) so the clients share no code with the server::

    with ServerProcess(extra_args=["--rate-limit", "0"]) as server:
        api = server.session()                  # admin key, verify=CA
        token = api.ok("POST", "/v1/registrationTokens", json={}, status=201)
        token = api.wait_settled(token["links"]["self"])
        with Subscriber(server) as sub:
            sub.wait_for_event(lambda m: m.get("name") == "ping", timeout=7)
        server.stop()                           # SIGTERM; returns the exit code
        server.restart()                        # same data dir, new port

The binary is ``$PADDOCK_BIN_DIR/server/paddock-server``. The server limits
each key to 100 requests a minute by default: tests that make many requests
pass ``--rate-limit 0``. Temporary directories (data dir and server log) are
removed on exit unless ``PADDOCK_KEEP_TMP`` is set. Nothing here sleeps to
synchronise: every wait polls a condition or waits for an event, with a
timeout.
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import requests
import websocket

START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0

_LISTENING = re.compile(r"listening on (https?)://(127\.0\.0\.1):(\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def server_binary():
    """The paddock-server under test, from $PADDOCK_BIN_DIR (the build directory)."""
    bin_dir = os.environ.get("PADDOCK_BIN_DIR")
    if not bin_dir:
        raise RuntimeError("PADDOCK_BIN_DIR must name the build directory")
    path = os.path.join(bin_dir, "server", "paddock-server")
    if not os.access(path, os.X_OK):
        raise RuntimeError("no executable paddock-server at " + path)
    return path


def wait_for(predicate, timeout=10.0, interval=0.05, message=None):
    """Polls predicate() until it returns something truthy and returns that.

    Raises AssertionError after `timeout` seconds, naming `message` (or the
    predicate) and the last value or exception seen.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as e:  # the condition may not be reachable yet
            last = e
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


def basic_auth_header(access, secret):
    raw = ("%s:%s" % (access, secret)).encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


class ServerProcess:
    """paddock-server on 127.0.0.1, port 0, TLS on, in a data dir of its own.

    A context manager: entering starts the server and waits for its
    ``listening on https://127.0.0.1:PORT`` line; leaving stops it (SIGTERM,
    then SIGKILL) and removes the temporary directory it made. The whole log
    of every run goes to ``.log_file``; ``log_tail()`` is for failure messages.
    """

    def __init__(self, data_dir=None, extra_args=(), env=None):
        self._own_tmp = tempfile.mkdtemp(prefix="paddock-it-")
        self.data_dir = data_dir or os.path.join(self._own_tmp, "data")
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.log_file = os.path.join(self._own_tmp, "server.log")
        self.proc = None
        self.port = None
        self.url = None
        self.runs = 0
        self._reader = None
        self._log_lock = threading.Lock()
        self._log_lines = []
        self._listening = threading.Event()

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def command(self):
        return [server_binary(), "--data-dir", self.data_dir, "--listen", "127.0.0.1:0",
                "--log-level", "debug"] + self.extra_args

    def start(self, timeout=START_TIMEOUT):
        """Starts the server and returns once it listens; raises with the log if it does not."""
        if self.running():
            raise RuntimeError("the server is already running")
        env = dict(os.environ)
        env.update(self.env)
        self.runs += 1
        self._listening.clear()
        self.port = self.url = None
        with open(self.log_file, "a", encoding="utf-8") as f:
            f.write("==== run %d: %s\n" % (self.runs, " ".join(self.command())))
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._reader = threading.Thread(target=self._read_log, args=(self.proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise RuntimeError("paddock-server exited with %s before listening:\n%s" %
                                   (self.proc.returncode, self.log_tail()))
            if time.monotonic() >= deadline:
                self.kill9()
                raise RuntimeError("paddock-server did not listen within %.0fs:\n%s" % (timeout, self.log_tail()))
        return self

    def _read_log(self, proc):
        with open(self.log_file, "a", encoding="utf-8") as log:
            for raw in iter(proc.stdout.readline, b""):
                line = _ANSI.sub("", raw.decode("utf-8", "replace"))
                log.write(line)
                log.flush()
                with self._log_lock:
                    self._log_lines.append(line.rstrip("\n"))
                if not self._listening.is_set():
                    m = _LISTENING.search(line)
                    if m:
                        self.port = int(m.group(3))
                        self.url = "%s://%s:%d" % (m.group(1), m.group(2), self.port)
                        self._listening.set()
        proc.stdout.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends `sig` and waits for the exit; returns the exit code (negative: killed by a signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("paddock-server did not exit within %.0fs of signal %d:\n%s" %
                                     (timeout, sig, self.log_tail()))
        if self._reader:
            self._reader.join(5)
        return self.proc.returncode

    def kill9(self):
        """SIGKILL: no chance to clean up. Returns the exit code (-9)."""
        return self.stop(signal.SIGKILL)

    def restart(self, timeout=START_TIMEOUT):
        """Stops the server if it runs (SIGTERM) and starts it again on the same data dir."""
        if self.running():
            code = self.stop()
            if code != 0:
                raise AssertionError("paddock-server exited with %s on SIGTERM:\n%s" % (code, self.log_tail()))
        return self.start(timeout)

    def cleanup(self):
        try:
            if self.running():
                try:
                    self.stop(timeout=STOP_TIMEOUT)
                except AssertionError:
                    pass
        finally:
            if not os.environ.get("PADDOCK_KEEP_TMP"):
                shutil.rmtree(self._own_tmp, ignore_errors=True)

    # -- what a client needs ----------------------------------------------

    @property
    def ca_file(self):
        return os.path.join(self.data_dir, "tls", "ca.pem")

    @property
    def admin(self):
        """(access key, secret key) of the bootstrap admin key."""
        with open(os.path.join(self.data_dir, "admin-key.json"), encoding="utf-8") as f:
            key = json.load(f)
        return key["accessKey"], key["secretKey"]

    def session(self, auth=None, project=None):
        """A Client for this server: the admin key unless `auth` is given (None-able via auth=False)."""
        return Client(self, self.admin if auth is None else auth, project=project)

    def log(self):
        with self._log_lock:
            return "\n".join(self._log_lines)

    def log_tail(self, lines=60):
        with self._log_lock:
            return "\n".join(self._log_lines[-lines:])

    def wait_for_log(self, pattern, timeout=10.0):
        """Waits for a log line matching the regex `pattern`; returns the match."""
        rx = re.compile(pattern)

        def found():
            with self._log_lock:
                for line in self._log_lines:
                    m = rx.search(line)
                    if m:
                        return m
            return None

        return wait_for(found, timeout, message="log line /%s/" % pattern)

    def ssl_context(self):
        return ssl.create_default_context(cafile=self.ca_file)

    def raw_tls_socket(self, timeout=10.0):
        """A TLS socket connected to the server, verified against its CA."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return self.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")


class Client:
    """requests with the server's CA and a key, always passed explicitly.

    (REQUESTS_CA_BUNDLE in the environment would override Session.verify.)
    Paths are relative to the server's URL at the time of the call, so a
    Client survives a restart on a new port; absolute URLs are used as they are.
    """

    def __init__(self, server, auth, project=None, timeout=30.0):
        self.server = server
        self.auth = tuple(auth) if auth else None
        self.project = project
        self.timeout = timeout
        self.http = requests.Session()
        self.http.trust_env = False  # no proxies, no CA bundle from the environment

    def url(self, path):
        return path if path.startswith(("http://", "https://")) else self.server.url + path

    def request(self, method, path, auth=True, headers=None, **kwargs):
        hdrs = {}
        if self.project:
            hdrs["X-API-Project-Id"] = self.project
        hdrs.update(headers or {})
        if auth is True:
            auth = self.auth
        kwargs.setdefault("timeout", self.timeout)
        return self.http.request(method, self.url(path), auth=auth or None, headers=hdrs,
                                 verify=self.server.ca_file, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def ok(self, method, path, status=200, **kw):
        """The JSON body of a request that must answer `status`."""
        r = self.request(method, path, **kw)
        if r.status_code != status:
            raise AssertionError("%s %s: expected %d, got %d: %s" % (method, path, status, r.status_code,
                                                                     r.text[:2000]))
        return r.json()

    def wait_settled(self, url, timeout=10.0):
        """Polls a resource's links.self until transitioning leaves 'yes'; returns it."""
        def settled():
            r = self.get(url)
            if r.status_code == 200 and r.json().get("transitioning") != "yes":
                return r.json()
            return None

        return wait_for(settled, timeout, message="%s to settle" % url)

    def close(self):
        self.http.close()

    def __del__(self):
        # Closing pooled connections here keeps unittest free of ResourceWarnings.
        try:
            self.http.close()
        except Exception:
            pass


class Subscriber:
    """A WebSocket client on /v1/subscribe, collecting messages in a background thread.

    Connecting happens in the constructor: a refused handshake raises
    websocket.WebSocketBadStatusException (with .status_code). Messages are
    parsed JSON; ``close_code`` is the code of the server's close frame.
    """

    def __init__(self, server, auth=None, path="/v1/subscribe", query="eventNames=resource.change",
                 headers=None, timeout=10.0):
        self.server = server
        access, secret = auth if auth else server.admin
        url = "wss://127.0.0.1:%d%s" % (server.port, path) + ("?" + query if query else "")
        hdrs = ["Authorization: " + basic_auth_header(access, secret)]
        hdrs += ["%s: %s" % kv for kv in (headers or {}).items()]
        self.ws = websocket.create_connection(
            url, header=hdrs, timeout=timeout,
            sslopt={"ca_certs": server.ca_file, "cert_reqs": ssl.CERT_REQUIRED})
        self.ws.settimeout(None)  # the reader blocks; close() ends it
        self.messages = []
        self.close_code = None
        self.close_reason = None
        self.error = None
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        # The server pings as soon as the subscription exists: from then on
        # no change is missed. (A refusal after the upgrade closes instead.)
        with self._cond:
            self._cond.wait_for(lambda: self.messages or self._closed.is_set(), timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _run(self):
        try:
            while True:
                opcode, frame = self.ws.recv_data_frame(control_frame=False)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    data = frame.data or b""
                    if len(data) >= 2:
                        self.close_code = int.from_bytes(data[:2], "big")
                        self.close_reason = data[2:].decode("utf-8", "replace")
                    else:
                        self.close_code = 1005
                    break
                text = getattr(frame, "data", frame)
                if isinstance(text, (bytes, bytearray)):
                    text = text.decode("utf-8")
                try:
                    message = json.loads(text)
                except ValueError:
                    message = {"unparsed": text}
                with self._cond:
                    self.messages.append(message)
                    self._cond.notify_all()
        except Exception as e:  # connection dropped or closed by close()
            self.error = e
        finally:
            # Close frames have been exchanged (recv_data_frame answers the
            # server's): end the TCP connection as websocket clients do.
            try:
                self.ws.shutdown()
            except Exception:
                pass
            self._closed.set()
            with self._cond:
                self._cond.notify_all()

    def snapshot(self):
        with self._cond:
            return list(self.messages)

    def events(self, pred=lambda m: True):
        return [m for m in self.snapshot() if pred(m)]

    def wait_for_event(self, pred, timeout=10.0):
        """The first message (received so far or later) satisfying pred; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self._closed.is_set():
                    raise AssertionError("no matching event within %.1fs (closed: %s, close code %s); got: %s" %
                                         (timeout, self._closed.is_set(), self.close_code,
                                          json.dumps(self.messages[-10:])[:3000]))
                self._cond.wait(left)

    def wait_closed(self, timeout=10.0):
        """Waits for the server to close the connection; returns the close code (None if it just dropped)."""
        if not self._closed.wait(timeout):
            raise AssertionError("the WebSocket was not closed within %.1fs" % timeout)
        return self.close_code

    def close(self):
        if not self._closed.is_set():
            try:
                self.ws.send_close()
            except Exception:
                pass
            self._closed.wait(5)
        if not self._closed.is_set():
            self.ws.abort()
        self._thread.join(5)
        try:
            self.ws.shutdown()
        except Exception:
            pass


def resource_change(resource_type=None, resource_id=None, state=None, transitioning=None):
    """A predicate on subscribe messages: a resource.change matching the given fields."""
    def pred(m):
        if m.get("name") != "resource.change":
            return False
        if resource_type and m.get("resourceType") != resource_type:
            return False
        if resource_id and m.get("resourceId") != resource_id:
            return False
        r = m.get("data", {}).get("resource", {})
        if state and r.get("state") != state:
            return False
        if transitioning and r.get("transitioning") != transitioning:
            return False
        return True

    return pred
