#!/usr/bin/python3
# Errors outside field validation: unknown routes (404), wrong methods
# (405), oversized bodies (413), malformed JSON and query strings (422).
# Every one of them is a JSON {"detail": ...} sent as application/json.
import http.client
import json
import os
import re
import sys
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance()


def max_body():
    if os.environ.get("MLC_MAX_BODY"):
        return int(os.environ["MLC_MAX_BODY"])
    conf = os.environ.get("MLC_CONF") or os.path.join(os.environ.get("MLC_ROOT", "."), "conf", "mlconnector.conf")
    try:
        with open(conf) as f:
            for line in f:
                m = re.match(r"\s*MLC_MAX_BODY=['\"]?(\d+)", line)
                if m:
                    return int(m.group(1))
    except OSError:
        pass
    return 1048576


def post_json_text(path, text, method="POST"):
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    return t.http(method, path, data=data, headers={"Content-Type": "application/json"})


def padded_body(size):
    """A valid MLModelCreate body of exactly size bytes (padding in an
    unknown key, which the API ignores)."""
    head = '{"modelname": "%s", "modelkind": "big", "drift_detection": null, "pad": "' % t.uniq("big")
    tail = '"}'
    return head + "x" * (size - len(head) - len(tail)) + tail


def allow_set(resp):
    return {m.strip() for m in resp.headers.get("Allow", "").split(",") if m.strip()}


# ---- 404 ---------------------------------------------------------------------

for path in ("/no/such/route", "/model", "/model/", "/model/getkind/", "/model/x/y/z", "/healthz"):
    body = t.is_error(t.get(path), 404, "GET %s (no such route)" % path)
    t.ok(isinstance(body.get("detail"), str) and body.get("detail"),
         "GET %s: the 404 detail is a sentence" % path, json.dumps(body))

# ---- 405 ---------------------------------------------------------------------

mid = str(uuid.uuid4())
for method, path, allowed, refused in (("POST", "/model/all", {"GET"}, "POST"),
                                       ("PUT", "/model/" + mid, {"GET", "PATCH", "DELETE"}, "PUT"),
                                       ("DELETE", "/health", {"GET"}, "DELETE")):
    resp = t.http(method, path, data=b"{}", headers={"Content-Type": "application/json"})
    t.is_error(resp, 405, "%s %s (known path, wrong method)" % (method, path.replace(mid, "{id}")))
    got = allow_set(resp)
    t.ok(allowed <= got and refused not in got,
         "%s %s: the Allow header lists %s and not %s" % (method, path.replace(mid, "{id}"),
                                                         ", ".join(sorted(allowed)), refused),
         "Allow: %r" % resp.headers.get("Allow"))
resp = t.http("POST", "/model/search")
t.is_error(resp, 405, "POST /model/search (known path, wrong method)")
t.ok("GET" in allow_set(resp), "POST /model/search: the Allow header lists GET", "Allow: %r" % resp.headers.get("Allow"))

# ---- 413 ---------------------------------------------------------------------

limit = max_body()
resp = post_json_text("/model/add", padded_body(limit * 3 // 2))
body = t.is_error(resp, 413, "POST /model/add with a %d-byte body (1.5 times MLC_MAX_BODY)" % (limit * 3 // 2))
t.ok(isinstance(body.get("detail"), str), "the 413 detail is a sentence", json.dumps(body))

resp = post_json_text("/model/add", padded_body(limit + 1))
t.is_error(resp, 413, "POST /model/add with MLC_MAX_BODY + 1 bytes")

resp = t.post("/model/add", data=iter([padded_body(limit * 3 // 2).encode()]),
              headers={"Content-Type": "application/json"})
t.is_error(resp, 413, "POST /model/add with 1.5 times MLC_MAX_BODY sent chunked (no Content-Length)")

resp = post_json_text("/model/" + mid, padded_body(limit * 3 // 2), method="PATCH")
t.is_error(resp, 413, "PATCH /model/{id} with 1.5 times MLC_MAX_BODY")

resp = post_json_text("/model/add", padded_body(limit))
t.is_status(resp, 201, "POST /model/add with a body of exactly MLC_MAX_BODY (%d) bytes is accepted (201)" % limit)
if resp.status_code == 201:
    t.defer(t.delete, "/model/" + resp.json()["modelid"])
    t.ok("pad" not in resp.json(), "the padding key of the largest accepted body is dropped as unknown")
else:
    t.skip("the padding key of the largest accepted body is dropped as unknown", "the body was not accepted")

# ---- malformed JSON --------------------------------------------------------


def jsondecode_error(resp, name, offset=None):
    body = t.is_error(resp, 422, name)
    entries = t.detail_entries(body)
    first = entries[0] if entries else ((), None, None)
    t.is_(list(first[0]), ["body"], name + ": the error's loc is [\"body\"]")
    t.like(first[1], r"byte \d+", name + ": the message gives the byte offset")
    if offset is not None:
        t.like(first[1], r"byte %d\b" % offset, name + ": the offset is %d, where the JSON goes wrong" % offset)


# The document's own predict example (section 4.1) writes a Python tuple.
doc_tuple = '{\n"data": (5.1, 3.5, 1.4, 0.2),\n"explain": true\n}'
jsondecode_error(post_json_text("/model/add", doc_tuple),
                 "POST /model/add with the document's tuple body '(5.1, 3.5, ...)'", doc_tuple.index("("))
jsondecode_error(post_json_text("/model/add", '{"data": (5.1, 3.5)}'),
                 "POST /model/add with '{\"data\": (5.1, 3.5)}'", 9)
jsondecode_error(post_json_text("/model/add", '{"modelname": "x", "modelkind": "y", "drift_detection": null'),
                 "POST /model/add with truncated JSON")
jsondecode_error(post_json_text("/model/add", '{"modelname": "x", "modelkind": "y", "drift_detection": null} trailing'),
                 "POST /model/add with text after the JSON object")
jsondecode_error(post_json_text("/model/add", "{'modelname': 'x'}"), "POST /model/add with single-quoted keys", 1)
jsondecode_error(post_json_text("/model/" + mid, '{"modelname": }', method="PATCH"),
                 "PATCH /model/{id} with malformed JSON", 14)

resp = post_json_text("/model/add", b"")
body = t.is_error(resp, 422, "POST /model/add with an empty body")
t.ok(all(e[0][:1] == ("body",) for e in t.detail_entries(body)) and t.detail_entries(body),
     "POST /model/add with an empty body: the errors are located in the body", json.dumps(body))

name = t.uniq("badutf8")
resp = post_json_text("/model/add", b'{"modelname": "%s\xff\xfe", "modelkind": "k", "drift_detection": null}'
                      % name.encode())
t.is_error(resp, 422, "POST /model/add with invalid UTF-8 in a string")
# json-c takes these; the database (utf8mb4) would refuse them with a 500.
for what, raw in (("an overlong form", b"\xc0\xaf"), ("a UTF-8 encoded surrogate", b"\xed\xa0\x80"),
                  ("a code point above U+10FFFF", b"\xf4\x90\x80\x80")):
    resp = post_json_text("/model/add", b'{"modelname": "%s%s", "modelkind": "k", "drift_detection": null}'
                          % (name.encode(), raw))
    body = t.is_error(resp, 422, "POST /model/add with %s in a string" % what)
    t.like(str(body.get("detail")), r"invalid utf-8 string", "the 422 says the string is not UTF-8")

resp = post_json_text("/model/add", "[" * 100000 + "]" * 100000)
t.is_error(resp, 422, "POST /model/add with arrays nested 100,000 deep")
t.is_status(t.get("/health"), 200, "the service still answers GET /health after the deep nesting")

# ---- query strings ---------------------------------------------------------

for path, loc in (("/model/all?limit=-1", "limit"), ("/model/all?skip=abc", "skip"),
                  ("/model/search?tags=x&limit=-3", "limit"), ("/model/search?skip=1e3", "skip")):
    body = t.is_error(t.get(path), 422, "GET %s (invalid paging)" % path)
    t.is_([e[0] for e in t.detail_entries(body)], [("query", loc)],
          "GET %s: the error is located at [\"query\", \"%s\"]" % (path, loc))

body = t.is_error(t.get("/model/search?tags=a%00b"), 422, "GET /model/search with a NUL byte (%00) in a tag")
t.ok(t.detail_entries(body) and all(e[0][:1] == ("query",) for e in t.detail_entries(body)),
     "a NUL byte in the query string is reported in the query", json.dumps(body))

t.done()
