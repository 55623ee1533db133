"""fcgi - a minimal FastCGI client, so tests can talk to mlc-api's socket
directly (without nginx), including sending a request body slowly."""

import os
import socket
import struct

# With MLC_AUTH=on (mlc test's default) requests carry the test's admin
# token unless given another (token=None: none).
_DEFAULT = object()

BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7


def _record(rtype, content, req_id=1):
    return struct.pack(">BBHHBB", 1, rtype, req_id, len(content), 0, 0) + content


def _length(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def _params(env):
    body = b""
    for k, v in env.items():
        k, v = k.encode(), v.encode()
        body += _length(len(k)) + _length(len(v)) + k + v
    return body


class Request:
    """One request on its own connection: start(), send(), finish()."""

    def __init__(self, path, method="GET", sock_path=None, content_length=None,
                 content_type="application/json", query="", token=_DEFAULT, params=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(sock_path)
        env = {"REQUEST_METHOD": method, "REQUEST_URI": path + ("?" + query if query else ""),
               "QUERY_STRING": query, "CONTENT_TYPE": content_type}
        if content_length is not None:
            env["CONTENT_LENGTH"] = str(content_length)
        if token is _DEFAULT:
            token = os.environ.get("MLC_TEST_TOKEN") or None
        if token is not None:
            env["HTTP_AUTHORIZATION"] = "Bearer " + token
        env.update(params or {})
        self.sock.sendall(_record(BEGIN_REQUEST, struct.pack(">HB5x", 1, 0))
                          + _record(PARAMS, _params(env)) + _record(PARAMS, b""))

    def send(self, data):
        while data:
            chunk, data = data[:65535], data[65535:]
            self.sock.sendall(_record(STDIN, chunk))

    def finish(self):
        """End the body and read the reply: (status, headers dict, body bytes).
        self.ended tells whether the reply closed with an end-request record
        (a worker that cuts a reply off closes the connection without it)."""
        try:
            self.sock.sendall(_record(STDIN, b""))
        except OSError:
            pass  # a worker that answered early and closed: read its answer
        out = bytearray()
        buf = bytearray()
        self.ended = False
        while not self.ended:
            data = self.sock.recv(1 << 20)
            if not data:
                break
            buf += data
            pos = 0
            while len(buf) - pos >= 8:
                _, rtype, _, clen, plen, _ = struct.unpack_from(">BBHHBB", buf, pos)
                if len(buf) - pos < 8 + clen + plen:
                    break
                if rtype == STDOUT:
                    out += buf[pos + 8:pos + 8 + clen]
                elif rtype == END_REQUEST:
                    self.ended = True
                    break
                pos += 8 + clen + plen
            del buf[:pos]
        self.sock.close()
        return _parse(bytes(out)) if out else (None, {}, b"")


class Conn:
    """One connection kept open across requests, as nginx keeps one
    (FCGI_KEEP_CONN): request() sends a whole request and reads its reply."""

    def __init__(self, sock_path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(sock_path)
        self.buf = bytearray()

    def send_raw(self, data):
        self.sock.sendall(data)

    def request(self, path, method="GET", body=b"", token=_DEFAULT, req_id=1):
        """(status, headers, body); (None, {}, b"") when the worker closed
        the connection instead of answering."""
        env = {"REQUEST_METHOD": method, "REQUEST_URI": path, "QUERY_STRING": "",
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body))}
        if token is _DEFAULT:
            token = os.environ.get("MLC_TEST_TOKEN") or None
        if token is not None:
            env["HTTP_AUTHORIZATION"] = "Bearer " + token
        data = (_record(BEGIN_REQUEST, struct.pack(">HB5x", 1, 1), req_id)
                + _record(PARAMS, _params(env), req_id) + _record(PARAMS, b"", req_id))
        for i in range(0, len(body), 65535):
            data += _record(STDIN, body[i:i + 65535], req_id)
        data += _record(STDIN, b"", req_id)
        try:
            self.sock.sendall(data)
        except OSError:
            return None, {}, b""
        return self.reply()

    def reply(self):
        """Read one reply (nginx sends the next request only after it)."""
        out = bytearray()
        while True:
            while len(self.buf) >= 8:
                _, rtype, _, clen, plen, _ = struct.unpack_from(">BBHHBB", self.buf, 0)
                if len(self.buf) < 8 + clen + plen:
                    break
                content = bytes(self.buf[8:8 + clen])
                del self.buf[:8 + clen + plen]
                if rtype == STDOUT:
                    out += content
                elif rtype == END_REQUEST:
                    return _parse(bytes(out))
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                data = b""
            if not data:
                return None, {}, b""
            self.buf += data

    def closed_by_peer(self, seconds=5):
        """Whether the worker closes the connection within the time."""
        self.sock.settimeout(seconds)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self):
        self.sock.close()


def _parse(out):
    head, _, body = out.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode("latin-1").split("\r\n"):
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    status = int(headers.get("status", "200").split()[0])
    return status, headers, body


def request(sock_path, path, method="GET", body=b"", **kw):
    r = Request(path, method, sock_path, content_length=len(body), **kw)
    r.send(body)
    return r.finish()
