"""requirements.txt against the distributions installed for the runtime.

Runtimes have no network and install nothing, so a requirement is only a
check: a distribution that is not installed fails the deployment (the
model would not load), a version that does not satisfy the specifier is a
warning (it usually loads; the user should know).  Options (-r, -e,
--index-url, ...), URLs, extras and environment markers are accepted and
not evaluated.
"""

import ast
import importlib.metadata
import re
import subprocess

NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
LINE_RE = re.compile(r"^(?P<name>" + NAME + r")\s*(?:\[[^\]]*\])?\s*(?P<rest>[^;]*?)\s*(?:;.*)?$")
CLAUSE_RE = re.compile(r"^(===|==|!=|~=|<=|>=|<|>)\s*([A-Za-z0-9.*+!_-]+)$")
VERSION_RE = re.compile(
    r"^v?(?:(?P<epoch>\d+)!)?(?P<release>\d+(?:\.\d+)*)"
    r"(?:[-_.]?(?P<pre_l>a|b|c|rc|alpha|beta|pre|preview)[-_.]?(?P<pre_n>\d*))?"
    r"(?:(?:-(?P<post_n1>\d+))|(?:[-_.]?(?:post|rev|r)[-_.]?(?P<post_n2>\d*)))?"
    r"(?:[-_.]?dev[-_.]?(?P<dev_n>\d*))?"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$", re.I)
PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


def normalize(name):
    """PEP 503 name normalisation: 'Scikit_Learn' -> 'scikit-learn'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(text):
    """A sortable key for a PEP 440 version, or None if it does not parse."""
    m = VERSION_RE.match(text.strip())
    if not m:
        return None
    release = [int(x) for x in m.group("release").split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    post = m.group("post_n1") or m.group("post_n2")
    has_post = m.group("post_n1") is not None or m.group("post_n2") is not None
    has_dev = m.group("dev_n") is not None
    if m.group("pre_l"):
        pre = (PRE_RANK[m.group("pre_l").lower()], int(m.group("pre_n") or 0))
    elif has_dev and not has_post:
        pre = (-1, 0)          # 1.0.dev1 sorts before 1.0a1
    else:
        pre = (3, 0)           # a final release sorts after its pre-releases
    return (int(m.group("epoch") or 0), tuple(release), pre,
            int(post or 0) if has_post else -1,
            int(m.group("dev_n") or 0) if has_dev else float("inf"))


def _release(text):
    m = VERSION_RE.match(text.strip())
    return [int(x) for x in m.group("release").split(".")] if m else None


def _prefix_match(installed, prefix):
    """installed matches 'prefix.*' (release segments compared as numbers)."""
    have, want = _release(installed), _release(prefix)
    if have is None or want is None:
        return installed.startswith(prefix)
    have = have + [0] * max(0, len(want) - len(have))
    return have[:len(want)] == want


def satisfies(installed, op, wanted):
    """Whether version `installed` satisfies one clause `op wanted`;
    None when the versions cannot be compared."""
    if op == "===":
        return installed == wanted
    if op in ("==", "!=") and wanted.endswith(".*"):
        hit = _prefix_match(installed, wanted[:-2])
        return hit if op == "==" else not hit
    have, want = version_key(installed), version_key(wanted)
    if have is None or want is None:
        return None
    if op == "~=":
        rel = _release(wanted)
        return have >= want and len(rel) > 1 and _prefix_match(installed, ".".join(
            str(x) for x in rel[:-1]))
    return {"==": have == want, "!=": have != want, "<=": have <= want,
            ">=": have >= want, "<": have < want, ">": have > want}[op]


def parse(text):
    """The requirements of a requirements.txt text.

    Returns (requirements, notes): requirements is a list of
    (line number, name, [(op, version), ...], original text); notes are
    warnings about lines that were not checked.
    """
    reqs, notes = [], []
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            notes.append("requirements.txt line %d: option '%s' ignored" % (n, line))
            continue
        m = LINE_RE.match(line)
        if not m or "://" in m.group("name"):
            notes.append("requirements.txt line %d: '%s' is not a requirement this "
                         "service can check; ignored" % (n, line))
            continue
        rest = m.group("rest").strip()
        if rest.startswith("(") and rest.endswith(")"):
            rest = rest[1:-1].strip()
        clauses = []
        if rest and not rest.startswith("@"):
            for part in rest.split(","):
                cm = CLAUSE_RE.match(part.strip())
                if not cm:
                    notes.append("requirements.txt line %d: version specifier '%s' not "
                                 "understood; only the name is checked" % (n, rest))
                    clauses = []
                    break
                clauses.append((cm.group(1), cm.group(2)))
        reqs.append((n, m.group("name"), clauses, line))
    return reqs, notes


_installed = None


def runtime_sys_path(python="/usr/bin/python3"):
    """sys.path of the runtime's interpreter (isolated mode, as the sandbox
    runs it), so that the check sees what the runtime will import."""
    out = subprocess.run([python, "-I", "-c", "import sys; print(repr(sys.path))"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return [p for p in ast.literal_eval(out.strip()) if p]


def installed(path=None):
    """{normalised name: (display name, version)} of installed distributions."""
    global _installed
    if _installed is None or path is not None:
        found = {}
        for dist in importlib.metadata.distributions(path=path or runtime_sys_path()):
            name = dist.metadata["Name"]
            if name and normalize(name) not in found:
                found[normalize(name)] = (name, dist.version)
        if path is not None:
            return found
        _installed = found
    return _installed


def check(text, have=None):
    """Check a requirements.txt text.

    Returns (missing, warnings): missing is a list of reasons ("requirement
    'foo' is not installed ..."), warnings a list of sentences about
    version mismatches and unchecked lines.
    """
    have = installed() if have is None else have
    reqs, warnings = parse(text)
    missing = []
    for n, name, clauses, line in reqs:
        found = have.get(normalize(name))
        if found is None:
            missing.append("requirement '%s' is not installed (requirements.txt line %d: %s); "
                           "runtimes cannot install packages, so use a model built with the "
                           "installed ones" % (name, n, line))
            continue
        dist_name, version = found
        for op, wanted in clauses:
            ok = satisfies(version, op, wanted)
            if ok is None:
                warnings.append("requirement '%s' (line %d): cannot compare the installed "
                                "version %s with '%s%s'" % (line, n, version, op, wanted))
            elif not ok:
                warnings.append("requirement '%s' (requirements.txt line %d) is not met: "
                                "%s %s is installed" % (line, n, dist_name, version))
                break
    return missing, warnings
