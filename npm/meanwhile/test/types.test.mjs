// The shipped declarations against the daemon's own OpenAPI document: each record's
// interface in `dist/types.d.ts` names every property of its schema and nothing
// else, so a field the API gains or loses fails here. Read with the TypeScript
// compiler ($MEANWHILE_NPM_TS), from wherever `import "meanwhile"` resolves.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { Client } from "meanwhile";

import { freshHome } from "./support.mjs";

/** Each interface, the schema it is read from, and the fields it has beyond it. */
const RECORDS = [
  ["Attempt", "Attempt", []],
  // `run` answers the task with the warning of its submit (`SubmitAnswer`).
  ["Task", "TaskRecord", ["warning"]],
  ["OutputChunk", "OutputChunk", []],
  // Worded by the client, as meanwhile words a notice for a model.
  ["Notification", "Notification", ["headline", "text"]],
  ["Event", "Event", []],
  ["WaitResult", "WaitOutcome", []],
  ["InputSent", "InputSent", []],
  ["Queue", "QueueInfo", []],
  ["Budget", "BudgetInfo", []],
  ["Schedule", "ScheduleInfo", []],
];

/** The property names of each interface declared in `file`, inherited ones included. */
function interfaces(file) {
  const dir = process.env.MEANWHILE_NPM_TS;
  if (!dir) throw new Error("the test reads the declarations with TypeScript: set MEANWHILE_NPM_TS (scripts/test does)");
  const ts = createRequire(path.join(dir, "node_modules/"))("typescript");
  const program = ts.createProgram([file], { noEmit: true, types: [] });
  const checker = program.getTypeChecker();
  const found = new Map();
  ts.forEachChild(program.getSourceFile(file), (node) => {
    if (!ts.isInterfaceDeclaration(node)) return;
    const type = checker.getDeclaredTypeOfSymbol(checker.getSymbolAtLocation(node.name));
    found.set(
      node.name.text,
      checker.getPropertiesOfType(type).map((p) => p.getName()),
    );
  });
  return found;
}

test("the declared records name every property of their schemas", async (t) => {
  freshHome(t);
  const doc = await new Client().openapi();
  assert.match(doc.openapi, /^3\./);
  const schemas = doc.components.schemas;
  const declarations = path.join(path.dirname(fileURLToPath(import.meta.resolve("meanwhile"))), "types.d.ts");
  const declared = interfaces(declarations);
  for (const [name, schema, beyond] of RECORDS) {
    assert.ok(declared.has(name), `${name} is declared in ${declarations}`);
    const fields = declared.get(name).filter((f) => !beyond.includes(f)).sort();
    assert.deepEqual(fields, Object.keys(schemas[schema].properties).sort(), `${name} and the schema ${schema}`);
  }
});
