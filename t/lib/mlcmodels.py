"""mlcmodels - real scikit-learn models for the end-to-end tests: the API
document's Ridge on the diabetes data and a classifier on iris, both from
the data sets scikit-learn ships, registered and uploaded through the API."""

import http.server
import io
import os
import pickle
import socket
import threading
import time

import mlctap as t

import numpy as np
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge


def csv_bytes(X, y, names, target="target"):
    """Training data as CSV with a header row."""
    out = io.StringIO()
    out.write(",".join(list(names) + [target]) + "\n")
    for row, label in zip(X, y):
        out.write(",".join(repr(float(v)) for v in row) + ",%s\n" % label)
    return out.getvalue().encode()


def featurelist(names, target="target"):
    return ([{"feature_name": n, "type": "cont", "kind": 0, "units": None} for n in names]
            + [{"feature_name": target, "type": "cont", "kind": 1, "units": None}])


def diabetes_ridge():
    """(estimator, X, y, feature names): the document's Ridge(alpha=1.0)."""
    d = load_diabetes()
    reg = Ridge(alpha=1.0, random_state=0)
    reg.fit(d.data, d.target)
    return reg, d.data, d.target, list(d.feature_names)


def iris_forest(n_estimators=100):
    d = load_iris()
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in d.feature_names]
    clf = RandomForestClassifier(n_estimators=n_estimators, random_state=0)
    clf.fit(d.data, d.target)
    return clf, d.data, d.target, names


def upload(modelid, kind, name, data):
    resp = t.post("/model/%s/upload" % modelid, files={"file": (name, data), "file_kind": (None, kind)})
    if resp.status_code != 201:
        raise RuntimeError("upload of %s failed: %s" % (kind, t.describe(resp)))
    return resp.json()


def register(estimator, X, y, names, kind="regression", tags=None, with_data=True,
             requirements=None, pickled=None):
    """Register a model with featurelist, upload its pickle (and training
    CSV, requirements); returns the model object.  Deleted at the end."""
    model = t.add_model(t.minimal_model(modelkind=kind, featurelist=featurelist(names),
                                        modeltags=tags or ["e2e"]),
                        "register a %s model to deploy" % type(estimator).__name__)
    upload(model["modelid"], "model", "model.pkl", pickled or pickle.dumps(estimator, protocol=4))
    if with_data:
        upload(model["modelid"], "data", "train.csv", csv_bytes(X, y, names))
    if requirements is not None:
        upload(model["modelid"], "env", "requirements.txt", requirements.encode())
    return model


def deploy(modelid, deployment_id=None, ownerid="agent-e2e", inference_data=0):
    body = {"modelid": modelid, "ownerid": ownerid,
            "placement": {"clusterID": "*", "node": "*", "continuum": False},
            "deployment_id": t.uniq("dep") if deployment_id is None else deployment_id,
            "inference_data": inference_data}
    resp = t.post("/deployment/add", json=body)
    if resp.status_code == 201:
        made = resp.json()["deployment_id"]
        t.defer(lambda: t.http("DELETE", "/deployment/" + made, timeout=30))
    return resp


def wait_status(dep, want=("deployed", "failed"), seconds=90):
    """Poll GET /deployment/get/status/{dep} until its status is in want."""
    end = time.time() + seconds
    last = None
    while time.time() < end:
        resp = t.get("/deployment/get/status/" + dep)
        if resp.status_code == 200:
            last = resp.json()
            if last["status"] in want:
                return last
        time.sleep(0.1)
    return last


def unix_http(path, method="GET", target="/health", body=None, timeout=10):
    """(status, body bytes) of one HTTP/1.0 request over a unix socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    data = body or b""
    s.sendall(("%s %s HTTP/1.0\r\nHost: runtime\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\n\r\n" % (method, target, len(data))).encode() + data)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    head, _, payload = out.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


def pid_alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


class CSVServer:
    """An HTTP server on 127.0.0.1 for data links: GET of a path in files
    ({path: bytes}) answers them as text/csv, any other path 404.  .base is
    its http://127.0.0.1:<port>; it stops when the test ends."""

    def __init__(self, files):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = files.get(self.path, b"")
                self.send_response(200 if self.path in files else 404)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.port = self.srv.server_address[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self._stopped = False
        t.defer(self.shutdown)

    def shutdown(self):
        if not self._stopped:
            self._stopped = True
            self.srv.shutdown()
