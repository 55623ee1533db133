"""One line per event, with the job or deployment id, on stderr.

With a log file (to_file(), the --log option of mlc-spooler and mlc-drift,
which scripts/mlc and the shipped service files use) stderr and stdout
point at that file, and SIGHUP opens the path again: after logrotate moved
the file away, the next lines go to a new file at the same path."""

import datetime
import os
import signal
import sys

_path = None
_subject = None


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(subject, message, *args):
    """Log one event: '<time> <subject>: <message>' on one line."""
    text = message % args if args else message
    text = " ".join(str(text).split())
    sys.stderr.write("%s %s: %s\n" % (_now(), subject, text))
    sys.stderr.flush()


def say(sink, subject, message, *args):
    """One line about subject to sink: this module (or anything with
    event()), a plain callable taking one line, or None (nothing)."""
    if sink is None:
        return
    if hasattr(sink, "event"):
        sink.event(subject, message, *args)
    else:
        sink("%s: %s" % (subject, message % args if args else message))


def deployment(dep_id, message, *args):
    event("deployment %s" % dep_id, message, *args)


def spooler(message, *args):
    event("mlc-spooler", message, *args)


def _switch(path):
    """Open path (appending; created with mode 0640) and
    make it stdout and stderr.  Only system calls: this runs in a signal
    handler, where writing through sys.stderr could re-enter its buffer."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOCTTY,
                 0o640)
    try:
        os.dup2(fd, 2)
        os.dup2(fd, 1)
    finally:
        os.close(fd)


def _raw(text):
    os.write(2, ("%s %s: %s\n" % (_now(), _subject, text)).encode("utf-8", "replace"))


def _on_hup(signum, frame):
    if _path is None:
        return
    try:
        _switch(_path)
    except OSError as e:
        _raw("cannot reopen the log file %s: %s; still writing to the old one"
             % (_path, e.strerror))
        return
    _raw("reopened the log file %s" % _path)


def to_file(path, subject):
    """Log to `path` from now on (raises OSError when it cannot be opened),
    and reopen it on SIGHUP.  `subject` starts the line that says so."""
    global _path, _subject
    sys.stdout.flush()
    sys.stderr.flush()
    _switch(path)
    _path, _subject = path, subject


def handle_hup(subject):
    """Take SIGHUP (the default action would end the process): reopen the
    log file if there is one, else nothing.  Call from the main thread."""
    global _subject
    _subject = _subject or subject
    signal.signal(signal.SIGHUP, _on_hup)
