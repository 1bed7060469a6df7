import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import sw from "standardwebhooks";
import { signWebhook, verifyWebhook, WebhookVerificationError } from "../dist/index.js";

const { Webhook: Reference } = sw;
const SECRET = "whsec_" + randomBytes(24).toString("base64");
const OTHER = "whsec_" + randomBytes(24).toString("base64");
const BODY = JSON.stringify({ type: "connection.created", timestamp: "2026-11-29T08:00:00Z", data: { id: "conn_01", name: "sf-prod" } });

function referenceHeaders(secret, body, atSeconds, id = "msg_1") {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(atSeconds),
    "webhook-signature": new Reference(secret).sign(id, new Date(atSeconds * 1000), body),
  };
}

const now = () => Math.floor(Date.now() / 1000);

test("a delivery signed by the reference library verifies", async () => {
  const h = referenceHeaders(SECRET, BODY, now());
  assert.equal((await verifyWebhook(h, BODY, SECRET)).data.name, "sf-prod");
  const headers = new Headers(h);
  headers.set("webhook-signature", "v1,bm90IGl0 " + h["webhook-signature"]);
  assert.equal((await verifyWebhook(headers, new TextEncoder().encode(BODY), SECRET)).type, "connection.created");
});

test("a delivery signed by us verifies with the reference library", async () => {
  const ts = now();
  const h = { "webhook-id": "msg_2", "webhook-timestamp": String(ts), "webhook-signature": await signWebhook(SECRET, "msg_2", ts, BODY) };
  assert.equal(new Reference(SECRET).verify(BODY, h).data.id, "conn_01");
  assert.equal(h["webhook-signature"], new Reference(SECRET).sign("msg_2", new Date(ts * 1000), BODY));
});

test("wrong secret, old or future timestamp, tampered body and missing headers are refused", async () => {
  const h = referenceHeaders(SECRET, BODY, now());
  await assert.rejects(verifyWebhook(h, BODY, OTHER), (e) => e instanceof WebhookVerificationError && /signature/.test(e.message));
  await assert.rejects(verifyWebhook(h, BODY.replace("sf-prod", "sf-evil"), SECRET), /signature/);
  await assert.rejects(verifyWebhook(referenceHeaders(SECRET, BODY, now() - 600), BODY, SECRET), /too old/);
  await assert.rejects(verifyWebhook(referenceHeaders(SECRET, BODY, now() + 600), BODY, SECRET), /future/);
  await assert.rejects(verifyWebhook({ "webhook-id": "x" }, BODY, SECRET), /missing/);
  assert.throws(() => new Reference(OTHER).verify(BODY, h));
});
