import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  APIConnectionError,
  AuthenticationError,
  ConflictError,
  Latchkey,
  NotFoundError,
  PermissionDeniedError,
  ValidationError,
} from "../dist/index.js";
import { servedPaths, startFixture } from "./fixture.mjs";

let env;
let admin;
let ws;

/** The global fetch, recording each call and failing the first `failures` ones like a refused connection. */
function countingFetch(failures = 0) {
  const seen = [];
  const f = async (url, init) => {
    seen.push([init?.method ?? "GET", new URL(url).pathname]);
    if (seen.length <= failures) throw new TypeError("fetch failed (simulated connection refused)");
    return fetch(url, init);
  };
  return { f, seen };
}

before(async () => {
  env = await startFixture();
  admin = new Latchkey({ baseUrl: env.url, apiKey: env.admin_key });
  ws = `ts-${Math.random().toString(16).slice(2, 10)}`;
  await admin.workspaces.create(ws, "TypeScript tests");
  await admin.connections.create(ws, {
    name: "billing",
    app: "generic-api-key",
    settings: { base_url: env.upstream_url, verify_path: "/health" },
    credentials: { api_key: env.upstream_api_key },
  });
});

after(async () => {
  await env?.stop();
});

test("baseUrl and apiKey default from LATCHKEY_URL and LATCHKEY_API_KEY", async () => {
  process.env.LATCHKEY_URL = env.url;
  process.env.LATCHKEY_API_KEY = env.admin_key;
  try {
    const lk = new Latchkey();
    assert.equal(lk.baseUrl, env.url);
    const ids = (await lk.apps.list({ limit: 500 })).items.map((a) => a.id);
    assert.ok(ids.includes("salesforce"));
  } finally {
    delete process.env.LATCHKEY_URL;
    delete process.env.LATCHKEY_API_KEY;
  }
  assert.throws(() => new Latchkey(), /LATCHKEY_API_KEY/);
});

test("connections: create, list, get, update, verify, delete", async () => {
  const created = await admin.connections.create(ws, {
    name: "crm backup",
    app: "generic-api-key",
    settings: { base_url: env.upstream_url, verify_path: "/health" },
    credentials: { api_key: env.upstream_api_key },
  });
  assert.equal(created.status, "active");
  assert.deepEqual(created.credential_fields, ["api_key"]);
  assert.ok(!JSON.stringify(created).includes(env.upstream_api_key));
  const page = await admin.connections.list(ws);
  assert.deepEqual(page.items.map((c) => c.name).sort(), ["billing", "crm backup"]);
  assert.equal(page.next_cursor, null);
  assert.equal((await admin.connections.get(ws, "crm backup")).id, created.id);
  const edited = await admin.connections.update(ws, "crm backup", { settings: { concurrency_level: 3 } });
  assert.equal(edited.settings.concurrency_level, 3);
  assert.equal((await admin.connections.verify(ws, created.id)).status, "active");
  await admin.connections.delete(ws, "crm backup");
  await assert.rejects(admin.connections.get(ws, "crm backup"), (e) => {
    assert.ok(e instanceof NotFoundError);
    assert.equal(e.status, 404);
    assert.equal(e.error, "not_found");
    assert.match(e.message, /crm backup/);
    return true;
  });
});

test("errors are typed and carry the server's error, message and hint", async () => {
  await assert.rejects(
    admin.connections.create(ws, { name: "billing", app: "generic-api-key", verify: false, settings: { base_url: env.upstream_url }, credentials: { api_key: "x" } }),
    ConflictError,
  );
  await assert.rejects(
    admin.connections.create(ws, { name: "wrong", app: "generic-api-key", settings: { base_url: env.upstream_url, verify_path: "/me" }, credentials: { api_key: "nope" } }),
    (e) => e instanceof ValidationError && e.error === "verification_failed" && typeof e.hint === "string" && e.hint.length > 0,
  );
  await assert.rejects(admin.connections.get(ws, "wrong"), NotFoundError);
  const stranger = new Latchkey({ baseUrl: env.url, apiKey: "lk_" + "x".repeat(43) });
  await assert.rejects(stranger.connections.list(ws), (e) => e instanceof AuthenticationError && e.error === "unauthorized" && !!e.hint);
});

test("token() is cached until shortly before expires_at", async () => {
  const sf = env.salesforce;
  const { f, seen } = countingFetch();
  const lk = new Latchkey({ baseUrl: env.url, apiKey: env.admin_key, fetch: f });
  const [a, b] = await Promise.all([lk.token(sf.workspace, sf.connection), lk.token(sf.workspace, sf.connection)]);
  const c = await lk.token(sf.workspace, sf.connection);
  assert.ok(a.access_token && a.expires_at && a.instance_url);
  assert.equal(b.access_token, a.access_token);
  assert.equal(c.access_token, a.access_token);
  const tokenPath = `/v1/workspaces/${sf.workspace}/connections/${sf.connection}/token`;
  assert.equal(seen.filter(([m, p]) => m === "GET" && p === tokenPath).length, 1);
  const refreshed = await lk.token(sf.workspace, sf.connection, { forceRefresh: true });
  assert.notEqual(refreshed.access_token, a.access_token);
  assert.equal((await lk.token(sf.workspace, sf.connection)).access_token, refreshed.access_token);

  const short = countingFetch();
  const eager = new Latchkey({ baseUrl: env.url, apiKey: env.admin_key, fetch: short.f, tokenMarginSeconds: 10 * 86400 });
  await eager.token(sf.workspace, sf.connection);
  await eager.token(sf.workspace, sf.connection);
  assert.equal(short.seen.filter(([m, p]) => m === "GET" && p === tokenPath).length, 2);
});

test("proxy() answers the application's Response; Latchkey's refusals are typed errors", async () => {
  const r = await admin.proxy(ws, "billing", "POST", "/echo", { query: { page: 2 }, json: { hello: "world" } });
  assert.ok(r instanceof Response);
  assert.equal(r.status, 200);
  assert.ok(r.headers.has("latchkey-queue-ms"));
  const echoed = await r.json();
  assert.equal(echoed.query, "page=2");
  // The application received the key (it echoed it) and Latchkey blanked the echo on the way back.
  assert.equal(echoed.headers["x-api-key"], "[REDACTED]");
  assert.ok(!JSON.stringify(echoed).includes(env.upstream_api_key));
  assert.equal(echoed.headers["content-type"], "application/json");
  assert.ok(!JSON.stringify(echoed).includes(env.admin_key));

  const forbidden = await admin.proxy(ws, "billing", "GET", "forbidden");
  assert.equal(forbidden.status, 403);

  await assert.rejects(admin.proxy(ws, "nope", "GET", "/echo"), NotFoundError);
  const reader = await admin.apiKeys.create("reader", { workspace: ws, scopes: ["read"] });
  const lk = new Latchkey({ baseUrl: env.url, apiKey: reader.key });
  await assert.rejects(lk.proxy(ws, "billing", "GET", "/echo"), (e) => e instanceof PermissionDeniedError && e.details.required_scope === "proxy");
});

test("network errors are retried for idempotent requests only, and boundedly", async () => {
  let c = countingFetch(2);
  let lk = new Latchkey({ baseUrl: env.url, apiKey: env.admin_key, fetch: c.f, maxRetries: 2 });
  assert.equal((await lk.apps.list({ limit: 1 })).items.length, 1);
  assert.equal(c.seen.length, 3);

  c = countingFetch(1);
  lk = new Latchkey({ baseUrl: env.url, apiKey: env.admin_key, fetch: c.f, maxRetries: 5 });
  const slug = `never-${Math.random().toString(16).slice(2, 10)}`;
  await assert.rejects(lk.workspaces.create(slug), APIConnectionError);
  assert.deepEqual(c.seen, [["POST", "/v1/workspaces"]]);
  await assert.rejects(admin.workspaces.get(slug), NotFoundError);

  c = countingFetch(1000);
  lk = new Latchkey({ baseUrl: env.url, apiKey: env.admin_key, fetch: c.f, maxRetries: 3 });
  await assert.rejects(lk.connections.list(ws), APIConnectionError);
  assert.equal(c.seen.length, 4);
});

describe("endpoints built on other branches", () => {
  test("connect sessions", async (t) => {
    const paths = await servedPaths(env);
    if (!paths.has("/v1/workspaces/{ws}/connect-sessions")) {
      t.skip("this server has no /v1/workspaces/{ws}/connect-sessions yet");
      return;
    }
    const s = await admin.connectSessions.create(ws, { endUser: { id: "u-1", email: "u1@example.com" }, allowedApps: ["generic-api-key"], expiresInSeconds: 600 });
    assert.ok(s.id && s.token && s.connect_url && s.expires_at);
    const got = await admin.connectSessions.get(ws, s.id);
    assert.equal(got.id, s.id);
    assert.equal(got.token, undefined);
    assert.deepEqual((await admin.connectSessions.list(ws)).items.map((x) => x.id), [s.id]);
    await admin.connectSessions.delete(ws, s.id);
  });

  test("webhooks", async (t) => {
    const paths = await servedPaths(env);
    if (!paths.has("/v1/workspaces/{ws}/webhooks")) {
      t.skip("this server has no /v1/workspaces/{ws}/webhooks yet");
      return;
    }
    const hook = await admin.webhooks.create(ws, { url: "http://127.0.0.1:9/hook", events: ["connection.*"], description: "ts" });
    assert.match(hook.secret, /^whsec_/);
    assert.deepEqual((await admin.webhooks.list(ws)).items.map((h) => h.id), [hook.id]);
    assert.equal((await admin.webhooks.update(ws, hook.id, { description: "renamed" })).description, "renamed");
    await admin.webhooks.deliveries(ws, hook.id);
    const rotated = await admin.webhooks.rotateSecret(ws, hook.id);
    assert.notEqual(rotated.secret, hook.secret);
    await admin.webhooks.delete(ws, hook.id);
  });
});
