#!/usr/bin/python3
# The model runtime's HTTP/1.1 loop (scripts/mlcpy/runtime.py) without an
# instance: requests kept alive and pipelined on one connection, each
# answer in one write with its Content-Length, and odd or hostile input
# (a request line or header too long, too many headers, a header without
# a colon, chunked bodies, a bad or short Content-Length, HTTP/1.0, an
# unknown method) answered with an error and, where the stream can no
# longer be trusted, the connection closed.
import json
import os
import socket
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

from mlcpy import runtime  # noqa: E402

runtime.say = lambda msg: None  # the refusals logged are expected here


class FakeModel:
    n_features = 2

    def describe(self):
        return {"status": "ok", "deployment_id": "unit", "model": "Fake", "n_features": 2,
                "feature_names": None}

    def predict(self, rows):
        return [r[0] + r[1] for r in rows]

    def explain(self, rows):
        raise runtime.NoExplanation("no training data")


BASE = tempfile.mkdtemp(prefix="mlc-rt-http.")
t.defer(lambda: os.system("rm -rf --one-file-system '%s'" % BASE))
path = os.path.join(BASE, "runtime.sock")
server = runtime.Server(path, FakeModel())
threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
t.defer(server.shutdown)


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def read_answer(s, buf=b""):
    """(status, headers, body, rest) of one answer; status None at EOF."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None, {}, b"", buf
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:n], rest[n:]


def closed(s):
    try:
        return s.recv(1) == b""
    except OSError:
        return True


def post(body, extra=""):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (b"POST /predict HTTP/1.1\r\nHost: runtime\r\nContent-Type: application/json\r\n"
            b"X-Request-Id: unit-1\r\n" + extra.encode() + b"Content-Length: %d\r\n\r\n" % len(data) + data)


# Kept alive: three requests, one connection, answers in order.
s = connect()
for i in range(3):
    s.sendall(post({"data": [[i, 1]]}))
    status, headers, body, rest = read_answer(s)
    t.is_((status, json.loads(body or b"null")), (200, {"prediction": [i + 1]}),
          "request %d on one kept-alive connection answers 200" % (i + 1))
t.is_(headers.get("connection"), None, "a kept-alive answer says nothing of closing")
t.is_(headers.get("content-type"), "application/json", "answers are JSON")
# Pipelined: two requests in one write.
s.sendall(post({"data": [[1, 1]]}) + post({"data": [[2, 2]]}))
a1 = read_answer(s)
a2 = read_answer(s, a1[3])
t.is_([json.loads(a1[2]), json.loads(a2[2])], [{"prediction": [2]}, {"prediction": [4]}],
      "two pipelined requests get their two answers in order")
s.sendall(b"GET /health HTTP/1.1\r\nHost: runtime\r\n\r\n")
status, _, body, _ = read_answer(s)
t.is_(status, 200, "GET /health on the same connection")
t.ok((json.loads(body).get("connections") or 0) >= 1, "it counts the connections accepted",
     body)
# Errors that keep the stream in step keep the connection.
s.sendall(post({"data": [[1, 2, 3]]}))
status, _, body, _ = read_answer(s)
t.is_((status, json.loads(body)), (422, {"detail": "the model expects 2 features per row, got 3"}),
      "input the model cannot take: 422 with the detail")
s.sendall(post(b"{not json"))
status, _, body, _ = read_answer(s)
t.is_(status, 422, "a body that is not JSON: 422")
s.sendall(post({"data": [[1, 2]], "explain": True}))
status, _, body, _ = read_answer(s)
t.is_(status, 409, "explain without an explainer: 409")
s.sendall(post({"data": [[5, 5]]}))
status, _, body, _ = read_answer(s)
t.is_((status, json.loads(body)), (200, {"prediction": [10]}), "and the connection still answers")
s.close()


def one(raw, name, want_status, want_closed=True):
    s = connect()
    s.sendall(raw)
    status, headers, body, _ = read_answer(s)
    t.is_(status, want_status, name + ": %s" % want_status)
    if want_closed:
        t.ok(closed(s), name + ": the connection is closed")
    s.close()
    return body


one(b"GARBAGE\r\n\r\n", "a request line that is not HTTP", 400)
one(b"GET /health HTTP/2.0\r\n\r\n", "HTTP/2.0 on the request line", 505)
one(b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n", "a request line over 8 KiB", 400)
one(b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 10000 + b"\r\n\r\n", "a header line over 8 KiB", 431)
one(b"GET /health HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", "101 headers", 431)
one(b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n", "a header line without a colon", 400)
one(b"DELETE /health HTTP/1.1\r\n\r\n", "an unknown method", 405)
one(post({"data": [[1, 1]]}, "Transfer-Encoding: chunked\r\n"), "a chunked body", 422)
one(b"POST /predict HTTP/1.1\r\nContent-Length: -5\r\n\r\n", "a negative Content-Length", 422)
one(b"POST /predict HTTP/1.1\r\nContent-Length: x\r\n\r\n", "a Content-Length that is no number", 422)
one(b"POST /predict HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % ((64 << 20) + 1),
    "a Content-Length over the 64 MiB limit", 422)
one(b"POST /other HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "POST to another path", 404)
body = one(b"GET /health HTTP/1.0\r\n\r\n", "HTTP/1.0 without keep-alive", 200)
t.is_(json.loads(body).get("status"), "ok", "HTTP/1.0 gets its answer before the close")
one(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", "Connection: close", 200)

# A body shorter than its Content-Length: the connection ends, no answer.
s = connect()
s.sendall(b"POST /predict HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"data\"")
s.shutdown(socket.SHUT_WR)
status, _, _, _ = read_answer(s)
t.is_(status, None, "a body cut short gets no answer, the connection is closed")
s.close()

# The server still serves after all that.
s = connect()
s.sendall(post({"data": [[20, 22]]}))
status, _, body, _ = read_answer(s)
t.is_((status, json.loads(body)), (200, {"prediction": [42]}), "the runtime still answers")
s.close()
t.done()
