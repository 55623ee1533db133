#!/usr/bin/python3
# GET, PATCH and DELETE /model/{model_id}.
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")


def not_found(resp, modelid, name):
    body = t.is_error(resp, 404, name)
    t.is_(body.get("detail"), "model '%s' not found" % modelid, name + ": the detail names the model id")


def tags_in_db(modelid):
    return sorted(r["tag"] for r in t.db_rows("SELECT tag FROM model_tags WHERE modelid = %s", modelid))


def search_ids(tag):
    resp = t.get("/model/search", params={"tags": tag})
    return t.ids(t.body_of(resp)) if resp.status_code == 200 else resp.status_code


tag1, tag2, tag3, tag4 = (t.uniq("tag%d" % i) for i in range(1, 5))
original = t.add_model(t.minimal_model(
    modelkind="regression",
    hyperparameter=[{"parameter": "alpha", "value": 1}],
    featurelist=[{"feature_name": "age", "type": "cont", "kind": 0, "units": 1}],
    modeltags=[tag1, tag2], drift_detection=[{"is_true": 0, "method": 0}]),
    "setup: register a model with tags T1 and T2")
mid = original["modelid"]
path = "/model/" + mid

# ---- GET ---------------------------------------------------------------------

resp = t.get(path)
t.is_status(resp, 200, "GET /model/{id} of a registered model answers 200")
t.is_json(resp, "GET /model/{id} sends JSON as application/json")
t.is_(t.body_of(resp), original, "GET /model/{id} returns the model exactly as POST /model/add did")
absent = str(uuid.uuid4())
not_found(t.get("/model/" + absent), absent, "GET /model/{id} of an unknown UUID")
not_found(t.get("/model/no-such-model"), "no-such-model", "GET /model/{id} of an id that is not a UUID")

# ---- PATCH -------------------------------------------------------------------

time.sleep(0.01)
resp = t.patch(path, json={"modelname": "renamed"})
t.is_status(resp, 200, "PATCH {modelname} answers 200")
patched = t.body_of(resp) or {}
expected = dict(original, modelname="renamed", updated_at=patched.get("updated_at"))
t.is_(patched, expected, "PATCH returns the updated model with only modelname (and updated_at) changed")
t.is_(patched.get("created_at"), original["created_at"], "PATCH leaves created_at alone")
t.ok(t.iso_micros(patched.get("updated_at") or "") > t.iso_micros(original["updated_at"]),
     "PATCH moves updated_at forward",
     "before %s, after %s" % (original["updated_at"], patched.get("updated_at")))
t.like(patched.get("updated_at"), t.ISO_UTC_RE, "the new updated_at is ISO 8601 UTC ending in +00:00")
t.is_(t.body_of(t.get(path)), patched, "GET after PATCH returns what PATCH returned")
row = (t.db_rows("SELECT modelname, updated_at FROM models WHERE modelid = %s", mid) or [{}])[0]
t.is_([row.get("modelname"), t.db_time(row.get("updated_at"))], ["renamed", t.iso_micros(patched.get("updated_at"))],
      "the models row holds the new name and updated_at")
t.is_(tags_in_db(mid), sorted([tag1, tag2]), "a PATCH without modeltags keeps the model_tags rows")

resp = t.patch(path, json={"modeltags": [tag3, tag3, tag4]})
t.is_status(resp, 200, "PATCH {modeltags} answers 200")
t.is_((t.body_of(resp) or {}).get("modeltags"), [tag3, tag3, tag4], "PATCH returns the new modeltags")
t.is_(tags_in_db(mid), sorted([tag3, tag4]), "PATCH replaces the model_tags rows (a repeated tag stored once)")
t.is_([search_ids(tag1), search_ids(tag3)], [[], [mid]], "search no longer finds the old tag and finds the new one")

resp = t.patch(path, json={"modeltags": None})
t.is_([resp.status_code, (t.body_of(resp) or {}).get("modeltags", "absent")], [200, None],
      "PATCH {modeltags: null} clears the tags (200, modeltags null)")
t.is_(tags_in_db(mid), [], "clearing the tags removes every model_tags row of the model")

resp = t.patch(path, json={"hyperparameter": [{"parameter": "lr", "value": 0.001}],
                           "modelperformance": [{"metric": "f1", "order": 2, "threshold": 0.89}],
                           "drift_detection": None})
t.is_status(resp, 200, "PATCH of several list fields answers 200")
got = t.body_of(resp) or {}
t.is_([got.get("hyperparameter"), got.get("modelperformance"), got.get("drift_detection"), got.get("featurelist")],
      [[{"parameter": "lr", "value": 0.001}], [{"metric": "f1", "order": 2, "threshold": 0.89}], None,
       original["featurelist"]],
      "PATCH replaces the list fields given (drift_detection may become null) and keeps the others")
t.like(resp.text, r'"threshold"\s*:\s*0\.89\s*[,}]', "a patched threshold 0.89 comes back written as 0.89")

t.is_422(t.patch(path, json={"modelname": 5}),
         [(["body", "modelname"], "str type expected", "type_error.str")],
         "PATCH {modelname: 5} is refused: a number is not a string")
resp = t.patch(path, json={"drift_detection": [{"is_true": " 1 ", "method": "2"}],
                           "featurelist": [{"feature_name": "f", "type": "num", "kind": 3}],
                           "modeltags": [""]})
t.is_([resp.status_code] + [(t.body_of(resp) or {}).get(k) for k in ("drift_detection", "featurelist", "modeltags")],
      [200, [{"is_true": 1, "method": 2}], [{"feature_name": "f", "type": "num", "kind": 3, "units": None}], [""]],
      "PATCH converts is_true \" 1 \" / method \"2\" to 1 / 2 and keeps type \"num\", kind 3 and the empty tag")
t.is_(t.db_rows("SELECT tag FROM model_tags WHERE modelid = %s", mid), [{"tag": ""}],
      "PATCH stores the empty tag in model_tags")

before = t.body_of(t.get(path))
resp = t.patch(path, json={})
t.is_status(resp, 200, "PATCH {} answers 200")
t.is_({k: v for k, v in (t.body_of(resp) or {}).items() if k != "updated_at"},
      {k: v for k, v in before.items() if k != "updated_at"}, "PATCH {} changes no field")

resp = t.patch(path, json={"modelid": str(uuid.uuid4()), "created_at": "2000-01-01T00:00:00.000000Z", "colour": "red"})
got = t.body_of(resp) or {}
t.is_([resp.status_code, got.get("modelid"), got.get("created_at"), "colour" in got],
      [200, mid, original["created_at"], False],
      "PATCH ignores modelid, created_at and unknown keys in the body")

before = t.body_of(t.get(path))
t.is_422(t.patch(path, json={"modelname": None}),
         [(["body", "modelname"], "none is not an allowed value", "type_error.none.not_allowed")],
         "PATCH {modelname: null} is refused")
t.is_422(t.patch(path, json={"drift_detection": [{"is_true": 3}]}),
         [(["body", "drift_detection", 0, "is_true"], "ensure this value is less than or equal to 1",
           "value_error.number.not_le")],
         "PATCH {drift_detection: [{is_true: 3}]} is refused")
t.is_422(t.patch(path, json={"modelkind": "k" * 65, "modeltags": "x", "featurelist": [{"type": 5}]}),
         [(["body", "modelkind"], "ensure this value has at most 64 characters", "value_error.any_str.max_length"),
          (["body", "featurelist", 0, "type"], "str type expected", "type_error.str"),
          (["body", "modeltags"], "value is not a valid list", "type_error.list")],
         "PATCH with three faults lists all three")
t.is_422(t.patch(path, data=b"[]", headers={"Content-Type": "application/json"}),
         [(["body"], "value is not a valid dict", "type_error.dict")],
         "PATCH with a body that is not an object is refused")
t.is_(t.body_of(t.get(path)), before, "a refused PATCH changes nothing")

absent = str(uuid.uuid4())
not_found(t.patch("/model/" + absent, json={"modelname": "x"}), absent, "PATCH /model/{id} of an unknown id")
t.is_(t.db_rows("SELECT modelid FROM models WHERE modelid = %s", absent), [], "PATCH of an unknown id creates nothing")

# ---- DELETE ------------------------------------------------------------------

shared = t.uniq("shared")
victim = t.add_model(t.minimal_model(modeltags=[shared]), "setup: register a model to delete (tag S)")
keeper = t.add_model(t.minimal_model(modeltags=[shared]), "setup: register a second model with tag S")
vpath = "/model/" + victim["modelid"]
resp = t.delete(vpath)
t.is_status(resp, 200, "DELETE /model/{id} answers 200")
t.is_json(resp, "DELETE /model/{id} sends JSON as application/json")
t.is_(t.body_of(resp), {"message": "Model was deleted successfully", "detail": "model deleted",
                       "modelid": victim["modelid"]},
      "DELETE /model/{id} answers {message: \"Model was deleted successfully\" (as the Python "
      "service did), detail: \"model deleted\", modelid}")
t.is_([t.db_rows("SELECT modelid FROM models WHERE modelid = %s", victim["modelid"]),
       t.db_rows("SELECT tag FROM model_tags WHERE modelid = %s", victim["modelid"])], [[], []],
      "the deleted model's row and its model_tags rows are gone")
not_found(t.get(vpath), victim["modelid"], "GET of a deleted model")
not_found(t.delete(vpath), victim["modelid"], "a second DELETE of the same model")
not_found(t.patch(vpath, json={"modelname": "x"}), victim["modelid"], "PATCH of a deleted model")
t.is_(search_ids(shared), [keeper["modelid"]], "the other model with the same tag is still found")
t.is_(t.body_of(t.get("/model/" + keeper["modelid"])), keeper, "deleting one model leaves another untouched")

t.done()
