#!/usr/bin/python3
# The config file grammar (docs/CONFIG.md, "File format") as the Python
# parts (scripts/mlcpy/config.py) and scripts/mlc (load_config, seen
# through "mlc config-dump") read it: both must give the values and the
# errors t/fixtures/config-grammar.json states, which app/config.c is held
# to as well (t/unit/test-config.c).  Then the Python Config object: the
# environment's precedence, defaults, paths.  Needs no instance.
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

from mlcpy import config as mconfig  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, ".."))
MLC = os.path.join(ROOT, "scripts", "mlc")
FIXTURES = os.path.join(HERE, "fixtures")
with open(os.path.join(FIXTURES, "config-grammar.json"), encoding="utf-8") as f:
    GRAMMAR = json.load(f)
TMP = tempfile.mkdtemp(prefix="mlc-config.")
t.defer(lambda: subprocess.run(["rm", "-rf", TMP]))
CONF = os.path.join(TMP, "test.conf")


def write(data):
    with open(CONF, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    return CONF


def python_reads(data):
    """(values, None) or (None, (line, message)) from the Python reader."""
    try:
        return mconfig.parse_file(write(data)), None
    except mconfig.ConfigError as e:
        return None, split_error(str(e))


def split_error(msg):
    """'FILE:LINE: why' -> (LINE, why); anything else -> (None, msg)."""
    prefix = CONF + ":"
    if msg.startswith(prefix):
        line, _, why = msg[len(prefix):].partition(": ")
        if line.isdigit():
            return int(line), why
    return None, msg


def bash_reads(data, env=None):
    """The same from scripts/mlc: "mlc config-dump" prints KEY=value per
    line (a later one wins), or fails with "mlc: FILE:LINE: why"."""
    write(data)
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MLC_CONF": CONF}
    run_env.update(env or {})
    res = subprocess.run([MLC, "config-dump"], env=run_env, capture_output=True, timeout=60)
    if res.returncode != 0:
        err = res.stderr.decode("utf-8", "surrogateescape").rstrip("\n")
        return None, split_error(err[len("mlc: "):] if err.startswith("mlc: ") else err)
    values = {}
    for line in res.stdout.decode("utf-8", "surrogateescape").split("\n")[:-1]:
        key, _, value = line.partition("=")
        values[key] = value
    return values, None


READERS = (("config.py", python_reads), ("scripts/mlc", bash_reads))

# ---- the shared fixture ------------------------------------------------------------

with open(os.path.join(FIXTURES, "config-grammar.conf"), "rb") as f:
    FILE = f.read()
for name, reads in READERS:
    t.is_(reads(FILE), (GRAMMAR["file"], None), "%s reads config-grammar.conf as the fixture says"
          % name)

t.ok(len(GRAMMAR["good"]) >= 20 and len(GRAMMAR["bad"]) >= 20,
     "the fixture has good and bad cases (%d, %d)" % (len(GRAMMAR["good"]), len(GRAMMAR["bad"])))
for name, reads in READERS:
    wrong = []
    for case in GRAMMAR["good"]:
        got = reads(case["text"])
        if got != (case["values"], None):
            wrong.append({"text": case["text"], "got": got, "want": case["values"]})
    t.is_(wrong, [], "%s: every good case of the fixture gives its values" % name)
    wrong = []
    for case in GRAMMAR["bad"]:
        got = reads(case["text"])
        if got != (None, (case["line"], case["error"])):
            wrong.append({"text": case["text"], "got": got,
                          "want": [case["line"], case["error"]]})
    t.is_(wrong, [], "%s: every bad case of the fixture fails on its line, with its message" % name)

# ---- odd input ----------------------------------------------------------------------

big = "v" * 200000
for name, reads in READERS:
    t.is_(reads("LONG=%s\nNEXT=1\n" % big), ({"LONG": big, "NEXT": "1"}, None),
          "%s: a 200000-byte line is read whole, and the next line is its own" % name)
    t.is_(reads(b"A=\xff\xfe\x80\n"), ({"A": "\udcff\udcfe\udc80"}, None),
          "%s: bytes that are not UTF-8 are kept (as surrogate escapes in Python)" % name)
    t.is_(reads(b"A\nB=\x00\n"), (None, (1, "expected KEY=value")),
          "%s: the first bad line is reported, even when a later one has a NUL" % name)
    t.is_(reads(b"A=1\nB=2\n\x00"), (None, (3, "NUL byte")),
          "%s: a NUL on the last line, without a line end, is found" % name)

t.is_(python_reads("x")[1], (1, "expected KEY=value"), "config.py: the error names file and line")
res = subprocess.run([MLC, "status"], env={"PATH": os.environ["PATH"], "MLC_CONF": write("A=1\nB\n")},
                     capture_output=True, text=True, timeout=60)
t.is_([res.returncode, res.stdout, res.stderr], [1, "", "mlc: %s:2: expected KEY=value\n" % CONF],
      "scripts/mlc stops on a bad line before doing anything (it used to skip it)")
res = subprocess.run([MLC, "config-dump"], env={"PATH": os.environ["PATH"],
                                                "MLC_CONF": os.path.join(TMP, "none")},
                     capture_output=True, text=True, timeout=60)
t.is_([res.returncode, res.stderr], [1, "mlc: cannot read config '%s/none'\n" % TMP],
      "scripts/mlc: a missing file is an error that names it")
try:
    mconfig.parse_file(TMP)
    t.ok(False, "config.py: a directory is an error")
except mconfig.ConfigError as e:
    t.like(str(e), r"^cannot read config '%s': " % TMP, "config.py: a directory is an error")

# ---- the environment ----------------------------------------------------------------

text = "MLC_A=file\nMLC_B=file\nMLC_C=\nMLC_D=file\nline=file\n__x=file\n"
got, _ = bash_reads(text, {"MLC_A": "env", "MLC_B": "", "MLC_C": "env"})
t.is_(got, {"MLC_A": "env", "MLC_B": "file", "MLC_C": "env", "MLC_D": "file", "line": "file",
            "__x": "file"},
      "scripts/mlc: a non-empty variable wins, an empty one counts as unset; keys named like "
      "its own variables are not confused with them")
c = mconfig.Config(mconfig.parse_file(write(text)), "/srv/mlc",
                   {"MLC_A": "env", "MLC_B": "", "MLC_C": "env"})
t.is_([c.get(k) for k in ("MLC_A", "MLC_B", "MLC_C", "MLC_D")], ["env", "file", "env", "file"],
      "config.py: the same")
t.is_([c.get("MLC_C"), mconfig.Config({"MLC_C": ""}, "/", {}).get("MLC_C", "dflt")],
      ["env", "dflt"], "config.py: an empty file value means the default")

c = mconfig.Config(mconfig.parse_file(write("MLC_VAR=rel/var\nMLC_ARTIFACTS=arts\n")), "/srv/mlc", {})
t.is_([c.var, c.artifacts, c.spool], ["/srv/mlc/rel/var", "/srv/mlc/arts", "/srv/mlc/rel/var/spool"],
      "config.py: relative MLC_VAR and MLC_ARTIFACTS are relative to the project root")
c = mconfig.Config({}, "/srv/mlc", {})
t.is_([c.get("MLC_SPOOL_POLL"), c.get("MLC_RUNTIME_MAX_RESTARTS"), c.get("MLC_RUNTIME_USER"),
       c.var, c.artifacts],
      ["0.2", "5", "mlc-runtime", "/srv/mlc/var", "/srv/mlc/var/artifacts"],
      "config.py: the built-in defaults")
try:
    mconfig.Config({"MLC_RUNTIME_CPU": "1x"}, "/", {}).number("MLC_RUNTIME_CPU")
    t.ok(False, "config.py: a value that is no number is an error naming the key")
except mconfig.ConfigError as e:
    t.is_(str(e), "MLC_RUNTIME_CPU='1x' is not a number",
          "config.py: a value that is no number is an error naming the key")
for host, url in (("0.0.0.0", "http://127.0.0.1:81"), ("::", "http://[::1]:81"),
                  ("10.0.0.1", "http://10.0.0.1:81")):
    t.is_(mconfig.Config({"MLC_HOST": host, "MLC_PORT": "81"}, "/", {}).api_url(), url,
          "config.py: MLC_API_URL defaults to the nginx address (MLC_HOST=%s)" % host)
loaded = mconfig.load(ROOT, {"MLC_CONF": write("MLC_VAR=/x\n")})
t.is_(loaded.var, "/x", "config.py: load() reads $MLC_CONF")

# ---- the shipped file ---------------------------------------------------------------

shipped = os.path.join(ROOT, "conf", "mlconnector.conf")
with open(shipped, "rb") as f:
    data = f.read()
py, _ = python_reads(data)
sh, _ = bash_reads(data)
t.ok(py is not None and "MLC_VAR" in py and py == sh,
     "conf/mlconnector.conf reads the same in config.py and scripts/mlc (%d keys)"
     % len(py or {}), "python: %r" % py, "bash: %r" % sh)
t.done()
