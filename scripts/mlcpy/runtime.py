"""The model runtime: one process per deployment, started by the spooler
inside the sandbox as `mlc-runtime --dir <deployment dir>`.

It loads model.pkl once (with joblib.load: a pickle, or any file
joblib.dump writes, plain or compressed), optionally a background sample of
data.csv, and answers HTTP/1.1 (keep-alive) on the unix socket
<dir>/runtime.sock (in the sandbox, the spooler creates it and passes it
bound, as the file descriptor named by MLC_LISTEN_FD: the deployment
directory is read-only there; the runtime listens once the model is loaded):

  GET  /health   200 {"status": "ok", "deployment_id", "model", "n_features",
                      "feature_names", "connections": accepted since start}
  POST /predict  {"data": [[row], ...], "explain": bool} or
                 {"csv": "<CSV text with a header row>", "feature_names": [...]|null,
                  "explain": bool}
                 200 {"prediction": [...], "explanation": {...} when asked,
                      "data": rows used, for CSV input}
                 409 {"detail": "..."} explanations asked without training data
                 422 {"detail": "..."} for input it cannot use,
                 500 {"detail": "..."} when the model raises.

Every answer other than 200 is logged (stderr, kept by the spooler in the
runtime's log) as "request <id>: <status> <detail>", with the id of the
X-Request-Id header the API sends (nginx's request id, "-" without one).

If the model cannot be loaded it prints "model failed to load: <Type>:
<message>" on stderr and exits with status 3; the spooler reports that
line as the deployment's failure reason.

This module must not import anything that knows about the database or the
configuration: the runtime runs the uploaded pickle's code.
"""

import argparse
import json
import math
import os
import pickle
import re
import resource
import signal
import socket
import socketserver
import stat
import sys
import threading

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread settings above)

from mlcpy import features  # noqa: E402

EXIT_LOAD_FAILED = 3
MAX_BODY = 64 << 20
BACKGROUND_ROWS = 100
EXPLAIN_MAX_ROWS = 100
IDLE_TIMEOUT = 120
THREAD_STACK = 2 << 20
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9-]{1,64}")


def say(msg):
    """One line on stderr (the spooler keeps it in the runtime's log).  A
    full log (EFBIG at MLC_RUNTIME_LOG_MAX, until the spooler cuts it back)
    loses the line rather than stopping the runtime."""
    try:
        sys.stderr.write(" ".join(str(msg).split()) + "\n")
        sys.stderr.flush()
    except OSError:
        pass


class LoadError(Exception):
    pass


# ---- the model -------------------------------------------------------------

def load_model_file(path):
    """The object in a model file.  joblib.load reads plain pickles and
    every file joblib.dump writes: a pickle with numpy array buffers inline
    after its wrapper objects (which pickle.load cannot read), or that
    stream compressed with zlib, gzip, bz2, xz or lzma, told apart by the
    first bytes (the upload check in app/modelcheck.c accepts the same).
    Either way unpickling runs the file's code: only ever inside the
    sandbox, whose memory limit also stops a decompression bomb."""
    try:
        import joblib
    except ImportError:  # python3-joblib comes with python3-sklearn
        with open(path, "rb") as f:
            return pickle.load(f)
    try:
        return joblib.load(path)
    except KeyError as e:
        # joblib unpickles with pickle's pure-Python Unpickler, which meets
        # a byte that is no opcode as a KeyError from its dispatch table;
        # say what pickle.load would.
        tb = e.__traceback__
        while tb.tb_next:
            tb = tb.tb_next
        code = tb.tb_frame.f_code
        if (code.co_name == "load" and code.co_filename == pickle.__file__
                and len(e.args) == 1 and isinstance(e.args[0], int)):
            raise pickle.UnpicklingError("invalid load key, %r" % bytes([e.args[0] & 0xff])) from None
        raise


class Model:
    """What the runtime serves: the unpickled estimator and its metadata."""

    def __init__(self, deployment_dir):
        self.dir = deployment_dir
        self.job = self._job()
        self.deployment_id = self.job.get("deployment_id") or os.path.basename(deployment_dir)
        self.estimator = self._load()
        self.n_features = self._n_features()
        self.columns = self._columns()
        self.feature_names = self.columns or self._featurelist_names()
        self.background = self._background()
        self.explainer, self.no_explainer = self._explainer()

    def _job(self):
        try:
            with open(os.path.join(self.dir, "job.json"), encoding="utf-8") as f:
                job = json.load(f)
            return job if isinstance(job, dict) else {}
        except (OSError, ValueError):
            return {}

    def _load(self):
        path = os.path.join(self.dir, "model.pkl")
        try:
            est = load_model_file(path)
        except MemoryError:
            raise LoadError("MemoryError: out of memory while unpickling (the runtime's "
                            "memory limit is %s; MLC_RUNTIME_MEMORY)" % _memory_limit()) from None
        except (Exception, SystemExit) as e:  # an uploaded pickle can raise anything
            raise LoadError("%s: %s" % (type(e).__name__, e)) from None
        if not callable(getattr(est, "predict", None)):
            raise LoadError("TypeError: the unpickled object is a %s, which has no predict() "
                            "method" % type(est).__name__)
        return est

    def _n_features(self):
        n = getattr(self.estimator, "n_features_in_", None)
        return int(n) if isinstance(n, (int, np.integer)) else None

    def _columns(self):
        names = getattr(self.estimator, "feature_names_in_", None)
        return [str(x) for x in names] if names is not None else None

    def _featurelist_names(self):
        """The input names the deployment was made with (job.json
        "features", computed once by the API: app/featurelist.c), when
        they can key rows and fit the model; else None."""
        feats = features.read_or_none(self.job)
        names = feats.names if feats is not None else None
        if not names:
            return None
        if self.n_features is not None and len(names) != self.n_features:
            return None
        return names

    def _background(self):
        """A sample of the training data for explanations (None without data.csv)."""
        path = os.path.join(self.dir, "data.csv")
        if not os.path.exists(path):
            return None
        try:
            import pandas as pd
            df = pd.read_csv(path, nrows=100000)
            return df.sample(min(BACKGROUND_ROWS, len(df)), random_state=0) if len(df) else df
        except Exception as e:  # bad training data must not stop serving
            say("warning: data.csv not loaded (%s: %s); explanations will have no background"
                % (type(e).__name__, e))
            return None

    def _background_matrix(self):
        """The background's feature columns as floats, in the model's
        feature order, or (None, reason)."""
        df = self.background
        if df is None or not len(df):
            return None, "no training data"
        names = self.feature_names
        if names and all(n in df.columns for n in names):
            cols = list(names)
        elif self.n_features is not None and len(df.columns) > self.n_features:
            cols = list(df.columns[:self.n_features])   # the target column comes last
        else:
            return None, "the training data's columns do not match the model's features"
        try:
            return np.asarray(df[cols], dtype=float), None
        except (TypeError, ValueError):
            return None, "the training data has non-numeric features"

    def _explainer(self):
        """Everything explanations need, built once at start: (explainer,
        None) or (None, why there is none)."""
        background, why = self._background_matrix()
        if background is None:
            return None, why
        try:
            from mlcpy.explain import Explainer
            return Explainer(self.estimator, background, feature_names=self.feature_names), None
        except Exception as e:  # a model the explainer cannot handle still serves predictions
            say("warning: explanations unavailable (%s: %s)" % (type(e).__name__, e))
            return None, "%s: %s" % (type(e).__name__, e)

    def explain(self, rows):
        """The explanation block of a /predict answer for validated rows."""
        if self.explainer is None:
            raise NoExplanation(self.no_explainer)
        if len(rows) > EXPLAIN_MAX_ROWS:
            raise BadInput("explain at most %d rows per call (got %d)" % (EXPLAIN_MAX_ROWS, len(rows)))
        r = self.explainer.explain(np.asarray(rows, dtype=float))
        method = {"exact": "shap", "linear": "shap", "sampling": "shap-sampling"}[r["method"]]
        out = {"method": method, "algorithm": r["method"], "feature_names": r["feature_names"],
               "feature_importance": r["feature_importance"], "base_value": r["base_value"],
               "output": r["explained"], "output_value": r["output"]}
        if "error_bound" in r:
            out["error_bound"] = r["error_bound"]
        return jsonable(out)

    def rows_from_csv(self, text, names):
        """The rows of a CSV text (a data link's content) in feature order."""
        import io
        import pandas as pd
        try:
            df = pd.read_csv(io.StringIO(text))
        except Exception as e:
            raise BadInput("the CSV cannot be read: %s" % e) from None
        names = names or self.feature_names
        if names:
            missing = [n for n in names if n not in df.columns]
            if missing:
                raise BadInput("the CSV has no column %s" % ", ".join("'%s'" % m for m in missing))
            df = df[names]
        elif self.n_features is not None:
            if len(df.columns) < self.n_features:
                raise BadInput("the CSV has %d columns; the model takes %d features"
                               % (len(df.columns), self.n_features))
            df = df.iloc[:, :self.n_features]
        if not len(df):
            raise BadInput("the CSV has no rows")
        return [[None if isinstance(v, float) and math.isnan(v) else v for v in row]
                for row in df.astype(object).values.tolist()]

    def describe(self):
        return {"status": "ok", "deployment_id": self.deployment_id,
                "model": type(self.estimator).__name__, "n_features": self.n_features,
                "feature_names": self.feature_names}

    def predict(self, rows):
        """Predictions for validated rows, as JSON-native values."""
        if self.columns is not None:
            import pandas as pd
            X = pd.DataFrame(rows, columns=self.columns)
        elif all(isinstance(v, (int, float)) for r in rows for v in r):
            X = np.asarray(rows, dtype=float)
        else:
            X = np.asarray(rows, dtype=object)
        return jsonable(self.estimator.predict(X))


def _memory_limit():
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return "unlimited" if soft == resource.RLIM_INFINITY else "%d MiB" % (soft >> 20)


def jsonable(v):
    """numpy scalars/arrays and other values as JSON-native Python values;
    NaN and infinities become null (JSON has no such numbers)."""
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v.tolist()] if v.ndim else jsonable(v.item())
    if isinstance(v, np.generic):
        return jsonable(v.item())
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


class BadInput(Exception):
    """A request the runtime cannot use (answered 422)."""


class NoExplanation(Exception):
    """Explanations were asked for but cannot be given (answered 409)."""


def validate(body, n_features):
    """The rows of a /predict body and its explain flag, or BadInput."""
    if not isinstance(body, dict):
        raise BadInput("body must be a JSON object {\"data\": [[...], ...], \"explain\": bool}")
    data, explain = body.get("data"), body.get("explain", False)
    if not isinstance(explain, bool):
        raise BadInput("explain must be true or false")
    if not isinstance(data, list) or not data:
        raise BadInput("data must be a non-empty list of rows")
    width = None
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise BadInput("data must be a 2-D list: row %d is not a list" % i)
        if width is None:
            width = len(row)
        if len(row) != width:
            raise BadInput("all rows must have the same length: row 0 has %d values, row %d "
                           "has %d" % (width, i, len(row)))
        for j, v in enumerate(row):
            if isinstance(v, bool) or not (v is None or isinstance(v, (int, float, str))):
                raise BadInput("data[%d][%d] must be a number, a string or null" % (i, j))
    if n_features is not None and width != n_features:
        raise BadInput("the model expects %d features per row, got %d" % (n_features, width))
    rows = [[math.nan if v is None else v for v in row] for row in data]
    return rows, explain


# ---- HTTP -------------------------------------------------------------------

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Entity",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           505: "HTTP Version Not Supported"}
MAX_LINE = 8192
MAX_HEADERS = 100
DIGITS_RE = re.compile(r"[0-9]+", re.ASCII)


class Handler(socketserver.StreamRequestHandler):
    """A lean HTTP/1.1 loop, one thread per connection, connections kept
    alive: the request line and headers are split by hand (http.server's
    email-based header parsing cost more than the model's predict() on a
    row), and each answer goes out in a single write, so the gateway wakes
    once per answer."""

    timeout = IDLE_TIMEOUT
    rbufsize = 65536

    def handle(self):
        self.close_connection = False
        while not self.close_connection:
            try:
                if not self.handle_one_request():
                    return
            except (socket.timeout, ConnectionError):
                return

    def request_id(self):
        rid = self.headers.get("x-request-id", "")
        return rid if REQUEST_ID_RE.fullmatch(rid) else "-"

    def handle_one_request(self):
        """Read and answer one request; False when the connection is done."""
        self.headers = {}
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            return False
        if len(line) > MAX_LINE:
            self.close_connection = True
            self.reply(400, {"detail": "request line too long"})
            return False
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self.close_connection = True
            self.reply(400 if len(parts) != 3 or not parts[2].startswith("HTTP/") else 505,
                       {"detail": "bad request line"})
            return False
        self.command, self.path, version = parts
        for _ in range(MAX_HEADERS + 1):
            h = self.rfile.readline(MAX_LINE + 1)
            if h in (b"\r\n", b"\n", b""):
                break
            if len(h) > MAX_LINE:
                self.close_connection = True
                self.reply(431, {"detail": "header line too long"})
                return False
            name, sep, value = h.decode("latin-1").partition(":")
            if not sep:
                self.close_connection = True
                self.reply(400, {"detail": "bad header line"})
                return False
            name, value = name.strip().lower(), value.strip()
            if name == "content-length" and self.headers.get(name, value) != value:
                # two lengths: which one frames the body is anyone's guess
                self.close_connection = True
                self.reply(400, {"detail": "conflicting Content-Length headers"})
                return False
            self.headers[name] = value
        else:
            self.close_connection = True
            self.reply(431, {"detail": "more than %d headers" % MAX_HEADERS})
            return False
        conn = self.headers.get("connection", "").lower()
        if conn == "close" or (version == "HTTP/1.0" and conn != "keep-alive"):
            self.close_connection = True
        if self.command == "GET":
            if "transfer-encoding" in self.headers or self.headers.get("content-length", "0") != "0":
                # a GET's body is never read: after the answer the stream
                # is not at a request's start, so the connection ends
                self.close_connection = True
            self.do_GET()
        elif self.command == "POST":
            self.do_POST()
        else:
            self.close_connection = True
            self.reply(405, {"detail": "method %s not allowed" % self.command[:20]})
        return True

    def reply(self, status, obj):
        if status != 200:
            say("request %s: %d %s" % (self.request_id(), status,
                                       obj.get("detail", "") if isinstance(obj, dict) else ""))
        data = json.dumps(obj, allow_nan=False).encode()
        head = ("HTTP/1.1 %d %s\r\nServer: mlc-runtime\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n%s\r\n"
                % (status, REASONS.get(status, "Error"), len(data),
                   "Connection: close\r\n" if self.close_connection else ""))
        self.wfile.write(head.encode() + data)

    def route(self):
        return self.path.split("?", 1)[0]

    def do_GET(self):
        if self.route() == "/health":
            # connections: how many the runtime accepted since it started
            # (the gateway keeps its connections alive; tests count them).
            self.reply(200, dict(self.server.model.describe(), connections=self.server.accepted))
        else:
            self.reply(404, {"detail": "no route GET %s (try GET /health)" % self.route()})

    def _body(self):
        if "transfer-encoding" in self.headers:
            # any coding (chunked, gzip, "gzip, chunked"): the body's end
            # is not where Content-Length says, so nothing after it is read
            self.close_connection = True
            raise BadInput("send the body with Content-Length, not chunked or another "
                           "Transfer-Encoding")
        length = self.headers.get("content-length", "0")
        # digits only: int() would also take "+5", "-0", "1_0" and " 5 5"
        n = int(length) if DIGITS_RE.fullmatch(length) and len(length) <= 20 else -1
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            raise BadInput("Content-Length must be 0..%d" % MAX_BODY)
        raw = self.rfile.read(n)
        if len(raw) < n:
            self.close_connection = True
            raise ConnectionError("the body ended early")
        try:
            return json.loads(raw)
        except ValueError as e:
            raise BadInput("body is not valid JSON: %s" % e) from None
        except RecursionError:
            raise BadInput("body is not valid JSON: nested too deep") from None

    def do_POST(self):
        if self.route() != "/predict":
            self.close_connection = True
            self.reply(404, {"detail": "no route POST %s (try POST /predict)" % self.route()})
            return
        model = self.server.model
        try:
            body = self._body()
            from_csv = isinstance(body, dict) and isinstance(body.get("csv"), str)
            if from_csv:
                body = dict(body, data=model.rows_from_csv(body["csv"], body.get("feature_names")))
            rows, explain = validate(body, model.n_features)
        except BadInput as e:
            self.reply(422, {"detail": str(e)})
            return
        try:
            out = {"prediction": model.predict(rows)}
            if explain:
                out["explanation"] = model.explain(rows)
        except BadInput as e:
            self.reply(422, {"detail": str(e)})
            return
        except NoExplanation as e:
            self.reply(409, {"detail": "explanations need the model's training data (%s): upload it "
                             "with POST /model/{id}/upload (file_kind=data) and deploy again" % e})
            return
        except Exception as e:
            self.reply(500, {"detail": "model prediction failed: %s: %s" % (type(e).__name__, e)})
            return
        if from_csv:
            out["data"] = jsonable(rows)
        self.reply(200, out)


class Counting:
    """Counts the connections accepted (in the serving thread)."""
    accepted = 0

    def process_request(self, request, client_address):
        self.accepted += 1
        super().process_request(request, client_address)


class Server(Counting, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, path, model, fd=None):
        self.model = model
        if fd is not None:
            # Bound by the spooler; listen() (server_activate) makes it answer.
            super().__init__(path, Handler, bind_and_activate=False)
            self.socket.close()
            self.socket = socket.socket(fileno=fd)
            self.server_activate()
            return
        _remove_stale(path)
        # Started without a socket from the spooler (by hand): only its own
        # user and group may connect, with no moment of a wider mode.
        old = os.umask(0o117)
        try:
            super().__init__(path, Handler)
        finally:
            os.umask(old)
        os.chmod(path, 0o660)


class TCPServer(Counting, socketserver.ThreadingMixIn, socketserver.TCPServer):
    """The runtime on a TCP port (--listen): inside a Kubernetes pod, where
    the gateway reaches it through the deployment's Service."""
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address, model):
        self.model = model
        super().__init__(address, Handler)


def parse_listen(text):
    """(host, port) of a --listen HOST:PORT (or PORT: every address)."""
    host, sep, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("--listen takes HOST:PORT, e.g. 0.0.0.0:8080")
    return (host.strip("[]") if sep else "0.0.0.0") or "0.0.0.0", int(port)


def _remove_stale(path):
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def serve(deployment_dir, listen=None):
    # Each connection has a thread; a small stack keeps many kept-alive
    # connections well inside RLIMIT_AS (the default reserves 8 MiB each).
    threading.stack_size(THREAD_STACK)
    try:
        model = Model(deployment_dir)
    except LoadError as e:
        say("model failed to load: %s" % e)
        return EXIT_LOAD_FAILED
    fd = None
    if listen:
        sock = None
        server = TCPServer(listen, model)
        where = "%s:%d" % listen
    else:
        sock = os.path.join(deployment_dir, "runtime.sock")
        fd = os.environ.get("MLC_LISTEN_FD")
        server = Server(sock, model, int(fd) if fd else None)
        where = sock
    stop = threading.Event()

    def on_term(signum, frame):
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    say("runtime %s: serving %s on %s" % (model.deployment_id, type(model.estimator).__name__,
                                          where))
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        if sock and not fd:
            _remove_stale(sock)
    say("runtime %s: stopped" % model.deployment_id)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="mlc-runtime", description="serve one deployed model")
    ap.add_argument("--dir", required=True, help="the deployment directory")
    ap.add_argument("--listen", metavar="HOST:PORT",
                    help="answer on this TCP address instead of <dir>/runtime.sock")
    args = ap.parse_args(argv)
    try:
        listen = parse_listen(args.listen) if args.listen else None
    except ValueError as e:
        ap.error(str(e))
    return serve(os.path.abspath(args.dir), listen)
