#!/usr/bin/python3
"""Rewrite an OpenAPI 3.0 document as OpenAPI 3.1, in place.

    ui/tools/openapi-3.1.py docs/openapi.json

docs/openapi.json is written as OpenAPI 3.1 (JSON Schema 2020-12 schemas).
Text that still uses 3.0's spelling (after a merge, or copied from an older
document) is turned into 3.1's by this script; it is idempotent:
  - "openapi": "3.0.x"  ->  "3.1.0"
  - {"type": T, "nullable": true}  ->  {"type": [T, "null"]} (and null is
    added to an enum); a nullable oneOf/anyOf gets a {"type": "null"}
    branch; "nullable" on a schema without a type (any value) is dropped
  - "example": v in a schema  ->  "examples": [v]
  - boolean exclusiveMinimum/exclusiveMaximum  ->  the numeric form
The file is written back with two-space indentation, as it is kept.
"""
import json
import sys

SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
              "propertyNames", "unevaluatedItems", "unevaluatedProperties", "additionalItems")


def schema(s):
    """Convert one Schema Object and the schemas inside it."""
    if not isinstance(s, dict):
        return s
    if "nullable" in s:
        nullable = s.pop("nullable") is True
        if nullable:
            t = s.get("type")
            if isinstance(t, str):
                s["type"] = [t, "null"]
            elif isinstance(t, list) and "null" not in t:
                t.append("null")
            else:
                for key in ("oneOf", "anyOf"):
                    if key in s and {"type": "null"} not in s[key]:
                        s[key].append({"type": "null"})
                        break
            if isinstance(s.get("enum"), list) and None not in s["enum"]:
                s["enum"].append(None)
    if "example" in s:
        s["examples"] = [s.pop("example")]
    for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if s.get(key) is True and bound in s:
            s[key] = s.pop(bound)
        elif s.get(key) is False:
            del s[key]
    for key in SCHEMA_MAPS:
        if isinstance(s.get(key), dict):
            for sub in s[key].values():
                schema(sub)
    for key in SCHEMA_LISTS:
        if isinstance(s.get(key), list):
            for sub in s[key]:
                schema(sub)
    for key in SCHEMA_ONE:
        if isinstance(s.get(key), dict):
            schema(s[key])
    return s


def walk(node):
    """Find the Schema Objects of the document: the values of "schema"
    keys (parameters, headers, media types) and components.schemas."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                schema(value)
            else:
                walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)


def convert(doc):
    if str(doc.get("openapi", "")).startswith("3.0"):
        doc["openapi"] = "3.1.0"
    for s in ((doc.get("components") or {}).get("schemas") or {}).values():
        schema(s)
    walk({k: v for k, v in doc.items() if k != "components"})
    walk({k: v for k, v in (doc.get("components") or {}).items() if k != "schemas"})
    return doc


def main(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    text = json.dumps(convert(doc), indent=2, ensure_ascii=False) + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: openapi-3.1.py FILE")
    main(sys.argv[1])
