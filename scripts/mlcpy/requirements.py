"""requirements.txt against the distributions installed for the runtime.

Runtimes have no network and install nothing, so a requirement is only a
check: a distribution that is not installed fails the deployment (the
model would not load), a version that does not satisfy the specifier is a
warning (it usually loads; the user should know).  Options (-r, -e,
--index-url, ...), per-requirement options (--hash=...) and extras are
accepted and not evaluated; a requirement whose environment marker is
false for the runtime's Python is skipped; URL requirements (name @ url)
are checked by name.

Lines are parsed with python3-packaging (the grammar pip uses), one
logical line (backslash continuations joined) at a time.  A file is
refused when it is larger than FILE_MAX bytes, has a line longer than
LINE_MAX characters or a requirement longer than SPEC_MAX, or its
requirements have more than SPECS_MAX characters together: the parser's
work per requirement grows faster than its length, so these bounds keep
the check of any file short (well under a second) and linear in its size.  The spooler runs the check in a child process with a
deadline (check_file), which also makes the check see exactly the
distributions the runtime's interpreter sees.
"""

import importlib.metadata
import json
import os
import re
import subprocess
import sys

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

FILE_MAX = 1 << 20      # bytes of requirements.txt
LINE_MAX = 4096         # characters of one line
SPEC_MAX = 1024         # characters of one requirement (comments and options removed)
SPECS_MAX = 64 << 10    # characters of all requirements together
CHECK_TIMEOUT = 20.0    # s for the child process of check_file
REPORT_MAX = 20         # sentences of each kind reported; the rest are counted
PYTHON = "/usr/bin/python3"

_COMMENT = re.compile(r"(^|\s)#.*$")
_OPTION = re.compile(r"(^|\s)--?[A-Za-z]")

INSTALL_HINT = {
    "runtimes": "runtimes cannot install packages, so use a model built with the installed ones",
    "trainings": "trainings run without network and cannot install packages; use the "
                 "installed ones",
}


class TooLarge(Exception):
    """The file breaks FILE_MAX or LINE_MAX; str() says which."""


def normalize(name):
    """PEP 503 name normalisation: 'Scikit_Learn' -> 'scikit-learn'."""
    return canonicalize_name(name)


def _clip(text, n=200):
    return text if len(text) <= n else text[:n] + "..."


def logical_lines(text):
    """(first line number, line) of each logical line: comments removed,
    backslash continuations joined, blank lines skipped.  Raises TooLarge."""
    if len(text) > FILE_MAX:
        raise TooLarge("requirements.txt has %d characters; at most %d are accepted"
                       % (len(text), FILE_MAX))
    parts, first = [], None
    for n, raw in enumerate(text.splitlines(), 1):
        if len(raw) > LINE_MAX:
            raise TooLarge("requirements.txt line %d has %d characters; lines of at most %d are "
                           "accepted" % (n, len(raw), LINE_MAX))
        line = _COMMENT.sub("", raw)
        if first is None:
            first = n
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        joined = " ".join(p.strip() for p in parts).strip()
        parts, start, first = [], first, None
        if joined:
            yield start, joined
    joined = " ".join(p.strip() for p in parts).strip()
    if joined:
        yield first, joined


def parse(text):
    """The requirements of a requirements.txt text.

    Returns (requirements, notes): requirements is a list of
    (line number, packaging Requirement, original text); notes are
    sentences about lines that were not checked.  Raises TooLarge (before
    parsing anything, so that a file too large is refused at once).
    """
    specs, notes, total = [], [], 0
    for n, line in logical_lines(text):
        if line.startswith("-"):
            notes.append("requirements.txt line %d: option '%s' ignored" % (n, _clip(line)))
            continue
        # Per-requirement options (name==1.0 --hash=sha256:...) are pip's.
        m = _OPTION.search(line)
        spec = line[:m.start()].strip() if m else line
        if len(spec) > SPEC_MAX:
            raise TooLarge("requirements.txt line %d: the requirement has %d characters; at "
                           "most %d are accepted" % (n, len(spec), SPEC_MAX))
        total += len(spec)
        if total > SPECS_MAX:
            raise TooLarge("requirements.txt: its requirements have more than %d characters "
                           "together (at line %d)" % (SPECS_MAX, n))
        specs.append((n, spec, line))
    reqs = []
    for n, spec, line in specs:
        try:
            req = Requirement(spec)
        except RecursionError:
            notes.append("requirements.txt line %d: '%s' is nested too deeply to check; ignored"
                         % (n, _clip(line)))
            continue
        except (InvalidRequirement, InvalidMarker, ValueError) as e:
            why = str(e).splitlines()[0] if str(e) else "invalid"
            notes.append("requirements.txt line %d: '%s' is not a requirement this service can "
                         "check (%s); ignored" % (n, _clip(line), _clip(why, 120)))
            continue
        reqs.append((n, req, line))
    return reqs, notes


def _marker_applies(req, n, line, notes):
    if req.marker is None:
        return True
    try:
        if req.marker.evaluate():
            return True
    except (UndefinedComparison, UndefinedEnvironmentName, InvalidVersion, RecursionError,
            ValueError) as e:
        notes.append("requirements.txt line %d: the marker of '%s' cannot be evaluated (%s); "
                     "checked as if it applied" % (n, _clip(line), _clip(str(e), 120)))
        return True
    notes.append("requirements.txt line %d: '%s' does not apply to the runtime's Python "
                 "(its marker is false); not checked" % (n, _clip(line)))
    return False


def installed(path=None):
    """{normalised name: (display name, version)} of the distributions on
    path (default: this interpreter's sys.path)."""
    found = {}
    for dist in importlib.metadata.distributions(path=path if path is not None else sys.path):
        name = dist.metadata["Name"]
        if name and normalize(name) not in found:
            found[normalize(name)] = (name, dist.version)
    return found


def _capped(sentences, what):
    if len(sentences) <= REPORT_MAX:
        return sentences
    return sentences[:REPORT_MAX] + ["and %d more %s" % (len(sentences) - REPORT_MAX, what)]


def check(text, have=None, subject="runtimes"):
    """Check a requirements.txt text against the installed distributions
    (`have`, as installed() returns; default: this interpreter's).

    Returns (missing, warnings): missing is a list of reasons the job
    cannot run ("requirement 'foo' is not installed ...", or why the file
    was refused), warnings a list of sentences about version mismatches and
    unchecked lines.  `subject` ("runtimes" or "trainings") says who cannot
    install packages.
    """
    try:
        reqs, warnings = parse(text)
    except TooLarge as e:
        return ["%s; list only the distributions the model needs" % e], []
    have = installed() if have is None else have
    missing = []
    for n, req, line in reqs:
        if not _marker_applies(req, n, line, warnings):
            continue
        found = have.get(normalize(req.name))
        if found is None:
            missing.append("requirement '%s' is not installed (requirements.txt line %d: %s); %s"
                           % (req.name, n, _clip(line), INSTALL_HINT.get(subject, subject)))
            continue
        dist_name, version = found
        if not req.specifier:
            continue
        try:
            ok = req.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            warnings.append("requirement '%s' (line %d): cannot compare the installed version %s "
                            "with '%s'" % (_clip(line), n, version, req.specifier))
            continue
        if not ok:
            warnings.append("requirement '%s' (requirements.txt line %d) is not met: %s %s is "
                            "installed" % (_clip(line), n, dist_name, version))
    return _capped(missing, "missing requirements"), _capped(warnings, "notes")


# ---- the check in a child process ----------------------------------------------

_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from mlcpy import requirements; requirements._child_main(sys.argv[1:])")


def _child_main(argv):
    """In the child (python3 -I): argv = [scripts dir, path, subject]."""
    scripts, path, subject = argv
    with open(path, "rb") as f:
        text = f.read(FILE_MAX + 1).decode("utf-8", "replace")
    have = installed([p for p in sys.path if p and p != scripts])
    missing, warnings = check(text, have, subject)
    sys.stdout.write(json.dumps({"missing": missing, "warnings": warnings}))


def check_file(path, subject="runtimes", timeout=CHECK_TIMEOUT, python=PYTHON):
    """check() of the file at path, run by the runtime's interpreter in
    isolated mode (so that it sees the distributions the runtime will
    import) in a child process that is killed after `timeout` seconds."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        return ["cannot read requirements.txt: %s" % e.strerror], []
    if size > FILE_MAX:
        return ["requirements.txt has %d bytes; at most %d are accepted; list only the "
                "distributions the model needs" % (size, FILE_MAX)], []
    scripts = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run([python, "-I", "-c", _CHILD, scripts, path, subject],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                             cwd="/")
    except subprocess.TimeoutExpired:
        return ["checking requirements.txt took longer than %g s; list only the distributions "
                "the model needs" % timeout], []
    except OSError as e:
        return ["cannot check requirements.txt: %s: %s" % (python, e.strerror)], []
    try:
        result = json.loads(out.stdout.decode("utf-8", "replace"))
        return list(result["missing"]), list(result["warnings"])
    except (ValueError, KeyError, TypeError):
        tail = out.stderr.decode("utf-8", "replace").strip().splitlines()
        return ["cannot check requirements.txt: the check exited with status %s%s"
                % (out.returncode, ": " + _clip(tail[-1], 300) if tail else "")], []


def check_job(job, directory, subject="runtimes"):
    """(missing, warnings) for the requirements.txt a job bundle lists
    (job.json files.env), unpacked in `directory`: check_file() of it, or
    nothing to say when it has none.  Used for deployments ("runtimes")
    and trainings ("trainings") alike; `subject` picks the sentence that
    says who cannot install packages (INSTALL_HINT)."""
    files = job.get("files") if isinstance(job, dict) else None
    env = files.get("env") if isinstance(files, dict) else None
    if not isinstance(env, dict) or not isinstance(env.get("name"), str):
        return [], []
    return check_file(os.path.join(directory, env["name"]), subject=subject)
