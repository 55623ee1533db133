"""HTTP/1.1 over a unix socket (model runtimes listen on one), with
http.client doing the protocol work."""

import http.client
import json
import socket


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection whose transport is a unix stream socket; keeps the
    connection alive between requests like any HTTPConnection."""

    def __init__(self, path, timeout=10.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(path, method, url, body=None, timeout=10.0, conn=None):
    """Send one request; returns (status, parsed JSON body or raw bytes).

    body, when not None, is sent as JSON.  Pass conn (a
    UnixHTTPConnection) to reuse a kept-alive connection."""
    own = conn is None
    conn = conn or UnixHTTPConnection(path, timeout)
    try:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, url, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw
    finally:
        if own:
            conn.close()


def health(path, timeout=1.0):
    """The runtime's /health answer as a dict, or None if it does not
    answer 200 with JSON (not listening yet, gone, or broken)."""
    try:
        status, body = request(path, "GET", "/health", timeout=timeout)
    except (OSError, http.client.HTTPException):
        return None
    return body if status == 200 and isinstance(body, dict) else None
