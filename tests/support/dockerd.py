#!/usr/bin/python3
"""A private dockerd for tests: never the system one.

Each instance gets its own data root, exec root, pid file, socket, config file
and (dockerd-managed) containerd, all under one short directory, with no
bridge and no iptables changes, so tests can run beside a real Docker and
beside each other. Containers must use ``--network none`` or ``host``.

As a library::

    with PrivateDockerd() as d:          # or PrivateDockerd().start(tmpdir)
        d.make_busybox_image("paddock-test/busybox:latest")
        cid = d.run("paddock-test/busybox:latest", "sleep", "60")
        os.environ["DOCKER_HOST"] = d.host

From a shell or a CTest fixture::

    export DOCKER_HOST=$(python3 dockerd.py start /tmp/pdk-x [--busybox-image TAG])
    python3 dockerd.py stop /tmp/pdk-x

``start`` leaves dockerd running in its own session (its output goes to
DIR/dockerd.log) and prints the DOCKER_HOST value; ``stop`` ends it and
removes DIR. Python 3 standard library only.
"""

import argparse
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_UNIX_PATH_MAX = 107
_SOCKET_NAME = "docker.sock"
_PID_NAME = "dockerd.pid"  # ours: the pid we launched (dockerd's own pidfile goes away on exit)
_LOG_NAME = "dockerd.log"

DEFAULT_START_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 20.0
BUSYBOX = "/bin/busybox"


class DockerdError(RuntimeError):
    pass


def _log_tail(path, lines=25):
    try:
        with open(path, "rb") as f:
            data = f.read()[-16384:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


def _clean_env():
    # -H must be the only endpoint the CLI sees (a DOCKER_CONTEXT beside -H is an error).
    env = dict(os.environ)
    for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        env.pop(k, None)
    env["DOCKER_CLI_HINTS"] = "false"
    return env


def ping(sock_path, timeout=2.0):
    """True when the daemon behind sock_path answers GET /_ping with OK."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(sock_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    return len(status) >= 2 and status[0].startswith(b"HTTP/1.") and status[1] == b"200" \
        and body.strip() == b"OK"


def _proc_state(pid):
    """The /proc state letter of pid, or None when it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    # "pid (comm) S ...": comm may hold spaces and parentheses.
    return stat[stat.rfind(")") + 2:][:1] or None


def _alive(pid):
    state = _proc_state(pid)
    return state is not None and state not in ("Z", "X")


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


_DAEMON_NAMES = (b"dockerd", b"containerd", b"runc", b"docker-proxy", b"docker-init")


def _pids_referencing(root):
    """Daemon processes (dockerd, containerd, shims) whose command line
    mentions root; never a client such as a docker CLI still running."""
    needle = os.fsencode(root.rstrip("/") + "/")
    me = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        args = _cmdline(int(entry))
        if not args or not os.path.basename(args[0]).startswith(_DAEMON_NAMES):
            continue
        if any(needle in a or a == needle[:-1] for a in args):
            pids.append(int(entry))
    return pids


def _container_pids(root):
    """Processes still in the cgroups of containers kept under root (after a
    dockerd that died without stopping them; their shims are gone too)."""
    try:
        ids = [i for i in os.listdir(os.path.join(root, "data", "containers")) if len(i) == 64]
    except OSError:
        return []
    if not ids:
        return []
    needles = [("/" + i).encode() for i in ids]
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup", "rb") as f:
                cgroups = f.read()
        except OSError:
            continue
        if any(n in cgroups for n in needles):
            pids.append(int(entry))
    return pids


def _wait_gone(pid, timeout, popen=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return True
        elif not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _mounts_under(root):
    root = os.path.realpath(root).rstrip("/")
    points = []
    try:
        with open("/proc/self/mountinfo", "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 5:
                    continue
                # Octal escapes (\040 for a space) as the kernel writes them.
                mp = fields[4].encode().decode("unicode_escape")
                if mp == root or mp.startswith(root + "/"):
                    points.append(mp)
    except OSError:
        pass
    return points


def _unmount_all(root):
    libc = ctypes.CDLL(None, use_errno=True)
    MNT_DETACH = 2
    for _ in range(5):
        points = _mounts_under(root)
        if not points:
            return
        # Deepest first, so children go before their parents.
        for mp in sorted(set(points), key=len, reverse=True):
            if libc.umount2(os.fsencode(mp), MNT_DETACH) != 0:
                err = ctypes.get_errno()
                if err not in (errno.EINVAL, errno.ENOENT):
                    print(f"dockerd.py: umount {mp}: {os.strerror(err)}", file=sys.stderr)


class PrivateDockerd:
    """One private dockerd, started by start() and ended by stop()."""

    def __init__(self, start_timeout=DEFAULT_START_TIMEOUT, stop_timeout=DEFAULT_STOP_TIMEOUT):
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.dir = None
        self.pid = None
        self._popen = None
        self._owns_dir = False

    # -- paths ----------------------------------------------------------
    @property
    def socket_path(self):
        return os.path.join(self.dir, _SOCKET_NAME)

    @property
    def host(self):
        """The DOCKER_HOST value: unix:///.../docker.sock."""
        return "unix://" + self.socket_path

    @property
    def log_path(self):
        return os.path.join(self.dir, _LOG_NAME)

    @classmethod
    def attach(cls, directory):
        """An instance for a daemon started earlier (e.g. by `dockerd.py start`)."""
        d = cls()
        d.dir = os.path.abspath(directory)
        try:
            with open(os.path.join(d.dir, _PID_NAME)) as f:
                d.pid = int(f.read().strip())
        except (OSError, ValueError):
            d.pid = None
        return d

    # -- lifecycle ------------------------------------------------------
    def start(self, tmpdir=None):
        """Launch dockerd under tmpdir (a fresh short /tmp dir if None) and
        wait until /_ping answers. Raises DockerdError with the log's tail."""
        if tmpdir is None:
            tmpdir = tempfile.mkdtemp(prefix="pdk-", dir="/tmp")
            self._owns_dir = True
        self.dir = os.path.abspath(tmpdir)
        if len(os.fsencode(self.socket_path)) > _UNIX_PATH_MAX:
            raise DockerdError(f"socket path too long for a unix socket "
                               f"({len(self.socket_path)} > {_UNIX_PATH_MAX}): {self.socket_path}")
        if os.path.exists(os.path.join(self.dir, _PID_NAME)):
            # A leftover from a run that never stopped: end it first.
            PrivateDockerd.attach(self.dir).stop(remove_dir=False)
        os.makedirs(self.dir, exist_ok=True)
        for sub in ("data", "exec"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        config = os.path.join(self.dir, "daemon.json")
        with open(config, "w") as f:
            json.dump({}, f)  # never the host's /etc/docker/daemon.json
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise DockerdError("dockerd not found in PATH (Debian: apt-get install docker.io)")
        # A namespace of our own in case dockerd picks a system containerd
        # (it does when /run/containerd/containerd.sock exists).
        # containerd namespaces allow letters, digits and single inner dashes.
        ns = "pdk-" + "".join(c for c in os.path.basename(self.dir.rstrip("/")) if c.isalnum())[-40:]
        argv = [
            dockerd,
            "--data-root", os.path.join(self.dir, "data"),
            "--exec-root", os.path.join(self.dir, "exec"),
            "--pidfile", os.path.join(self.dir, "docker.pid"),
            "--config-file", config,
            "-H", self.host,
            "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false",
            "--containerd-namespace", ns,
            "--containerd-plugins-namespace", ns + "-plugins",
            # Containers that ignore SIGTERM (a shell as pid 1) must not stretch stop().
            "--shutdown-timeout", "2",
        ]
        log = open(self.log_path, "ab")
        try:
            self._popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, env=_clean_env())
        finally:
            log.close()
        self.pid = self._popen.pid
        with open(os.path.join(self.dir, _PID_NAME), "w") as f:
            f.write(f"{self.pid}\n")
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._popen.poll() is not None:
                rc = self._popen.returncode
                tail = _log_tail(self.log_path)
                self.stop(remove_dir=self._owns_dir)
                raise DockerdError(f"dockerd exited with status {rc} during start; log tail:\n{tail}")
            if ping(self.socket_path, timeout=1.0):
                return self
            if time.monotonic() > deadline:
                tail = _log_tail(self.log_path)
                self.stop(remove_dir=self._owns_dir)
                raise DockerdError(f"dockerd did not answer /_ping within {self.start_timeout:.0f}s; "
                                   f"log tail:\n{tail}")
            time.sleep(0.05)

    def stop(self, remove_dir=True):
        """SIGTERM dockerd, SIGKILL after stop_timeout, end its containerd and
        shims, unmount whatever is left under the directory and remove it."""
        if self.dir is None:
            return
        pid = self.pid
        if pid is not None and self._popen is None and not self._is_our_dockerd(pid):
            pid = None  # the pid was reused by something else: never signal it
        if self._popen is not None:
            running = self._popen.poll() is None
        else:
            running = pid is not None and _alive(pid)
        if running:
            if ping(self.socket_path, timeout=2.0):
                # Kill running containers so shutdown does not wait on them.
                try:
                    ids = self.docker("ps", "-q", timeout=10).split()
                    if ids:
                        self.docker("kill", *ids, timeout=15, check=False)
                except (DockerdError, OSError, subprocess.TimeoutExpired):
                    pass
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not _wait_gone(pid, self.stop_timeout, self._popen):
                print(f"dockerd.py: dockerd {pid} ignored SIGTERM for "
                      f"{self.stop_timeout:.0f}s; killing it", file=sys.stderr)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _wait_gone(pid, 10.0, self._popen)
        if self._popen is not None:
            try:
                self._popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # containerd, shims and containers that outlived dockerd (after a SIGKILL).
        leftovers = _pids_referencing(self.dir) + _container_pids(self.dir)
        for p in leftovers:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in leftovers:
            _wait_gone(p, 5.0)
        _unmount_all(self.dir)
        self.pid = None
        self._popen = None
        try:
            os.unlink(os.path.join(self.dir, _PID_NAME))
        except FileNotFoundError:
            pass
        if remove_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            if os.path.exists(self.dir):
                print(f"dockerd.py: could not remove {self.dir} entirely", file=sys.stderr)

    def _is_our_dockerd(self, pid):
        args = _cmdline(pid)
        return bool(args) and os.path.basename(args[0]) == b"dockerd" and \
            os.fsencode(self.host) in args

    def __enter__(self):
        if self.dir is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop(remove_dir=True)
        return False

    # -- helpers --------------------------------------------------------
    def docker(self, *args, input=None, timeout=120, check=True):
        """Run the docker CLI against this daemon; returns stdout as text.
        Raises DockerdError (with stderr) on a non-zero exit when check."""
        cmd = ["docker", "-H", self.host, *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout,
                              env=_clean_env())
        out = proc.stdout.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            raise DockerdError(f"{' '.join(cmd)}: exit {proc.returncode}: "
                               f"{proc.stderr.decode('utf-8', 'replace').strip()}")
        return out

    def make_busybox_image(self, tag="paddock-test/busybox:latest"):
        """Import an image made offline from the host's static busybox and
        its applet links; returns the image id."""
        if not os.path.isfile(BUSYBOX):
            raise DockerdError(f"{BUSYBOX} missing (Debian: apt-get install busybox-static)")
        listing = subprocess.run([BUSYBOX, "--list"], capture_output=True, check=True)
        applets = [a for a in listing.stdout.decode().split() if a and "/" not in a]
        with tempfile.TemporaryDirectory(prefix="pdk-rootfs-") as rootfs:
            for d in ("bin", "tmp", "etc", "proc", "sys", "dev", "root"):
                os.makedirs(os.path.join(rootfs, d), exist_ok=True)
            os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
            shutil.copy2(BUSYBOX, os.path.join(rootfs, "bin", "busybox"))
            for a in applets:
                if a == "busybox":  # never a link of busybox onto itself
                    continue
                os.symlink("busybox", os.path.join(rootfs, "bin", a))
            with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
                f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
            with open(os.path.join(rootfs, "etc", "group"), "w") as f:
                f.write("root:x:0:\nnogroup:x:65534:\n")
            tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True)
        out = self.docker("import", "--change", "CMD [\"/bin/sh\"]",
                          "--change", "ENV PATH=/bin", "-", tag, input=tar.stdout)
        return out.strip()

    def run(self, image, *cmd, name=None, detach=True, network="none", extra=(), timeout=120):
        """docker run (detached by default, --network none); returns the
        container id when detached, the output otherwise."""
        if network not in ("none", "host"):
            raise ValueError("containers here use --network none or host")
        args = ["run", "--network", network]
        if detach:
            args.append("-d")
        if name:
            args += ["--name", name]
        args += list(extra)
        args.append(image)
        args += list(cmd)
        out = self.docker(*args, timeout=timeout)
        return out.strip()


def _main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p_start = sub.add_parser("start", help="start a private dockerd in DIR; print its DOCKER_HOST")
    p_start.add_argument("dir")
    p_start.add_argument("--busybox-image", metavar="TAG",
                         help="also import the offline busybox image under TAG")
    p_start.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT)
    p_stop = sub.add_parser("stop", help="stop the private dockerd in DIR and remove DIR")
    p_stop.add_argument("dir")
    p_stop.add_argument("--keep", action="store_true", help="keep DIR (and its log)")
    p_stop.add_argument("--timeout", type=float, default=DEFAULT_STOP_TIMEOUT)
    p_host = sub.add_parser("host", help="print the DOCKER_HOST of DIR if its dockerd answers")
    p_host.add_argument("dir")
    args = parser.parse_args(argv)

    try:
        if args.action == "start":
            d = PrivateDockerd(start_timeout=args.timeout)
            t0 = time.monotonic()
            d.start(args.dir)
            ready = time.monotonic() - t0
            if args.busybox_image:
                try:
                    d.make_busybox_image(args.busybox_image)
                except Exception:
                    d.stop(remove_dir=False)
                    raise
            print(f"dockerd.py: pid {d.pid} ready in {ready:.2f}s, log {d.log_path}",
                  file=sys.stderr)
            print(d.host)
        elif args.action == "stop":
            d = PrivateDockerd.attach(args.dir)
            d.stop_timeout = args.timeout
            if not os.path.isdir(d.dir):
                print(f"dockerd.py: {d.dir} does not exist; nothing to stop", file=sys.stderr)
                return 0
            d.stop(remove_dir=not args.keep)
        elif args.action == "host":
            d = PrivateDockerd.attach(args.dir)
            if not ping(d.socket_path):
                print(f"dockerd.py: no dockerd answers on {d.socket_path}", file=sys.stderr)
                return 1
            print(d.host)
    except DockerdError as e:
        print(f"dockerd.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
