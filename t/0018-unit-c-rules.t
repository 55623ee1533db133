#!/usr/bin/python3
# The rules of the C code that have one owner (docs/DESIGN-NOTES.md "Rules
# of the C code", "One clock"), checked in the source of app/ without an
# instance: no file but app/util.c turns an errno into a status; no
# worker clock is read for a time that is stored (the database's
# UTC_TIMESTAMP(6) is the one clock; only the places listed here read the
# wall clock, for what is never stored); a transaction rolled back by a
# conflict is made again through mlc_db_retry alone; no strcat/strcpy
# chains or fixed SQL buffers (struct mlc_buf assembles text).
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import mlctap as t  # noqa: E402

APP = os.path.join(HERE, "..", "app")


def code(path):
    """The text of a C file without its comments and string literals'
    contents, so that a rule's name in a comment is no hit."""
    with open(path, encoding="utf-8") as f:
        s = f.read()
    s = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), s, flags=re.S)
    s = re.sub(r"//[^\n]*", "", s)
    return s


def hits(pattern, allowed=(), strings=False):
    """(file, line number, line) of every match of pattern in app/*.c and
    app/*.h, except in the files named in allowed."""
    out = []
    for path in sorted(glob.glob(os.path.join(APP, "*.[ch]"))):
        name = os.path.basename(path)
        if name in allowed:
            continue
        for i, line in enumerate(code(path).split("\n"), 1):
            if re.search(pattern, line):
                out.append("%s:%d: %s" % (name, i, line.strip()))
    return out


def none(found, name):
    t.ok(not found, name, *found[:20])


# errno -> status: mlc_errno_status alone
none(hits(r"\bE(NOSPC|DQUOT)\b", allowed=("util.c",)),
     "only app/util.c (mlc_errno_status) maps ENOSPC and EDQUOT to a status")
none(hits(r"\b507\b", allowed=("util.c", "http.c")),
     "no other code chooses 507 by itself (app/http.c names its reason phrase)")
none(hits(r"\bmlc_(reply_detail|err_set)\b"),
     "a failure is written mlc_error(...): the older names mlc_reply_detail and mlc_err_set are gone")

# one clock
none(hits(r"\bmlc_now_utc\b"), "mlc_now_utc (the worker's clock for stored times) is gone")
none(hits(r"\bgettimeofday\s*\(|CLOCK_REALTIME", allowed=("log.c",)),
     "the wall clock is read only for log lines (app/log.c)")
# time(NULL): the master's respawn pacing and shutdown deadline (main.c),
# the metrics' process start (metrics.c), a bundle member's mtime (spool.c)
none(hits(r"\btime\s*\(\s*(NULL|0|&)", allowed=("main.c", "metrics.c", "spool.c")),
     "time() only where nothing is stored from it")
none(hits(r"\b(NOW|CURRENT_TIMESTAMP|SYSDATE|UTC_TIMESTAMP)\s*\(\s*\)"),
     "SQL names the database's clock as UTC_TIMESTAMP(6) (microseconds, UTC), "
     "not NOW() or UTC_TIMESTAMP()")
t.ok(len(hits(r"UTC_TIMESTAMP\(6\)")) >= 8,
     "the statements that store a time name UTC_TIMESTAMP(6)")

# a transaction rolled back by a conflict: mlc_db_retry (app/db.c) alone
# decides whether it is made again, pauses and logs it; no handler loops
# on mlc_db_err_conflict by itself.  route-artifacts.c asks it once, for a
# lost COMMIT (a conflict rolled back the whole transaction: the row did
# not land).
none(hits(r"\bmlc_db_err_conflict\b", allowed=("db.c", "db.h", "route-artifacts.c")),
     "only app/db.c (mlc_db_retry) and the upload's lost-commit check ask mlc_db_err_conflict")
found = [h for h in hits(r"\bmlc_db_err_conflict\b") if h.startswith("route-artifacts.c:")]
t.ok(len(found) <= 1, "app/route-artifacts.c asks mlc_db_err_conflict once at most", *found)
none(hits(r"rolled back by a conflict", allowed=("db.c",)),
     "only mlc_db_retry logs a retry after a conflict")
t.ok(len(hits(r"\bmlc_db_retry\s*\(", allowed=("db.c", "db.h"))) >= 3,
     "the handlers that make a transaction again do it through mlc_db_retry")

# assembled text
none(hits(r"\bstrcat\s*\(|\bstrncat\s*\("), "no strcat/strncat chains")
# float_repr in app/validate.c writes a short exponent into its own buffer
none(hits(r"(?<![nv])sprintf\s*\(", allowed=("validate.c",)), "no unbounded sprintf")
none(hits(r"\bstrcpy\s*\(", allowed=("log.c",)),
     "no strcpy but app/log.c's length-checked copy of the log path")
none(hits(r"\bchar\s+sql\s*\["), "no fixed char sql[] buffers: SQL text goes through mlc_buf")

t.done()
