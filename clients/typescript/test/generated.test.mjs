// The committed types (src/schema.ts) are what openapi-typescript makes of clients/openapi.json.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

test("src/schema.ts is generated from the committed openapi.json", () => {
  const out = execFileSync(process.execPath, ["scripts/check-generated.mjs"], { cwd: here, encoding: "utf8" });
  assert.match(out, /up to date/);
});
