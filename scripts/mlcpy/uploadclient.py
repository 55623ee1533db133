"""The spooler's client of the API's model upload: a trained model enters
the store through POST /model/{id}/upload, the code path of every upload
(app/route-artifacts.c), streamed as multipart/form-data from a file, with an
Idempotency-Key so that a retry stores at most one version."""

import http.client
import json
import os
import urllib.parse
import uuid

UPLOAD_TIMEOUT = 600      # s for one upload request


def upload(api_url, modelid, path, timeout=UPLOAD_TIMEOUT, key=None, token=None):
    """POST path as the model's next `model` file to the API, streamed as
    multipart/form-data; returns (HTTP status, parsed JSON body or bytes).
    With key, the request carries it as its Idempotency-Key: sent again
    (after a lost answer, or by a spooler that restarted), the upload is
    answered with the version the first one stored.  With token, it
    carries that bearer token."""
    u = urllib.parse.urlsplit(api_url)
    boundary = "mlc-spooler-" + uuid.uuid4().hex
    head = ("--%s\r\nContent-Disposition: form-data; name=\"file_kind\"\r\n\r\nmodel\r\n"
            "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model.pkl\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % (boundary, boundary)).encode()
    tail = ("\r\n--%s--\r\n" % boundary).encode()
    size = os.path.getsize(path)
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = cls(u.hostname, u.port, timeout=timeout)
    try:
        conn.putrequest("POST", "%s/model/%s/upload" % (u.path.rstrip("/"),
                                                        urllib.parse.quote(modelid, safe="")))
        conn.putheader("Content-Type", "multipart/form-data; boundary=%s" % boundary)
        conn.putheader("Content-Length", str(len(head) + size + len(tail)))
        conn.putheader("User-Agent", "mlc-spooler")
        if key:
            conn.putheader("Idempotency-Key", key)
        if token:
            conn.putheader("Authorization", "Bearer " + token)
        conn.endheaders()
        conn.send(head)
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                conn.send(chunk)
        conn.send(tail)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw


def detail(body):
    """The API's error detail as one line."""
    if isinstance(body, dict):
        d = body.get("detail")
        if isinstance(d, str):
            return d
        if isinstance(d, list):
            return "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in d)
        return json.dumps(body)[:500]
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return " ".join(str(body).split())[:500] or "no detail"
