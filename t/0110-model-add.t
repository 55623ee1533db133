#!/usr/bin/python3
# POST /model/add: what is accepted, what comes back, what is stored, and
# how invalid bodies are refused (accepted and converted as pydantic 2's
# lax mode did, refused with pydantic v1 error shapes).
import datetime
import json
import os
import re
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")

MISSING = ("field required", "value_error.missing")
NOT_STR = ("str type expected", "type_error.str")
NOT_INT = ("value is not a valid integer", "type_error.integer")
NOT_FLOAT = ("value is not a valid float", "type_error.float")
NOT_LIST = ("value is not a valid list", "type_error.list")
NOT_DICT = ("value is not a valid dict", "type_error.dict")
NONE = ("none is not an allowed value", "type_error.none.not_allowed")


def ge(n):
    return ("ensure this value is greater than or equal to %d" % n, "value_error.number.not_ge")


def le(n):
    return ("ensure this value is less than or equal to %d" % n, "value_error.number.not_le")


def max_len(n):
    return ("ensure this value has at most %d characters" % n, "value_error.any_str.max_length")


def err(loc, kind):
    return (["body"] + list(loc), kind[0], kind[1])


def post_raw(text):
    return t.post("/model/add", data=text.encode("utf-8"),
                  headers={"Content-Type": "application/json"})


# ---- a minimal model ---------------------------------------------------------

before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
body = t.minimal_model()
m = t.add_model(body, "POST /model/add with only modelname, modelkind and drift_detection: null answers 201")
t.is_(sorted(m), sorted(t.MODEL_KEYS), "the 201 body has exactly the MLModel fields")
t.like(m.get("modelid"), t.UUID4_RE, "modelid is a server-generated UUID version 4")
t.is_({k: m.get(k) for k in ("modelname", "modelkind")},
      {"modelname": body["modelname"], "modelkind": body["modelkind"]},
      "modelname and modelkind come back as sent")
t.is_({k: m.get(k) for k in t.JSON_COLUMNS}, {k: None for k in t.JSON_COLUMNS},
      "absent optional fields (and drift_detection: null) come back as null")
t.like(m.get("created_at"), t.ISO_UTC_RE, "created_at is ISO 8601 UTC ending in +00:00")
t.like(m.get("updated_at"), t.ISO_UTC_RE, "updated_at is ISO 8601 UTC ending in +00:00")
try:
    created = t.api_time(m["created_at"]).replace(tzinfo=None)
    skew = abs((created - before).total_seconds())
except (ValueError, KeyError, TypeError):
    skew = None
t.ok(skew is not None and skew < 120, "created_at is the current UTC time (not local time)",
     "created_at %s, test clock (UTC) %s" % (m.get("created_at"), before.isoformat()))

m2 = t.add_model(t.minimal_model(modelname=body["modelname"], modelkind=body["modelkind"]),
                 "the same metadata can be registered twice (201)")
t.isnt(m2["modelid"], m["modelid"], "each registration gets its own modelid")

# ---- every field, round trip and storage --------------------------------------

tag = t.uniq("tag")
full_text = """{
 "modelname": "full-%(tag)s", "modelkind": "classification",
 "hyperparameter": [{"parameter": "alpha", "value": 0.1}, {"parameter": "depth", "value": 16}],
 "modelperformance": [{"metric": "Accuracy", "order": 1, "threshold": 0.89}],
 "trainingresource": [{"resource_name": "GPU", "value": 16, "deploy": "string"}],
 "runresource": [{"resource_name": "CPU", "value": 2.5, "deploy": "edge"}],
 "featurelist": [{"feature_name": "age", "type": "cont", "kind": 0, "units": 1},
                 {"feature_name": "sex", "type": "cat", "kind": 1, "units": 0}],
 "inference": [{"type": "endpoint", "value": "http://example.invalid/predict"}],
 "modeltags": ["%(tag)s", "fast", "%(tag)s-b", "%(tag)s"],
 "drift_detection": [{"is_true": 1, "method": 2}]
}""" % {"tag": tag}
full = json.loads(full_text)
resp = post_raw(full_text)
t.is_status(resp, 201, "POST /model/add with every field set answers 201")
fm = t.body_of(resp) or {}
if fm.get("modelid"):
    t.defer(t.delete, "/model/" + fm["modelid"])
t.is_({k: fm.get(k) for k in full}, full,
      "every field comes back exactly as sent (types included, duplicate tags kept in the list)")
t.like(resp.text, r'"threshold"\s*:\s*0\.89\s*[,}]',
       "threshold 0.89 comes back written as 0.89 in the response text")
t.like(resp.text, r'"value"\s*:\s*0\.1\s*[,}]', "value 0.1 comes back written as 0.1")
t.like(resp.text, r'"value"\s*:\s*16\s*[,}]', "value 16 comes back as the integer 16, not 16.0")

rows = t.db_rows("SELECT * FROM models WHERE modelid = %s", fm.get("modelid"))
t.is_(len(rows), 1, "the model is one row of the models table")
row = rows[0] if rows else {}
t.is_({k: row.get(k) for k in ("modelid", "modelname", "modelkind")},
      {k: fm.get(k) for k in ("modelid", "modelname", "modelkind")},
      "the row holds modelid, modelname and modelkind")
stored = {}
for k in t.JSON_COLUMNS:
    try:
        stored[k] = json.loads(row[k]) if row.get(k) is not None else None
    except ValueError:
        stored[k] = "not JSON: %r" % row.get(k)
t.is_(stored, {k: full[k] for k in t.JSON_COLUMNS}, "the row holds each list field as JSON text")
t.like(row.get("modelperformance") or "", r"0\.89[,}\]\s]", "the stored JSON text keeps 0.89 as written")
t.is_([t.db_time(row.get("created_at")), t.db_time(row.get("updated_at"))],
      [t.iso_micros(fm.get("created_at")), t.iso_micros(fm.get("updated_at"))],
      "the row's created_at and updated_at are the times the response shows")
tag_rows = t.db_rows("SELECT tag, model_seq, modelid FROM model_tags WHERE modelid = %s ORDER BY tag",
                     fm.get("modelid"))
t.is_(tag_rows, [{"tag": x, "model_seq": row.get("seq"), "modelid": fm.get("modelid")}
                 for x in sorted({tag, "fast", tag + "-b"})],
      "model_tags has one row per distinct tag (a repeated tag stored once), pointing at the model's seq")

# ---- normalisation ---------------------------------------------------------

m = t.add_model(t.minimal_model(
    modelperformance=[{"metric": "acc"}], featurelist=[{}], trainingresource=[{"value": 3}],
    drift_detection=[{"is_true": 0}]),
    "list items with keys left out are accepted (201)")
t.is_([m.get("modelperformance"), m.get("featurelist"), m.get("trainingresource"), m.get("drift_detection")],
      [[{"metric": "acc", "order": None, "threshold": None}],
       [{"feature_name": None, "type": None, "kind": None, "units": None}],
       [{"resource_name": None, "value": 3, "deploy": None}],
       [{"is_true": 0, "method": None}]],
      "keys left out of list items come back as null")

# ---- conversions (pydantic 2, lax mode) ------------------------------------

name = t.uniq("lax")
resp = t.post("/model/add", json=t.minimal_model(
    modelname=name, drift_detection=[{"is_true": "1", "method": True}, {"is_true": False, "method": " 2 "}],
    modelperformance=[{"metric": "acc", "order": "1.0", "threshold": "0.89"}],
    hyperparameter=[{"parameter": "depth", "value": "16"}, {"parameter": "on", "value": True},
                    {"parameter": "big", "value": "1e16"}],
    featurelist=[{"feature_name": "age", "type": "cont", "kind": "0", "units": "1_000"}]))
t.is_status(resp, 201, "integers sent as \"1\", \" 2 \", \"1.0\", \"1_000\" or true/false, and numbers sent as strings, are accepted (201)")
m = t.body_of(resp) or {}
if m.get("modelid"):
    t.defer(t.delete, "/model/" + m["modelid"])
t.is_(m.get("drift_detection"), [{"is_true": 1, "method": 1}, {"is_true": 0, "method": 2}],
      "drift_detection is_true \"1\" / method true come back as 1 / 1, false / \" 2 \" as 0 / 2")
t.is_([m.get("modelperformance"), m.get("featurelist")],
      [[{"metric": "acc", "order": 1, "threshold": 0.89}],
       [{"feature_name": "age", "type": "cont", "kind": 0, "units": 1000}]],
      "order \"1.0\" -> 1, threshold \"0.89\" -> 0.89, kind \"0\" -> 0, units \"1_000\" -> 1000")
t.like(resp.text, r'"value"\s*:\s*16\.0\s*[,}]',
       "a number sent as the string \"16\" becomes the float 16.0, as the Python service stored it")
t.like(resp.text, r'"value"\s*:\s*1\.0\s*[,}]', "true for a number becomes 1.0")
t.like(resp.text, r'"value"\s*:\s*1e\+16\s*[,}]', "\"1e16\" becomes 1e+16, written as Python writes it")
rows = t.db_rows("SELECT drift_detection, modelperformance, featurelist FROM models WHERE modelid = %s",
                 m.get("modelid"))
row = rows[0] if rows else {}
try:
    stored = [json.loads(row.get(k) or "null") for k in ("drift_detection", "modelperformance", "featurelist")]
except ValueError:
    stored = row
t.is_(stored, [m.get("drift_detection"), m.get("modelperformance"), m.get("featurelist")],
      "the row stores the converted values (is_true 1, method 1), not the strings sent")

t.is_422(t.post("/model/add", json=t.minimal_model(modelname=5)), [err(["modelname"], NOT_STR)],
         "\"modelname\": 5 is refused: a number is not a string")
t.is_422(t.post("/model/add", json=t.minimal_model(modelkind=True, inference=[{"type": "x", "value": 5}],
                                                   hyperparameter=[{"parameter": 7, "value": 1}],
                                                   modeltags=["ok", 3])),
         [err(["modelkind"], NOT_STR), err(["hyperparameter", 0, "parameter"], NOT_STR),
          err(["inference", 0, "value"], NOT_STR), err(["modeltags", 1], NOT_STR)],
         "numbers and booleans for string fields (modelkind, parameter, inference value, a tag) are refused")
t.is_422(t.post("/model/add", json=t.minimal_model(
    drift_detection=[{"is_true": "yes", "method": "1.5"}, {"is_true": "0x1", "method": 1.5}],
    modelperformance=[{"order": "1e3", "threshold": "inf"}])),
         [err(["modelperformance", 0, "order"], NOT_INT),
          err(["modelperformance", 0, "threshold"], ("ensure this value is a finite number", "value_error.number.not_finite")),
          err(["drift_detection", 0, "is_true"], NOT_INT), err(["drift_detection", 0, "method"], NOT_INT),
          err(["drift_detection", 1, "is_true"], NOT_INT), err(["drift_detection", 1, "method"], NOT_INT)],
         "\"yes\", \"1.5\", \"0x1\", 1.5 and \"1e3\" are not integers; \"inf\" is not a finite number")
t.is_422(t.post("/model/add", json=t.minimal_model(drift_detection=[{"is_true": "2", "method": True}])),
         [err(["drift_detection", 0, "is_true"], le(1))], "a converted integer still obeys the bounds (\"2\" > 1)")

# ---- values the published document only gives as examples ----------------------

odd_tag = t.uniq("odd")
resp = t.post("/model/add", json=t.minimal_model(
    featurelist=[{"feature_name": "x", "type": "numeric", "kind": 2, "units": -3},
                 {"feature_name": "y", "type": "", "kind": 7}],
    modeltags=["", odd_tag]))
t.is_status(resp, 201, "featurelist type \"numeric\" and \"\", kinds 2 and 7, and an empty tag are accepted (201)")
m = t.body_of(resp) or {}
if m.get("modelid"):
    t.defer(t.delete, "/model/" + m["modelid"])
t.is_([m.get("featurelist"), m.get("modeltags")],
      [[{"feature_name": "x", "type": "numeric", "kind": 2, "units": -3},
        {"feature_name": "y", "type": "", "kind": 7, "units": None}], ["", odd_tag]],
      "they come back exactly as sent")
t.is_(t.db_rows("SELECT tag FROM model_tags WHERE modelid = %s ORDER BY tag", m.get("modelid")),
      [{"tag": ""}, {"tag": odd_tag}], "the empty tag has its model_tags row like any other")
spaced = t.add_model(t.minimal_model(modeltags=[" ", "  ", odd_tag + " "]),
                     "tags of one and two spaces, and a tag with a trailing space, are accepted (201)")
t.is_(spaced.get("modeltags"), [" ", "  ", odd_tag + " "], "the space tags come back as sent")
t.is_(t.db_rows("SELECT tag FROM model_tags WHERE modelid = %s ORDER BY LENGTH(tag)", spaced.get("modelid")),
      [{"tag": " "}, {"tag": "  "}, {"tag": odd_tag + " "}],
      "each has its own model_tags row: tags differing only in trailing spaces are different tags")


def found(query):
    r = t.get("/model/search?" + query + "&limit=1000")
    return [x.get("modelid") for x in (t.body_of(r) or [])] if r.status_code == 200 else r.status_code


hits = found("tags=")
t.ok(m.get("modelid") in hits and spaced.get("modelid") not in hits,
     "search ?tags= finds the models tagged with the empty tag, not those tagged \" \"", hits)
hits = found("tags=%20")
t.ok(spaced.get("modelid") in hits and m.get("modelid") not in hits,
     "search ?tags=%20 finds the model tagged \" \", not the one tagged \"\"", hits)
t.is_(found("tags=" + odd_tag), [m.get("modelid")],
      "search by a tag does not find the same tag with a trailing space")
t.is_(found("tags=" + odd_tag + "%20"), [spaced.get("modelid")],
      "search by a tag with a trailing space finds only that tag")
t.is_422(t.post("/model/add", json=t.minimal_model(featurelist=[{"type": "t" * 256}])),
         [err(["featurelist", 0, "type"], max_len(255))], "a featurelist type over 255 characters is refused")

m = t.add_model(t.minimal_model(colour="blue", hyperparameter=[{"parameter": "p", "value": 1, "unit": "s"}]),
                "unknown keys do not make a body invalid (201)")
t.ok("colour" not in m and m.get("hyperparameter") == [{"parameter": "p", "value": 1}],
     "unknown keys, top level and inside list items, are dropped", json.dumps(m))

m = t.add_model(t.minimal_model(modeltags=[], hyperparameter=None), "empty lists and explicit nulls are accepted (201)")
t.is_([m.get("modeltags"), m.get("hyperparameter")], [[], None], "an empty list stays [] and an explicit null stays null")
t.is_(t.db_rows("SELECT tag FROM model_tags WHERE modelid = %s", m["modelid"]), [],
      "a model without tags has no model_tags rows")

name = "模型-ünïcödé-" + t.uniq()
m = t.add_model(t.minimal_model(modelname=name, modeltags=["ünï " + tag]), "non-ASCII names and tags are accepted (201)")
t.is_([m.get("modelname"), m.get("modeltags")], [name, ["ünï " + tag]], "non-ASCII names and tags round-trip unchanged")

m = t.add_model(t.minimal_model(modelname="n" * 255, modelkind="k" * 64, modeltags=["%s-%d" % (tag, i) for i in range(64)]),
                "modelname of 255 characters, modelkind of 64 and 64 tags are accepted (201)")
t.is_([len(m.get("modelname") or ""), len(m.get("modelkind") or ""), len(m.get("modeltags") or [])], [255, 64, 64],
      "names at their maximum length and 64 tags are stored whole")
t.is_(t.db_rows("SELECT COUNT(*) AS n FROM model_tags WHERE modelid = %s", m["modelid"]), [{"n": 64}],
      "64 distinct tags give 64 model_tags rows")

resp = t.post("/model/add", json=t.minimal_model(modelname="é" * 255, modelkind="ü" * 64))
t.is_status(resp, 201, "modelname of 255 and modelkind of 64 non-ASCII characters (2 bytes each) are accepted (201): the limits count characters")
m = t.body_of(resp) or {}
if resp.status_code == 201:
    t.defer(t.delete, "/model/" + m["modelid"])
    t.is_([m.get("modelname"), m.get("modelkind")], ["é" * 255, "ü" * 64],
          "255- and 64-character non-ASCII names are stored whole")
else:
    t.skip("255- and 64-character non-ASCII names are stored whole", "they were not accepted")

# ---- concurrent registrations ---------------------------------------------------
# Models sharing tags insert neighbouring model_tags keys, so concurrent
# transactions can deadlock inside MariaDB (error 1213); the API must retry
# such a transaction rather than answer 500.  A correct server always
# passes; one that does not retry fails here in most runs while model_tags
# holds few models (as in a fresh test instance), since the conflicting gap
# locks span the gaps between the modelids already there.

shared = [t.uniq("shared-a"), t.uniq("shared-b")]
kind = t.uniq("concurrent")
codes, created, lock = {}, [], threading.Lock()


def register_many(n):
    import requests
    s = requests.Session()
    for _ in range(n):
        r = s.post(t.BASE_URL + "/model/add", timeout=30,
                   json={"modelname": "c", "modelkind": kind, "drift_detection": None, "modeltags": shared})
        with lock:
            codes.setdefault(r.status_code, r.text[:300])
            if r.status_code == 201:
                created.append(r.json()["modelid"])


threads = [threading.Thread(target=register_many, args=(50,)) for _ in range(16)]
for th in threads:
    th.start()
for th in threads:
    th.join()
for modelid in created:
    t.defer(t.delete, "/model/" + modelid)
t.is_(sorted(codes), [201], "16 clients registering 50 models each with the same two tags all get 201")
if set(codes) != {201}:
    t.diag("first answer per status: %s" % codes)
t.is_(t.db_rows("SELECT tag, COUNT(*) AS n FROM model_tags WHERE tag IN (%s, %s) GROUP BY tag ORDER BY tag",
                *shared), [{"tag": x, "n": len(created)} for x in sorted(shared)],
      "each concurrently registered model has its two model_tags rows")

# ---- validation ------------------------------------------------------------

t.is_422(t.post("/model/add", json={}), [err(["modelname"], MISSING), err(["modelkind"], MISSING),
                                         err(["drift_detection"], MISSING)],
         "POST /model/add {} reports modelname, modelkind and drift_detection as missing")
t.is_422(t.post("/model/add", json={"modelname": "a", "modelkind": "b"}),
         [err(["drift_detection"], MISSING)],
         "drift_detection is required even though it may be null")
t.is_422(t.post("/model/add", json=t.minimal_model(modelname=None)), [err(["modelname"], NONE)],
         "modelname null is refused")
t.is_422(t.post("/model/add", json=t.minimal_model(modelname=["a"], modelkind={"a": 1})),
         [err(["modelname"], NOT_STR), err(["modelkind"], NOT_STR)],
         "a list or object for a string field is refused as not a string")
t.is_422(t.post("/model/add", json=t.minimal_model(modelname="n" * 256, modelkind="k" * 65)),
         [err(["modelname"], max_len(255)), err(["modelkind"], max_len(64))],
         "modelname over 255 and modelkind over 64 characters are refused")
t.is_422(t.post("/model/add", json=t.minimal_model(drift_detection=[{"is_true": 2, "method": 3}])),
         [err(["drift_detection", 0, "is_true"], le(1)), err(["drift_detection", 0, "method"], le(2))],
         "drift_detection is_true above 1 and method above 2 are refused")
t.is_422(t.post("/model/add", json=t.minimal_model(drift_detection=[{"is_true": -1, "method": -1}])),
         [err(["drift_detection", 0, "is_true"], ge(0)), err(["drift_detection", 0, "method"], ge(0))],
         "negative drift_detection values are refused")
t.is_422(t.post("/model/add", json=t.minimal_model(drift_detection=[{"is_true": 1, "method": 0},
                                                                    {"is_true": 1, "method": 9}])),
         [err(["drift_detection", 1, "method"], le(2))],
         "the loc of an error in the second list item uses the integer index 1")
t.is_422(t.post("/model/add", json=t.minimal_model(drift_detection=[{"is_true": "yes", "method": 0}])),
         [err(["drift_detection", 0, "is_true"], NOT_INT)],
         "a string for an integer field is refused as not a valid integer")
t.is_422(t.post("/model/add", json=t.minimal_model(drift_detection={"is_true": 1, "method": 0})),
         [err(["drift_detection"], NOT_LIST)],
         "an object where a list is expected is refused as not a valid list")
t.is_422(t.post("/model/add", json=t.minimal_model(drift_detection=[5])),
         [err(["drift_detection", 0], NOT_DICT)],
         "a list item that is not an object is refused as not a valid dict")
t.is_422(t.post("/model/add", json=t.minimal_model(hyperparameter=[{"parameter": "p", "value": "abc"}],
                                                   modelperformance=[{"order": "first", "threshold": "high"}])),
         [err(["hyperparameter", 0, "value"], NOT_FLOAT), err(["modelperformance", 0, "order"], NOT_INT),
          err(["modelperformance", 0, "threshold"], NOT_FLOAT)],
         "non-numeric values for number fields are refused as not a valid float / integer")
t.is_422(t.post("/model/add", json=t.minimal_model(featurelist=[{"type": 1, "kind": "two", "units": "m"}])),
         [err(["featurelist", 0, "type"], NOT_STR), err(["featurelist", 0, "kind"], NOT_INT),
          err(["featurelist", 0, "units"], NOT_INT)],
         "a featurelist type that is not a string, and kind or units that are not integers, are refused")
t.is_422(t.post("/model/add", json=t.minimal_model(modeltags="fast")), [err(["modeltags"], NOT_LIST)],
         "modeltags given as a string is refused as not a valid list")
t.is_422(t.post("/model/add", json=t.minimal_model(modeltags=["ok", ["nested"]])),
         [err(["modeltags", 1], NOT_STR)], "a modeltags item that is not a string is refused")
t.is_422(t.post("/model/add", json=t.minimal_model(modeltags=["x%d" % i for i in range(65)])),
         [(["body", "modeltags"], "ensure this value has at most 64 items", "value_error.list.max_items")],
         "more than 64 modeltags are refused")

name = t.uniq("invalid")
t.is_422(t.post("/model/add", json={"modelname": name, "modelkind": [], "drift_detection": [{"is_true": 3, "method": "x"}],
                                    "featurelist": [{"kind": 0.5}], "modeltags": "x", "runresource": [{"value": "big"}]}),
         [err(["modelkind"], NOT_STR), err(["drift_detection", 0, "is_true"], le(1)),
          err(["drift_detection", 0, "method"], NOT_INT), err(["featurelist", 0, "kind"], NOT_INT),
          err(["modeltags"], NOT_LIST), err(["runresource", 0, "value"], NOT_FLOAT)],
         "a body with six faults lists all six at once")
t.is_(t.db_rows("SELECT modelid FROM models WHERE modelname = %s", name), [],
      "a refused body stores nothing")

# More tags than one statement stores (rows go in 8 at a time), with
# repeats across those groups: one row per distinct tag; the most a
# model may have is 64.
many = ["%s-%02d" % (tag, i % 19) for i in range(40)]
mm = t.add_model(t.minimal_model(modeltags=many), "a model with 40 tags, 19 distinct (201)")
t.is_(mm.get("modeltags"), many, "its 40 tags come back as sent")
t.is_([r["tag"] for r in t.db_rows("SELECT tag FROM model_tags WHERE modelid = %s ORDER BY tag",
                                   mm.get("modelid"))],
      sorted(set(many)), "model_tags has its 19 distinct tags once each")
resp = t.post("/model/add", json=t.minimal_model(modeltags=["x%d" % i for i in range(65)]))
t.is_(resp.status_code, 422, "65 tags are refused (422)")

for text, what in (("[1, 2]", "an array"), ('"model"', "a string"), ("42", "a number")):
    t.is_422(post_raw(text), [(["body"], NOT_DICT[0], NOT_DICT[1])],
             "a body that is %s, not an object, is refused as not a valid dict" % what)

t.done()
