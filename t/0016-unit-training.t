#!/usr/bin/python3
# The pure parts of trainings and redeploys, without an instance: the
# failure reason of a script's exit status, the bounded training log, which
# sandboxes are a training's, the job.json a redeploy stages (the
# deployment keeps its own features), the upload client's request (against
# a local HTTP server), the API's error detail as one line, and the one
# requirements check of a job bundle for deployments and trainings alike.
import email.parser
import email.policy
import http.server
import json
import os
import signal
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

from mlcpy import redeploy, requirements, training, uploadclient  # noqa: E402

BASE = tempfile.mkdtemp(prefix="mlc-training-unit.")
t.defer(lambda: os.system("rm -rf --one-file-system '%s'" % BASE))

# ---- why a script failed ----------------------------------------------------------
t.is_(training.script_failure(1, "ValueError: bad"), "the training script exited with status 1: ValueError: bad",
      "exit status and the last stderr line")
t.is_(training.script_failure(2, ""), "the training script exited with status 2 without writing to stderr",
      "no stderr: said so")
t.is_(training.script_failure(128 + signal.SIGKILL, ""),
      "the training script was killed by SIGKILL without writing to stderr", "128+9: killed by SIGKILL")
t.is_(training.script_failure(128 + signal.NSIG, "x"),
      "the training script exited with status %d: x" % (128 + signal.NSIG), "a status past the signals is a status")

# ---- the training's log ----------------------------------------------------------
out = training.Output(1024)
out.add(b"first line\n")
out.add(b"oops\n", from_stderr=True)
out.note("a   note\nwith lines")
t.is_(out.text(), "first line\noops\nmlc-spooler: a note with lines\n", "log: output and notes, in order")
t.is_(out.last_line(), "oops", "log: the last line of stderr alone")
t.is_(out.last_line(stderr_only=False), "mlc-spooler: a note with lines", "log: the last line of all")
for i in range(500):
    out.add(b"line %04d of the script's output\n" % i)
text = out.text()
t.ok(len(text) <= 1024 and text.startswith("line ") and text.endswith("line 0499 of the script's output\n"),
     "log: bounded to its last MLC_TRAIN_LOG_MAX bytes, cut at a line start", len(text), text[:40])
t.ok(len(out.buf) <= 2 * 1024, "log: the buffer stays bounded", len(out.buf))
t.is_(training.Output(1).limit, 1024, "log: at least 1 KiB is kept")


# ---- which sandboxes are the training's -----------------------------------------
class Cfg:
    training = "/v/training"
    run_dir = "/v/run"


p = training.Paths(Cfg, "tid")
t.ok(p.mine(["/usr/bin/python3", "/v/training/tid/code.py", "/v/training/tid/data.csv"]),
     "the script's command line is the training's")
t.ok(p.mine(["/usr/bin/python3", "-I", "-c", "...", "/v/training/tid/model.pkl"]), "so is the model check's")
t.ok(not p.mine(["/usr/bin/python3", "/v/training/tid2/code.py", "/v/training/tid2/data.csv"]),
     "another training's is not")
t.is_(training.idempotency_key("tid"), "training-tid", "one Idempotency-Key per training")

# ---- what a redeploy stages --------------------------------------------------------
old = {"type": "deploy", "deployment_id": "d1", "modelid": "m", "model_version": 1, "modelkind": "regression",
       "featurelist": [{"feature_name": "a"}], "ownerid": "o", "inference_data": 1,
       "features": {"inputs": [{"name": "a", "type": None}], "named": True, "why": None},
       "files": {"model": {"name": "model.pkl"}}}
train = {"type": "train", "training_id": "tid", "modelid": "m", "modelkind": "classification",
         "featurelist": [{"feature_name": "b"}, {"feature_name": "c"}],
         "features": {"inputs": [{"name": "b", "type": None}, {"name": "c", "type": None}],
                      "named": True, "why": None}}
job = redeploy.staged_job(old, train, "d1", "m", 2, "tid")
t.is_((job["features"], job["featurelist"]), (old["features"], old["featurelist"]),
      "redeploy: the deployment keeps the features it was created with (the gateway checks rows against them)")
t.is_((job["type"], job["deployment_id"], job["model_version"], job["redeployed_by_training"], job["modelkind"]),
      ("deploy", "d1", 2, "tid", "classification"), "redeploy: the new version, its training, the modelkind")
t.is_((job["ownerid"], job["inference_data"], "files" in job), ("o", 1, False),
      "redeploy: the rest of the deployment's job.json stays; files are listed anew")
t.is_(old["model_version"], 1, "redeploy: the old job.json is not changed")


# ---- the upload client ------------------------------------------------------------
class Handler(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Handler.seen.append((self.path, dict(self.headers), body))
        answer = json.dumps({"version": 7, "sha256": "x"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=srv.serve_forever, daemon=True).start()
t.defer(srv.shutdown)
model = os.path.join(BASE, "model.pkl")
payload = bytes(range(256)) * 5000  # > 1 MiB: sent in chunks
with open(model, "wb") as f:
    f.write(payload)
status, body = uploadclient.upload("http://127.0.0.1:%d/api/" % srv.server_address[1], "m/1", model,
                                   key="training-tid", token="tok")
t.is_((status, body), (201, {"version": 7, "sha256": "x"}), "upload: the API's status and JSON answer")
path, headers, raw = Handler.seen[-1]
t.is_(path, "/api/model/m%2F1/upload", "upload: POST <MLC_API_URL>/model/<quoted id>/upload")
t.is_((headers.get("Idempotency-Key"), headers.get("Authorization")), ("training-tid", "Bearer tok"),
      "upload: the Idempotency-Key and the bearer token")
msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
    b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
t.is_(sorted(parts), ["file", "file_kind"], "upload: multipart/form-data with file_kind and file")
t.is_(parts["file_kind"].get_content().strip() if parts.get("file_kind") else None, "model",
      "upload: file_kind=model")
t.ok(parts.get("file") is not None and parts["file"].get_payload(decode=True) == payload
     and parts["file"].get_filename() == "model.pkl", "upload: the file, byte for byte, as model.pkl")
uploadclient.upload("http://127.0.0.1:%d" % srv.server_address[1], "m", model)
t.ok("Idempotency-Key" not in Handler.seen[-1][1] and "Authorization" not in Handler.seen[-1][1],
     "upload: no key and no token unless given")

t.is_(uploadclient.detail({"detail": "model 'x' not found"}), "model 'x' not found", "detail: a string")
t.is_(uploadclient.detail({"detail": [{"msg": "a"}, {"msg": "b"}, "c"]}), "a; b; c", "detail: a 422 list")
t.is_(uploadclient.detail(b"<html>\n  bad\tgateway </html>"), "<html> bad gateway </html>", "detail: raw bytes, one line")
t.is_(uploadclient.detail(b""), "no detail", "detail: nothing")

# ---- the requirements of a job bundle: one check for both kinds of job -------------
d = os.path.join(BASE, "job")
os.mkdir(d)
with open(os.path.join(d, "requirements.txt"), "w") as f:
    f.write("surely-not-installed-dist-xyz==1.0\n")
t.is_(requirements.check_job({"files": {}}, d), ([], []), "requirements: a job without requirements.txt")
t.is_(requirements.check_job({"files": {"env": "x"}}, d), ([], []), "requirements: a malformed entry is none")
env = {"files": {"env": {"name": "requirements.txt"}}}
for subject in ("runtimes", "trainings"):
    missing, warnings = requirements.check_job(env, d, subject)
    t.is_(missing, ["requirement 'surely-not-installed-dist-xyz' is not installed (requirements.txt line 1: "
                    "surely-not-installed-dist-xyz==1.0); " + requirements.INSTALL_HINT[subject]],
          "requirements: a missing distribution, said for %s" % subject)

t.done()
