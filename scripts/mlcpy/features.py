"""A deployment's input features, as the C side computed them.

Which featurelist entries are a model's inputs, and when their names can
key rows, is decided in one place: app/featurelist.c (mlc_features_of),
whose result every job bundle carries in job.json as "features":

  {"inputs": [{"name": "age" | null, "type": "cont" | null}, ...],
   "named": true | false, "why": null | "why the names cannot key rows"}

The inputs are the featurelist entries whose kind is 0, null or absent,
in list order, nameless and duplicated ones included; "named" is true when
every input has a non-empty feature_name and no name is given twice.  This
module only reads that record (the runtime and the spooler never compute
it again); it imports nothing (the runtime's sandbox holds a copy).
"""



class Malformed(ValueError):
    """job.json "features" is not what app/featurelist.c writes."""


class Features:
    """inputs: [(name or None, type or None)]; named; why."""

    def __init__(self, inputs, named, why):
        self.inputs, self.named, self.why = inputs, named, why

    @property
    def names(self):
        """The input names when they can key rows, else None."""
        return [n for n, _ in self.inputs] if self.named else None

    def to_json(self):
        return {"inputs": [{"name": n, "type": t} for n, t in self.inputs],
                "named": self.named, "why": self.why}


def read(job):
    """The Features of a parsed job.json, or None when it has none (a
    bundle written before job.json carried them).  Raises Malformed."""
    if not isinstance(job, dict) or job.get("features") is None:
        return None
    rec = job["features"]
    if not isinstance(rec, dict):
        raise Malformed("job.json features is not an object")
    inputs, named, why = rec.get("inputs"), rec.get("named"), rec.get("why")
    if not isinstance(inputs, list):
        raise Malformed("job.json features.inputs is not a list")
    if not isinstance(named, bool):
        raise Malformed("job.json features.named is not true or false")
    if why is not None and not isinstance(why, str):
        raise Malformed("job.json features.why is not a string")
    out, seen = [], set()
    for i, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise Malformed("job.json features.inputs[%d] is not an object" % i)
        name, typ = item.get("name"), item.get("type")
        if name is not None and (not isinstance(name, str) or not name):
            raise Malformed("job.json features.inputs[%d].name is not a name" % i)
        if typ is not None and not isinstance(typ, str):
            raise Malformed("job.json features.inputs[%d].type is not a string" % i)
        if named and (name is None or name in seen):
            raise Malformed("job.json features.named is true, but input %d has %s" % (
                i, "no name" if name is None else "the name of an earlier one"))
        seen.add(name)
        out.append((name, typ))
    if named and not out:
        raise Malformed("job.json features.named is true without inputs")
    return Features(out, named, why)


def read_or_none(job):
    """read(), with a malformed record taken as none."""
    try:
        return read(job)
    except Malformed:
        return None
