"""One line per event, with the job or deployment id, on stderr (scripts/mlc
sends it to $MLC_VAR/log/mlc-spooler.log)."""

import datetime
import sys


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(subject, message, *args):
    """Log one event: '<time> <subject>: <message>' on one line."""
    text = message % args if args else message
    text = " ".join(str(text).split())
    sys.stderr.write("%s %s: %s\n" % (_now(), subject, text))
    sys.stderr.flush()


def deployment(dep_id, message, *args):
    event("deployment %s" % dep_id, message, *args)


def spooler(message, *args):
    event("mlc-spooler", message, *args)
