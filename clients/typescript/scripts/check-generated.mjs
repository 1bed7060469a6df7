// Fails when src/schema.ts is not what openapi-typescript generates from ../openapi.json
// (regenerate with `npm run generate`).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dir = mkdtempSync(path.join(tmpdir(), "latchkey-types-"));
try {
  const fresh = path.join(dir, "schema.ts");
  execFileSync(path.join(here, "node_modules/.bin/openapi-typescript"), ["../openapi.json", "--output", fresh], {
    cwd: here,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const committed = readFileSync(path.join(here, "src/schema.ts"), "utf8");
  if (readFileSync(fresh, "utf8") !== committed) {
    console.error("src/schema.ts is stale: run `npm run generate` in clients/typescript and commit it");
    process.exit(1);
  }
  console.log("src/schema.ts is up to date with ../openapi.json");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
