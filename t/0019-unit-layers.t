#!/usr/bin/python3
# The arrows that must never exist (docs/ARCHITECTURE.md), checked in the
# source without an instance:
# - the parsers of untrusted input in app/ know no routes, requests,
#   storage, database, logs or metrics: they take bytes and give results;
# - only the route table, its handlers and main.c know the route table;
# - the shared counters (metrics.c) and the database layer (db.c) know no
#   handler;
# - what runs inside a runtime's sandbox imports only what is copied into it
#   (sandbox.RUNTIME_FILES), and none of it reaches the database, the
#   configuration or the spool;
# - no daemon takes a date from its own clock (the database's is the one).
import ast
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import mlctap as t  # noqa: E402
from mlcpy import sandbox  # noqa: E402

APP = os.path.join(ROOT, "app")

PARSERS = ("query", "multipart", "jsonutil", "validate", "csvcheck", "modelcheck",
           "runtime_answer", "bearer", "cors", "router", "featurelist", "stamp", "buf",
           "config", "dbtarget")
# What a parser may include besides its own header and other parsers'.
PARSER_MAY = {"mlc.h", "conf.h"}
HANDLER_PARTS = {"routes.h"}


def includes(name):
    """The project headers that app/<name>.c and app/<name>.h include."""
    out = set()
    for ext in (".c", ".h"):
        path = os.path.join(APP, name + ext)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                out |= set(re.findall(r'^\s*#\s*include\s+"([^"]+)"', f.read(), re.M))
    out.discard(name + ".h")
    return out


allowed = PARSER_MAY | {p + ".h" for p in PARSERS}
for name in PARSERS:
    t.ok(os.path.exists(os.path.join(APP, name + ".c")), "app/%s.c exists (a parser)" % name)
    extra = sorted(includes(name) - allowed)
    t.is_(extra, [], "the parser app/%s.c includes only parsers' headers, mlc.h and conf.h" % name)

users = sorted(os.path.basename(p)[:-2] for p in glob.glob(os.path.join(APP, "*.[ch]"))
               if "routes.h" in includes(os.path.basename(p)[:-2]))
strangers = [u for u in users if not (u in ("main", "routes") or u.startswith("route-"))]
t.is_(strangers, [], "only routes.c, the route-*.c handlers and main.c include routes.h", users)

for name in ("metrics", "db", "http", "store", "spool", "jobs", "auth", "pool", "caps"):
    bad = sorted(includes(name) & HANDLER_PARTS)
    t.is_(bad, [], "app/%s.c knows no handler or the route table" % name)
t.ok("db.h" not in includes("metrics") and "http.h" not in includes("metrics"),
     "the shared counters (metrics.c) know neither the database nor replies")


# ---- the runtime's sandbox -----------------------------------------------------------

SCRIPTS = os.path.join(ROOT, "scripts")


def imported(path):
    """(module names imported) of a Python file, relative imports resolved
    against mlcpy."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                out |= {"mlcpy." + a.name for a in node.names} if not node.module \
                    else {"mlcpy." + node.module}
            elif node.module == "mlcpy":
                out |= {"mlcpy." + a.name for a in node.names}
            else:
                out.add(node.module)
    return out


inside = {f for f in sandbox.RUNTIME_FILES}
seen, todo, found = set(), list(inside), set()
while todo:
    rel = todo.pop()
    if rel in seen:
        continue
    seen.add(rel)
    for mod in imported(os.path.join(SCRIPTS, rel)):
        found.add(mod)
        if mod.startswith("mlcpy.") or mod == "mlcpy":
            target = "mlcpy/__init__.py" if mod == "mlcpy" else mod.replace(".", "/") + ".py"
            if os.path.exists(os.path.join(SCRIPTS, target)):
                todo.append(target)
outside = sorted(s for s in seen if s not in inside)
t.is_(outside, [], "what mlc-runtime imports of the project is all copied into its sandbox "
      "(sandbox.RUNTIME_FILES)", sorted(seen))
forbidden = sorted(m for m in found if m.split(".")[0] in ("pymysql", "MySQLdb")
                   or m in ("mlcpy.db", "mlcpy.config", "mlcpy.spooler", "mlcpy.reconcile",
                            "mlcpy.backends", "mlcpy.layout", "mlcpy.safefs", "mlcpy.bundle"))
t.is_(forbidden, [], "nothing in the sandbox imports the database, the configuration or the spool")


# ---- one clock on the Python side too --------------------------------------------------
# Stored times and ages of rows come from the database (UTC_TIMESTAMP(6),
# TIMESTAMPDIFF); the wall clock of a daemon is read only for its log lines.
clock = []
for path in sorted(glob.glob(os.path.join(SCRIPTS, "mlcpy", "*.py"))):
    if os.path.basename(path) == "log.py":
        continue
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if re.search(r"\butcnow\s*\(|datetime\.now\s*\(|\bdate\.today\s*\(", line):
                clock.append("%s:%d: %s" % (os.path.basename(path), i, line.strip()))
t.is_(clock, [], "no daemon reads its own wall clock for a date (the database's is the one "
      "clock; mlcpy/log.py stamps log lines)")

t.done()
