#!/usr/bin/python3
# mlcpy.requirements without an instance: requirements.txt checks with
# python3-packaging (names normalised, markers, options, URLs), hostile
# files fail fast with a reason, and the check in a child interpreter
# keeps its deadline.
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
import mlctap as t  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
try:
    from mlcpy import requirements as mreq  # noqa: E402
except ImportError as e:
    t.bail_out("needs the Debian package python3-packaging (%s)" % e)

# ---- requirements ---------------------------------------------------------------------

have = {"numpy": ("numpy", "1.24.2"), "scikit-learn": ("scikit-learn", "1.2.1"),
        "pandas": ("pandas", "1.5.3")}
miss, warn = mreq.check("# a comment\n\nscikit_learn>=1.0  # inline\nnumpy==1.24.2\n"
                        "Scikit-Learn[alldeps] ~= 1.2 ; python_version > '3'\n"
                        "numpy==1.24.* \\\n    --hash=sha256:00ff \\\n    --hash=sha256:ff00\n"
                        "pandas (>=1.0, <2)\n", have)
t.is_([miss, warn], [[], []],
      "names normalised, extras and continuations with --hash accepted, satisfied "
      "specifiers are silent")
miss, warn = mreq.check("numpy>=2.0\nnosuchthing==1\n-r other.txt\n", have)
t.like(" ".join(miss), r"^requirement 'nosuchthing' is not installed .*runtimes cannot install",
       "a missing distribution is named")
t.like(warn[-1] if warn else "", r"numpy>=2\.0.*numpy 1\.24\.2 is installed",
       "a version mismatch is a warning naming both versions")
t.like(warn[0] if warn else "", r"option '-r other.txt' ignored", "options are noted and ignored")
miss, warn = mreq.check("pywin32 ; sys_platform == 'win32'\n", have)
t.is_(miss, [], "a requirement whose marker is false for the runtime is not required")
t.like(" ".join(warn), r"does not apply", "... and says so")
miss, warn = mreq.check("numpy @ https://example.invalid/numpy.whl\nfoo @ file:///x.whl\n", have)
t.like(" ".join(miss), r"requirement 'foo' is not installed", "URL requirements are checked by name")
miss, warn = mreq.check("numpy>=1.0,<\n", have)
t.is_(miss, [], "an invalid requirement is not a failure ...")
t.like(" ".join(warn), r"not a requirement this service can check", "... but a note")
miss, _ = mreq.check("nosuch\n", have, subject="trainings")
t.like(" ".join(miss), r"trainings run without network", "trainings are told their own reason")
miss, _ = mreq.check("".join("missing%d\n" % i for i in range(100)), have)
t.is_([len(miss), miss[-1]], [mreq.REPORT_MAX + 1, "and 80 more missing requirements"],
      "at most %d sentences of a kind, then a count" % mreq.REPORT_MAX)

hostile = [
    ("a 1 MiB line", "a" * (1 << 20), r"line 1 has 1048576 characters; lines of at most 4096"),
    ("'a[' * 100000", "a[" * 100000, r"line 1 has 200000 characters"),
    ("deep parentheses", "a; " + "(" * 1000 + "os_name == 'x'" + ")" * 1000,
     r"requirement has \d+ characters; at most 1024"),
    ("a specifier with 300 clauses", "a" + ">=1," * 300, r"at most 1024"),
    ("100000 short requirements", "x\n" * 100000, r"more than 65536 characters together"),
    ("2 MiB", "a\n" * (1 << 20), r"at most 1048576"),
    ("a continued line of 800 kB", "a \\\n" * 200000, r"requirement has 399999 characters; at most 1024"),
]
for title, text, pattern in hostile:
    t0 = time.monotonic()
    miss, warn = mreq.check(text, have)
    took = time.monotonic() - t0
    t.like(" ".join(miss), pattern, "%s fails with a clear reason" % title)
    # Linear work takes milliseconds; a backtracking parser takes minutes.
    # 10 s tells them apart on a loaded machine too.
    t.ok(took < 10.0, "%s is refused in linear time (%.3f s, bound 10 s)" % (title, took))
miss, warn = mreq.check("a; " + "(" * 500 + "os_name == 'x'" + ")" * 500, have)
t.is_(miss, [], "nesting the parser cannot follow is not a crash ...")
t.like(" ".join(warn), r"nested too deeply|not a requirement|does not apply", "... but a note")

# The spooler's way: a child process (the runtime's interpreter) with a deadline.
tmp = tempfile.mkdtemp(prefix="mlc-req.")
path = os.path.join(tmp, "requirements.txt")
with open(path, "w") as f:
    f.write("numpy\nsurely-not-installed-%d>=1.0\n" % os.getpid())
miss, warn = mreq.check_file(path)
t.like(" ".join(miss), r"surely-not-installed-\d+' is not installed",
       "check_file sees the runtime interpreter's distributions (numpy is there, the other not)")
with open(path, "w") as f:
    f.write("a" * (1 << 20))
t0 = time.monotonic()
miss, _ = mreq.check_file(path)
t.like(" ".join(miss), r"lines of at most 4096", "check_file refuses a 1 MiB line ...")
t.ok(time.monotonic() - t0 < 10.0, "... without reading it through a backtracking parser (bound 10 s)")
with open(path, "w") as f:
    f.write("a\n" * (1 << 20))
miss, _ = mreq.check_file(path)
t.like(" ".join(miss), r"has 2097152 bytes; at most 1048576", "a file over 1 MiB is refused unread")
slow = os.path.join(tmp, "slow-python")
with open(slow, "w") as f:
    f.write("#!/bin/sh\nexec sleep 30\n")
os.chmod(slow, 0o755)
with open(path, "w") as f:
    f.write("numpy\n")
t0 = time.monotonic()
miss, _ = mreq.check_file(path, timeout=0.5, python=slow)
t.like(" ".join(miss), r"took longer than 0.5 s", "a check past its deadline is killed, with a reason")
t.ok(time.monotonic() - t0 < 5, "... at the deadline")
for name in os.listdir(tmp):
    os.unlink(os.path.join(tmp, name))
os.rmdir(tmp)
t.done()
