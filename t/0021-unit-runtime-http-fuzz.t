#!/usr/bin/python3
# Property test of the model runtime's hand-written HTTP/1.1 parser
# (scripts/mlcpy/runtime.py, Handler), no instance needed.  Random
# connections of one to five pipelined requests are built from valid ones
# and spoiled in known ways (request and header lines around the 8 KiB
# limit, header counts around 100, Content-Length negative, not a number,
# signed, with underscores, over 64 MiB, repeated with another value, or
# longer than the bytes sent; chunked and other transfer codings; bodies
# that are no JSON or nest 100000 deep; GET with a body; unknown methods
# and versions; LF-only line ends; Connection: close and HTTP/1.0), and
# a third of them have their bytes mutated at random as well.  Each
# connection is served by a Handler reading from memory, whose reads are
# checked against the limits; some are also sent to a real server over a
# unix socket, cut at random points, and must get the same answers.
#
# For every input: nothing but the parser's own refusals leaves the
# handler (no exception escapes), no read is unbounded or beyond the
# limits (a line at most 8193 bytes, a body at most 64 MiB), every answer
# is well formed, and an answer that closes the connection is the last.
# For a spoiled but unmutated connection the answers are exactly those a
# reference model of the parser gives: valid pipelined requests answered
# in order, bad input answered 4xx (505 for another HTTP version) and the
# connection closed where the stream can no longer be trusted, and a body
# cut short answered by closing.  Deterministic: the seed is printed, and
# MLC_FUZZ_SEED and MLC_FUZZ_CASES (default 3000) change it and the count.
# A seeded generator rather than Hypothesis: Hypothesis costs some 35 ms
# per connection of this shape, the generator well under one, so the
# 3000 connections take seconds.
import io
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

from mlcpy import runtime  # noqa: E402

runtime.say = lambda msg: None  # the refusals logged are expected here

SEED = int(os.environ.get("MLC_FUZZ_SEED") or 20261130)
CASES = int(os.environ.get("MLC_FUZZ_CASES") or 3000)
SOCKET_CASES = max(CASES // 10, 1)
MAX_LINE, MAX_HEADERS, MAX_BODY = runtime.MAX_LINE, runtime.MAX_HEADERS, runtime.MAX_BODY
STATUSES = {200, 400, 404, 405, 409, 422, 431, 505}
t.note("seed %d (MLC_FUZZ_SEED), %d connections in memory and %d over a socket (MLC_FUZZ_CASES)"
       % (SEED, CASES, SOCKET_CASES))


class FakeModel:
    n_features = 2

    def describe(self):
        return {"status": "ok", "deployment_id": "unit", "model": "Fake", "n_features": 2,
                "feature_names": None}

    def predict(self, rows):
        return runtime.jsonable([r[0] + r[1] if all(isinstance(v, (int, float)) for v in r)
                                 else None for r in rows])

    def explain(self, rows):
        raise runtime.NoExplanation("no training data")


# ---- serving from memory, reads checked ----------------------------------------

class Reader:
    """The handler's rfile over fixed bytes; every read's bound is kept."""

    def __init__(self, data):
        self.f = io.BytesIO(data)
        self.problems = []
        self.lines = 0

    def readline(self, limit=-1):
        self.lines += 1
        if limit is None or not 0 < limit <= MAX_LINE + 1:
            self.problems.append("readline(%r): unbounded or over the %d-byte line limit"
                                 % (limit, MAX_LINE))
        return self.f.readline(limit)

    def read(self, n=-1):
        if n is None or not 0 <= n <= MAX_BODY:
            self.problems.append("read(%r): unbounded or over the %d-byte body limit" % (n, MAX_BODY))
            return b""
        return self.f.read(n)


def serve_memory(data):
    """(answer bytes, problems) of one connection carrying data."""
    h = runtime.Handler.__new__(runtime.Handler)
    h.rfile = Reader(data)
    h.wfile = io.BytesIO()
    h.server = types.SimpleNamespace(model=FakeModel(), accepted=1)
    problems = []
    try:
        h.handle()
    except BaseException as e:  # noqa: B902 - anything escaping is the finding
        problems.append("the handler raised %s: %s" % (type(e).__name__, str(e)[:200]))
    problems += h.rfile.problems
    return h.wfile.getvalue(), problems, h.rfile.lines


def parse_answers(out):
    """[(status, closes, body)] of the answers in out, and problems."""
    answers, problems = [], []
    while out:
        head, sep, rest = out.partition(b"\r\n\r\n")
        if not sep:
            problems.append("an answer's head is cut: %r" % out[:200])
            break
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or parts[0] != "HTTP/1.1" or not parts[1].isdigit():
            problems.append("bad status line %r" % lines[0])
            break
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "-1"))
        if n < 0 or len(rest) < n:
            problems.append("Content-Length %d for %d bytes of body" % (n, len(rest)))
            break
        try:
            body = json.loads(rest[:n])
        except ValueError:
            problems.append("an answer's body is not JSON: %r" % rest[:200])
            break
        answers.append((int(parts[1]), headers.get("connection") == "close", body))
        out = rest[n:]
    return answers, problems


def generic_problems(answers, lines):
    """What is wrong with any connection's answers, whatever was sent."""
    problems = []
    for i, (status, closes, body) in enumerate(answers):
        if status not in STATUSES:
            problems.append("answer %d: status %d" % (i + 1, status))
        if closes and i != len(answers) - 1:
            problems.append("answer %d closes the connection but another follows" % (i + 1))
        if status in (400, 405, 431, 505) and not closes:
            problems.append("answer %d: %d keeps the connection, whose stream cannot be trusted"
                            % (i + 1, status))
        if not isinstance(body, dict) or (status != 200 and not isinstance(body.get("detail"), str)):
            problems.append("answer %d: body %r" % (i + 1, body))
    if lines > (len(answers) + 1) * (MAX_HEADERS + 2):
        problems.append("%d lines read for %d answers" % (lines, len(answers)))
    return problems


# ---- connections: valid requests, spoiled in known ways ----------------------------

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7f)) + "\t\u00e9"
KINDS = ["predict", "predict", "predict", "health", "health", "get404", "badjson", "nested",
         "width", "postother", "method", "version505", "version400", "parts", "longline",
         "manyheaders", "longheader", "nocolon", "clbad", "clhuge", "cldup", "te", "clabsent",
         "getbody", "close", "http10", "short"]
POST_KINDS = {"predict", "badjson", "nested", "width", "postother", "method", "clbad", "clhuge",
              "cldup", "te", "clabsent", "short", "close", "http10"}


class Gen(random.Random):
    """The choices of one run, from its seed."""

    def token(self):
        return "".join(self.choice(TOKEN_CHARS) for _ in range(self.randint(1, 12)))

    def value(self):
        return "".join(self.choice(VALUE_CHARS) for _ in range(self.randint(0, 30)))

    def binary(self, lo, hi):
        return bytes(self.getrandbits(8) for _ in range(self.randint(lo, hi)))

    def coin(self):
        return self.random() < 0.5

    def cased(self, name):
        return self.choice([name, name.lower(), name.upper()])


def other_name(name):
    return name.lower() not in ("content-length", "transfer-encoding", "connection", "x-request-id")


def request(g, last):
    """(bytes, expected): expected is (status, closes, check) or None for
    a connection closed without an answer; check(body) -> bool or None."""
    kind = g.choice([k for k in KINDS if last or k != "short"])
    eol = g.choice([b"\r\n"] * 5 + [b"\n"])
    method, path, version = "GET", "/health", g.choice(["HTTP/1.1"] * 4 + ["HTTP/1.9"])
    headers = [(n, v) for n, v in ((g.token(), g.value()) for _ in range(g.randint(0, 6)))
               if other_name(n)]
    body, cl, expect, check = b"", None, (200, False), None
    if kind in POST_KINDS:
        method, path = "POST", "/predict"
        rows = [(g.randint(-10 ** 6, 10 ** 6), g.randint(-10 ** 6, 10 ** 6))
                for _ in range(g.randint(1, 4))]
        body = json.dumps({"data": [list(r) for r in rows]}).encode()
        cl = str(len(body))
        want = [a + b for a, b in rows]
        check = (lambda b, want=want: b == {"prediction": want})
    if g.coin():
        path += "?" + g.token()
    if kind == "health":
        check = (lambda b: b.get("status") == "ok")
    elif kind == "get404":
        path, expect = "/" + g.token(), (404, False)
    elif kind == "badjson":
        body = b"{not json" + g.binary(0, 20)
        cl, expect, check = str(len(body)), (422, False), None
    elif kind == "nested":
        body = b"[" * g.choice([1, 10, 1000, 5000, 100000])
        cl, expect, check = str(len(body)), (422, False), None
    elif kind == "width":
        body = b'{"data": [[1, 2, 3]]}'
        cl, expect, check = str(len(body)), (422, False), None
    elif kind == "postother":
        path, expect, check = "/" + g.token(), (404, True), None
    elif kind == "method":
        method = g.choice(["DELETE", "PUT", "PATCH", "OPTIONS", "HEAD", "get", "post", "CONNECT",
                           g.token() + "X"])
        expect, check = (405, True), None
    elif kind == "version505":
        version, expect, check = g.choice(["HTTP/2.0", "HTTP/0.9", "HTTP/3"]), (505, True), None
    elif kind == "version400":
        version, expect, check = g.choice(["HTTX/1.1", "http/1.1", "1.1"]), (400, True), None
    elif kind == "parts":
        line = g.choice(["GET /health", "GET", "GET /a b HTTP/1.1", "", " "])
        return line.encode() + eol + b"\r\n", (400, True, None)
    elif kind == "longline":
        # the request line with its line end, around the limit
        size = g.choice([MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, MAX_LINE + 2, 3 * MAX_LINE])
        path = "/health?" + "a" * (size - len("GET /health? %s" % version) - len(eol))
        if size > MAX_LINE:
            expect, check = (400, True), None
    elif kind == "manyheaders":
        n = g.randint(MAX_HEADERS - 2, MAX_HEADERS + 3)
        headers = [("X-H%d" % i, "v") for i in range(n - 1)]  # + X-Request-Id below
        if n > MAX_HEADERS:
            expect, check = (431, True), None
    elif kind == "longheader":
        size = g.choice([MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, 2 * MAX_LINE])
        headers.append(("X-Long", "b" * (size - len("X-Long: ") - len(eol))))
        if size > MAX_LINE:
            expect, check = (431, True), None
    elif kind == "nocolon":
        headers.append((g.choice(["no colon here", "Content-Length 5", " folded"]), None))
        expect, check = (400, True), None
    elif kind == "clbad":
        cl = g.choice(["-5", "-0", "x", "+5", "1_0", "0x10", "5 5", "", "1e3", "\u00b2"])
        expect, check = (422, True), None
    elif kind == "clhuge":
        cl = g.choice([str(MAX_BODY + 1), str(2 * MAX_BODY), str(2 ** 64), "9" * 30, "9" * 5000])
        expect, check = (422, True), None
    elif kind == "cldup":
        headers.append(("Content-Length", str(len(body) + g.randint(1, 50))))
        expect, check = (400, True), None
    elif kind == "te":
        headers.append((g.cased("Transfer-Encoding"),
                        g.choice(["chunked", "Chunked", "gzip, chunked", "chunked, gzip", "identity",
                                  "gzip"])))
        expect, check = (422, True), None
    elif kind == "clabsent":
        cl, body, expect, check = None, b"", (422, False), None
    elif kind == "getbody":
        body = g.binary(1, 40)
        cl, expect = str(len(body)), (200, True)
        check = (lambda b: b.get("status") == "ok")
    elif kind == "close":
        headers.append((g.cased("Connection"), g.choice(["close", "Close"])))
        expect = (200, True)
    elif kind == "http10":
        version = "HTTP/1.0"
        if g.coin():
            headers.append((g.cased("Connection"), "keep-alive"))
        else:
            expect = (200, True)
    headers.append(("X-Request-Id", g.value()))
    if cl is not None:
        headers.insert(g.randint(0, len(headers)), (g.cased("Content-Length"), cl))
    if kind == "short":
        body = body[:g.randint(0, len(body) - 1)]
        expect, check = None, None
    head = ("%s %s %s" % (method, path, version)).encode("latin-1") + eol
    for n, v in headers:
        head += (n if v is None else "%s: %s" % (n, v)).encode("latin-1") + eol
    return head + eol + body, (None if expect is None else expect + (check,))


def connection(g):
    """(bytes, expected answers, or None when the bytes were mutated)."""
    n = g.randint(1, 5)
    data, expected = b"", []
    for i in range(n):
        raw, exp = request(g, last=(i == n - 1))
        data += raw
        expected.append(exp)
        if exp is None or exp[1]:
            break
    if g.randint(0, 2):
        return data, expected
    for _ in range(g.randint(1, 8)):
        op, pos = g.choice(["flip", "insert", "delete", "dup", "cut"]), g.randint(0, len(data))
        if op == "flip" and pos < len(data):
            data = data[:pos] + bytes([g.getrandbits(8)]) + data[pos + 1:]
        elif op == "insert":
            data = data[:pos] + g.choice([g.binary(1, 8), b"\r\n", b"\n", b":", b" ", b"0", b"9",
                                          b"-", b"\r\n\r\n", b"\x00"]) + data[pos:]
        elif op == "delete":
            data = data[:pos] + data[pos + g.randint(1, 16):]
        elif op == "dup":
            k = g.randint(1, 64)
            data = data[:pos + k] + data[pos:]
        elif op == "cut":
            data = data[:pos]
    return data, None


def expected_problems(answers, expected):
    """How the answers differ from the reference model's."""
    problems = []
    want = [e for e in expected if e is not None]
    if len(answers) != len(want):
        problems.append("%d answers, expected %d: %s" % (len(answers), len(want),
                                                           [(s, c) for s, c, _ in answers]))
    for i, ((status, closes, body), (wstatus, wcloses, check)) in enumerate(zip(answers, want)):
        if (status, closes) != (wstatus, wcloses):
            problems.append("answer %d: %d%s, expected %d%s" % (
                i + 1, status, " (close)" if closes else "", wstatus, " (close)" if wcloses else ""))
        elif check and not check(body):
            problems.append("answer %d: body %r" % (i + 1, str(body)[:300]))
    return problems


def check_connection(data, expected):
    out, problems, lines = serve_memory(data)
    answers, more = parse_answers(out)
    problems += more + generic_problems(answers, lines)
    if expected is not None:
        problems += expected_problems(answers, expected)
    return answers, problems


# ---- the runs -----------------------------------------------------------------

def report(name, failures, runs):
    """One check per run: the first failing connection's input and problems."""
    if not failures:
        t.ok(True, name)
        return
    data, problems = failures[0]
    t.ok(False, name, "%d of %d connections failed; the first:" % (len(failures), runs),
         "input: %r" % (data[:1500],), *problems[:10])


started = time.monotonic()
g, failures, counts = Gen(SEED), [], {"mutated": 0, "exact": 0, "answers": 0}
for _ in range(CASES):
    data, expected = connection(g)
    counts["exact" if expected is not None else "mutated"] += 1
    answers, problems = check_connection(data, expected)
    counts["answers"] += len(answers)
    if problems:
        failures.append((data, problems))
report("%d connections served from memory: no exception, reads within the limits, well-formed "
       "answers, and for unmutated ones exactly the reference model's answers" % CASES,
       failures, CASES)
t.note("%(exact)d connections checked against the reference model, %(mutated)d mutated, "
       "%(answers)d answers" % counts, "%.1f s" % (time.monotonic() - started))

# ---- the same over a real socket, sent in pieces ------------------------------------

BASE = tempfile.mkdtemp(prefix="mlc-rt-fuzz.")
t.defer(shutil.rmtree, BASE, True)
path = os.path.join(BASE, "runtime.sock")
server = runtime.Server(path, FakeModel())
threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
t.defer(server.shutdown)


def serve_socket(data, cuts):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    try:
        last = 0
        for c in sorted(set(cuts)) + [len(data)]:
            if c > last:
                s.sendall(data[last:c])
                last = c
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server closed early: what it answered is read below
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    s.close()
    return out


def without_count(answers):
    return [(s, c, {k: v for k, v in b.items() if k != "connections"} if isinstance(b, dict) else b)
            for s, c, b in answers]


started = time.monotonic()
g, failures = Gen(SEED + 1), []
for _ in range(SOCKET_CASES):
    data, expected = connection(g)
    cuts = sorted({g.randint(0, len(data)) for _ in range(g.randint(0, 6))})
    answers, problems = check_connection(data, expected)
    got, more = parse_answers(serve_socket(data, cuts))
    problems += more
    if without_count(got) != without_count(answers):
        problems.append("over the socket (cut at %s): %s; from memory: %s" % (
            cuts, [(s, c) for s, c, _ in got], [(s, c) for s, c, _ in answers]))
    if problems:
        failures.append((data, problems))
report("%d connections sent over a unix socket in pieces get the same answers as from memory"
       % SOCKET_CASES, failures, SOCKET_CASES)
t.note("%.1f s" % (time.monotonic() - started))

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(path)
s.sendall(b"GET /health HTTP/1.1\r\n\r\n")
time.sleep(0.05)
t.ok(s.recv(65536).startswith(b"HTTP/1.1 200 "), "the server still answers afterwards")
s.close()
t.done()
