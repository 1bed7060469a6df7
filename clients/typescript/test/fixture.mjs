// A live Latchkey for the tests: the testkit's `clients_fixture` example starts the built
// `latchkey serve` on a random loopback port with a temporary data folder, next to the Salesforce
// simulator and a small REST upstream, and prints what the tests need as one line of JSON.
// LATCHKEY_FIXTURE_BIN names a prebuilt fixture binary (scripts/test-clients.sh builds it once).
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

export async function startFixture() {
  const [cmd, args] = process.env.LATCHKEY_FIXTURE_BIN
    ? [process.env.LATCHKEY_FIXTURE_BIN, []]
    : ["cargo", ["run", "-q", "-p", "latchkey-testkit", "--example", "clients_fixture"]];
  const child = spawn(cmd, args, { cwd: root, stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    lines.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`the clients fixture exited (${code}) before printing its environment`)));
  });
  const env = JSON.parse(first);
  env.stop = () =>
    new Promise((resolve) => {
      child.once("exit", resolve);
      child.stdin.end();
      setTimeout(() => child.kill(), 20_000).unref();
    });
  return env;
}

export async function stats(env) {
  return (await fetch(`${env.control_url}/stats`)).json();
}

/** The OpenAPI paths this server serves, to skip tests of endpoints not built here yet. */
export async function servedPaths(env) {
  const doc = await (await fetch(`${env.url}/openapi.json`)).json();
  return new Set(Object.keys(doc.paths));
}
