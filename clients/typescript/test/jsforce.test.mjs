// jsforce pointed at Latchkey's proxy with a proxy-only key, against the Salesforce simulator;
// it survives an expired session because Latchkey refreshes once and retries.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { salesforce } from "../examples/jsforce-example.mjs";
import { startFixture, stats } from "./fixture.mjs";

let env;
before(async () => {
  env = await startFixture();
});
after(async () => {
  await env?.stop();
});

test("jsforce through the proxy survives an expired session", async () => {
  const sf = env.salesforce;
  const conn = salesforce(env.url, sf.proxy_key, sf.workspace, sf.connection);
  const accounts = await conn.query("SELECT Id, Name FROM Account");
  assert.equal(accounts.totalSize, 3);
  assert.ok(accounts.records.some((r) => r.Name === "Acme Corporation"));

  const before = (await stats(env)).salesforce_refreshes;
  await fetch(`${env.control_url}/expire-sessions`, { method: "POST" });
  const limits = await conn.limits();
  assert.ok(limits.DailyApiRequests.Max > 0);
  assert.equal((await stats(env)).salesforce_refreshes, before + 1, "Latchkey refreshed exactly once");
  const contacts = await conn.query("SELECT Id FROM Contact");
  assert.ok(contacts.totalSize >= 1);
});
