#!/usr/bin/python3
# GET /openapi.json (and /docs/openapi.json, the same file): nginx serves
# the OpenAPI 3.1 document, which validates as OpenAPI 3.1 (with a
# validator from npm, ui/test/validate-openapi.mjs) and describes exactly
# the routes of app/routes.c.
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance("MLC_ROOT")

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ROUTE_RE = re.compile(r'^\s*\{\s*"([A-Z]+)"\s*,\s*"(/[^"]*)"\s*,\s*(\w+)\s*,\s*([^}]*)\}')

# The route table: { "GET", "/model/{model_id}", handler, flags },
routes = {}
with open(os.path.join(os.environ["MLC_ROOT"], "app", "routes.c"), encoding="utf-8") as f:
    for line in f:
        m = ROUTE_RE.match(line)
        if m:
            routes[(m.group(1), m.group(2))] = "MLC_R_JSON" in m.group(4)
t.ok(len(routes) >= 20, "app/routes.c's route table parses (%d routes)" % len(routes))

resp = t.get("/openapi.json")
t.is_status(resp, 200, "GET /openapi.json answers 200")
t.is_json(resp, "GET /openapi.json is sent as application/json and parses")
doc = t.body_of(resp)
if not isinstance(doc, dict):
    raise RuntimeError("no OpenAPI document to check")
old = t.get("/docs/openapi.json")
t.is_((old.status_code, old.headers.get("Content-Type"), old.content),
      (200, resp.headers.get("Content-Type"), resp.content),
      "GET /docs/openapi.json answers the same document")
with open(os.path.join(os.environ["MLC_ROOT"], "docs", "openapi.json"), "rb") as f:
    t.ok(f.read() == resp.content, "it is docs/openapi.json as kept in the repository")

t.like(doc.get("openapi"), r"^3\.1\.\d+$", "the document is OpenAPI 3.1 (openapi is \"3.1.x\")")

# The validator from npm (installed in ui/node_modules by "npm ci", which
# "mlc up" runs): the document against the OpenAPI 3.1 schema, its Schema
# Objects against JSON Schema 2020-12.
ui = os.path.join(os.environ["MLC_ROOT"], "ui")
node = shutil.which("node")
if node and os.path.isdir(os.path.join(ui, "node_modules", "@seriousme", "openapi-schema-validator")):
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as tmp:
        tmp.write(resp.content)
        tmp.flush()
        run = subprocess.run([node, os.path.join(ui, "test", "validate-openapi.mjs"), tmp.name],
                             capture_output=True, text=True, cwd=ui, timeout=120)
    try:
        verdict = json.loads(run.stdout)
    except ValueError:
        verdict = {"valid": None, "stdout": run.stdout, "stderr": run.stderr[-2000:]}
    t.is_((verdict.get("valid"), verdict.get("version")), (True, "3.1"),
          "the document validates as OpenAPI 3.1", verdict)
else:
    t.skip("the document validates as OpenAPI 3.1",
           "no node or no ui/node_modules (npm ci in ui/ did not run)")


def keys_named(node, name, where="#"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == name:
                yield where
            yield from keys_named(v, name, where + "/" + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from keys_named(v, name, "%s/%d" % (where, i))


# OpenAPI 3.0's spellings are no error in 3.1 (unknown keywords are
# allowed) but mean nothing there: null is a type now.
t.is_(sorted(keys_named(doc, "nullable")), [],
      "no schema says \"nullable\" (3.0's spelling; ui/tools/openapi-3.1.py converts it)")
scheme = ((doc.get("components") or {}).get("securitySchemes") or {}).get("bearerAuth") or {}
t.is_((scheme.get("type"), scheme.get("scheme")), ("http", "bearer"),
      "the document has the bearerAuth security scheme (HTTP bearer), which Swagger UI's Authorize uses")


def resolve(ref):
    """The object a local $ref points at, or None."""
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return None
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def deref(obj):
    while isinstance(obj, dict) and "$ref" in obj:
        obj = resolve(obj["$ref"])
    return obj


ops = {}
for path, item in (doc.get("paths") or {}).items():
    for method, op in (item or {}).items():
        if method in METHODS:
            ops[(method.upper(), path)] = op

documented, table = set(ops), set(routes)
t.is_(sorted(documented), sorted(table),
      "the document's (method, path) pairs are exactly those of app/routes.c",
      "  missing from the document: %s" % sorted(table - documented),
      "  not in app/routes.c: %s" % sorted(documented - table))

no_2xx = sorted("%s %s" % k for k, op in ops.items()
                if not any(re.match(r"^2\d\d$", str(c)) for c in (op.get("responses") or {})))
t.is_(no_2xx, [], "every operation lists a 2xx response")


def path_params(path, op):
    params = [deref(p) for p in (op.get("parameters") or []) +
              (doc["paths"][path].get("parameters") or [])]
    return {p.get("name") for p in params if isinstance(p, dict) and p.get("in") == "path"}


def json_body(op):
    body = deref(op.get("requestBody")) or {}
    return "application/json" in (body.get("content") or {})


need_422 = sorted("%s %s" % (m, p) for (m, p), op in ops.items()
                  if (json_body(op) or "{" in p or path_params(p, op))
                  and "422" not in {str(c) for c in (op.get("responses") or {})})
t.is_(need_422, [], "every operation with a JSON body or a path parameter lists 422")

undeclared = sorted("%s %s {%s}" % (m, p, name) for (m, p), op in ops.items()
                    for name in re.findall(r"\{([^}]+)\}", p)
                    if name not in path_params(p, op))
t.is_(undeclared, [], "every {name} in a path is declared as a path parameter")

body_mismatch = sorted("%s %s" % k for k in set(ops) & set(routes) if json_body(ops[k]) != routes[k])
t.is_(body_mismatch, [], "the operations with a JSON body are the MLC_R_JSON rows of the route table")


def refs(node, where="#"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield where, v
            else:
                yield from refs(v, where + "/" + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from refs(v, "%s/%d" % (where, i))


all_refs = list(refs(doc))
dangling = sorted("%s -> %s" % (w, r) for w, r in all_refs if resolve(r) is None)
t.ok(len(all_refs) > 0, "the document uses $ref (%d of them)" % len(all_refs))
t.is_(dangling, [], "every $ref resolves inside the document")

t.done()
