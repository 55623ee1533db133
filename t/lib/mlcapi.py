"""A second mlc-api master for the tests that need other settings than the
instance's (small caps, no remote backend, a full disk, a cache off): it
listens on a FastCGI socket of its own, which tests reach with fcgi.py,
and is stopped (SIGTERM, then SIGKILL after 30 s) when the test ends.

    api = mlcapi.Api(sock, log_path, MLC_WORKERS="1")
    t.ok(api.wait_up(30), "a second mlc-api is up")
    status, body = mlcapi.call(sock, "/deployment/add", "POST", {...})
"""
import json
import os
import subprocess
import time
from urllib.parse import urlencode

import fcgi
import mlctap as t


def binary():
    """The mlc-api under test (the ASan build when MLC_API_BIN says so)."""
    return os.environ.get("MLC_API_BIN") or os.path.join(os.environ["MLC_ROOT"], "app", "mlc-api")


def conf():
    return os.environ.get("MLC_CONF") or os.path.join(os.environ["MLC_ROOT"], "conf",
                                                      "mlconnector.conf")


class Api:
    """mlc-api -c <conf> with the instance's environment, MLC_SOCKET=sock,
    the variables in drop removed and those in more set.  Its output is
    appended to log_path, or with own_log=True mlc-api writes it there
    itself (--log) in a session of its own."""

    def __init__(self, sock, log_path, drop=(), own_log=False, **more):
        self.sock = sock
        self.env = dict(os.environ, MLC_SOCKET=sock, **more)
        for k in drop:
            self.env.pop(k, None)
        argv = [binary(), "-c", self.env.get("MLC_CONF") or conf()]
        if own_log:
            self.proc = subprocess.Popen(argv + ["--log", log_path], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        else:
            with open(log_path, "ab") as log:
                self.proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log)
        t.defer(self.stop)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def wait_up(self, seconds=30, step=0.05):
        """Whether its socket is there within the time."""
        end = time.monotonic() + seconds
        while not os.path.exists(self.sock):
            if time.monotonic() >= end:
                return False
            time.sleep(step)
        return True


def call(sock, path, method="GET", body=None):
    """(status, decoded JSON body, or the raw body when it is none) of one
    request straight to a FastCGI socket; body is sent as JSON."""
    data = json.dumps(body).encode() if body is not None else b""
    status, _, out = fcgi.request(sock, path, method, data)
    try:
        return status, json.loads(out or b"null")
    except ValueError:
        return status, out


class Hosts:
    """Masters of a test's own that play API hosts on the instance's
    database (the cache tests): start() gives each its socket
    run/<test>-<name>.sock and log log/<test>-<name>.log, 3 fast workers
    and 1 slow; stop_all() stops them, one check each."""

    def __init__(self, test):
        self.test = test
        self.masters = {}
        self.var = os.environ["MLC_VAR"]

    def start(self, name, **env_more):
        sock = os.path.join(self.var, "run", "%s-%s.sock" % (self.test, name))
        self.masters[name] = Api(sock, os.path.join(self.var, "log", "%s-%s.log"
                                                    % (self.test, name)),
                                 drop=("MLC_SLOW_SOCKET",), MLC_WORKERS="3",
                                 MLC_SLOW_WORKERS="1", **env_more)
        return sock

    def all_up(self, seconds=15):
        """One check: every master started is listening within the time."""
        up = all(api.wait_up(seconds) for api in self.masters.values())
        t.ok(up, "%d masters listen on their own sockets" % len(self.masters))
        return up

    def stop_all(self):
        for name, api in self.masters.items():
            api.stop()
            t.is_(api.proc.returncode, 0, "master %s stops cleanly" % name)


def request(sock, path, method="GET", body=None, **query):
    """(status, headers, body bytes) of one request straight to a FastCGI
    socket, body sent as JSON, the keyword arguments as the query."""
    data = json.dumps(body).encode() if body is not None else b""
    return fcgi.request(sock, path, method, data, query=urlencode(query))
