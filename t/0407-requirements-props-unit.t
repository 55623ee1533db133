#!/usr/bin/python3
# Property tests of the requirements.txt check (scripts/mlcpy/requirements.py),
# no instance needed:
# - random text (requirement-like fragments, operators, markers, URLs,
#   brackets, quotes, continuations, control characters and any Unicode)
#   never makes check() raise: it always answers two lists of sentences,
#   and parse() raises nothing but TooLarge;
# - the time of a check is linear in the input: a random hostile fragment
#   repeated to fill lines, and files of such lines, take time in
#   proportion to their size (the file 4 times larger costs about 4 times
#   more - at most 12 times is allowed on a busy machine - never 16), and
#   no file within the caps takes more than a few seconds.
# Example counts are bounded (MLC_PROP_EXAMPLES, default 400).
import os
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import mlctap as t  # noqa: E402

# Hypothesis keeps caches in ./.hypothesis unless told otherwise: not in the tree.
_hypothesis_dir = tempfile.mkdtemp(prefix="mlc-hypothesis.")
t.defer(shutil.rmtree, _hypothesis_dir, True)
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _hypothesis_dir
try:
    from hypothesis import HealthCheck, given, settings, strategies as st
except ImportError:
    t.skip_all("needs the Debian package python3-hypothesis")
try:
    from mlcpy import requirements as mreq  # noqa: E402
except ImportError as e:
    t.skip_all("needs python3-packaging (%s)" % e)

EXAMPLES = int(os.environ.get("MLC_PROP_EXAMPLES") or 400)
HAVE = {"numpy": ("numpy", "1.24.2"), "scikit-learn": ("scikit-learn", "1.2.1"),
        "pandas": ("pandas", "1.5.3"), "weird": ("weird", "not-a-version")}

FRAGMENTS = ["numpy", "scikit_learn", "Pandas", "weird", "a", "-", "_", ".", "[", "]", "(", ")",
             ",", ";", "@", "==", ">=", "<=", "!=", "~=", "===", "<", ">", "*", ".*", "1.0",
             "1.24.2", "1!2.0rc1.post3.dev4+local.7", "v1", "and", "or", "not", "in", "not in",
             "python_version", "os_name", "sys_platform", "extra", "platform_release",
             "implementation_name", "'3'", '"x"', "'", '"', " ", "\t", "\\", "\\\n", "\n", "\r\n",
             "#", " # comment", "-r", "-e", "--hash=sha256:00ff", "--index-url", "-c x.txt",
             "https://example.invalid/x.whl", "file:///x.whl", "git+https://h/r.git@v1#egg=a",
             "\x00", "\x0b", "\x0c", "\u2028", "\u00e9", "\ufeff", "\ud7ff", "\U0001f600"]

line = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=25).map("".join)
text = st.lists(line, max_size=30).map("\n".join)


def well_formed(result):
    missing, notes = result
    return (isinstance(missing, list) and isinstance(notes, list)
            and all(isinstance(s, str) and s for s in missing + notes))


calls = {"n": 0, "refused": 0}


@settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(text, st.sampled_from(["runtimes", "trainings"]))
def never_crashes(txt, subject):
    calls["n"] += 1
    try:
        reqs, notes = mreq.parse(txt)
        assert all(isinstance(n, int) and n >= 1 for n, _, _ in reqs)
    except mreq.TooLarge:
        calls["refused"] += 1
    assert well_formed(mreq.check(txt, HAVE, subject))


try:
    never_crashes()
    t.ok(True, "%d random requirements files: check() always answers two lists of sentences, "
         "parse() raises only TooLarge" % calls["n"])
except Exception:
    t.ok(False, "random requirements files never crash the check", traceback.format_exc())


def cost(txt, repeat=3):
    """The best of a few timings of check(txt), in seconds."""
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        assert well_formed(mreq.check(txt, HAVE))
        took = time.perf_counter() - t0
        best = took if best is None else min(best, took)
    return best


def filled(unit, length):
    """unit repeated into one line of about length characters (no line break
    inside, so that it is one requirement)."""
    unit = unit.replace("\n", " ").replace("\r", " ") or "a"
    return (unit * (length // len(unit) + 1))[:length]


worst = {"ratio": 0.0, "seconds": 0.0, "unit": None}
# Pieces that keep a requirement valid for long, where the parser works
# hardest, beside the hostile fragments.
CLAUSES = [">=1,", "==1.*,", "!=2.0,", "~=1.2,", "<3,", "[e,", "e2,", " and os_name=='x'",
           " or python_version>'3'", "(", ")", " ", ".", "1", "a"]


@settings(max_examples=max(10, EXAMPLES // 40), deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(CLAUSES), st.sampled_from(CLAUSES),
                          st.sampled_from(FRAGMENTS)), min_size=1, max_size=6).map("".join),
       st.sampled_from([256, 1000, mreq.SPEC_MAX]))
def linear_time(unit, length):
    # A name first, so that the parser goes on into the rest of the line;
    # lines of one requirement each, 8 of them and then 32: the same work
    # per line, so 4 times the lines cost about 4 times the time.
    one = "a" + filled(unit, length - 1)
    small, large = "\n".join([one] * 8), "\n".join([one] * 32)
    a, b = cost(small), cost(large)
    ratio = b / a if a > 0.02 else 0.0  # below 20 ms the timer's noise decides
    if ratio > worst["ratio"]:
        worst.update(ratio=ratio, unit=(unit, length))
    worst["seconds"] = max(worst["seconds"], b)
    assert b < 5.0, "32 lines of %r (length %d) took %.2f s" % (unit, length, b)
    assert ratio < 12.0, ("32 lines of %r (length %d) cost %.1f times 8 lines (%.3f s / %.3f s)"
                          % (unit, length, ratio, b, a))


try:
    linear_time()
    t.ok(True, "random hostile lines: 4 times the lines cost at most 12 times the time, quadratic would be 16 (worst "
         "ratio %.1f, slowest check %.2f s)" % (worst["ratio"], worst["seconds"]))
except Exception:
    t.ok(False, "the check's time is linear in its input", traceback.format_exc())
t.note("worst ratio %.2f for %r" % (worst["ratio"], worst["unit"]))

# Within one line the parser may cost more than linear time; the caps keep
# the worst line cheap.  Lines of the worst known shapes at the caps:
for title, one in (("nested parentheses", "a; " + "(" * 400 + "os_name == 'x'" + ")" * 400),
                   ("a specifier with 200 clauses", "a" + ">=1," * 200 + ">=1"),
                   ("an extras list of 250 names", "a[" + ",".join("e%d" % i for i in range(250)) + "]"),
                   ("a marker of 60 clauses", "a; " + " and ".join(["python_version >= '3'"] * 40))):
    took = cost("\n".join([one[:mreq.SPEC_MAX]] * 64), repeat=1)
    t.ok(took < 5.0, "64 lines of %s at the length cap are checked in under 5 s (%.2f s)" % (title, took))
t.done()
