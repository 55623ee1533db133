// Validate an OpenAPI document: node validate-openapi.mjs FILE
// Prints one JSON object: {"valid": bool, "version": "3.1", "errors": [...]}.
// The document is checked against the OpenAPI specification's own schema
// for its version (@seriousme/openapi-schema-validator), and every Schema
// Object in it against the JSON Schema 2020-12 meta-schema (which the 3.1
// specification's schema leaves open).
import { readFile } from "node:fs/promises";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";

const file = process.argv[2];
if (!file) {
	console.error("usage: node validate-openapi.mjs FILE");
	process.exit(2);
}
const doc = JSON.parse(await readFile(file, "utf8"));
const validator = new Validator();
const res = await validator.validate(structuredClone(doc));
const errors = res.valid ? [] : (res.errors || []).map((e) => ({
	where: e.instancePath, message: e.message, params: e.params,
}));

// Schema Objects: the values of "schema" keys and components.schemas.
const ajv = new Ajv2020({ strict: false, validateFormats: false });
const schemas = [];
function walk(node, where) {
	if (Array.isArray(node)) {
		node.forEach((v, i) => walk(v, `${where}/${i}`));
	} else if (node && typeof node === "object") {
		for (const [k, v] of Object.entries(node)) {
			if (k === "schema" && v && typeof v === "object") schemas.push([`${where}/${k}`, v]);
			else walk(v, `${where}/${k}`);
		}
	}
}
for (const [name, s] of Object.entries(doc.components?.schemas || {})) {
	schemas.push([`/components/schemas/${name}`, s]);
}
walk({ ...doc, components: { ...doc.components, schemas: undefined } }, "");
for (const [where, s] of schemas) {
	if (!ajv.validateSchema(s)) {
		for (const e of ajv.errors) {
			errors.push({ where: where + e.instancePath, message: `not a JSON Schema 2020-12 schema: ${e.message}` });
		}
	}
}
console.log(JSON.stringify({ valid: errors.length === 0, version: validator.version, errors }));
