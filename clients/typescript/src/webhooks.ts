/** Checking webhook deliveries, signed the Standard Webhooks way: HMAC-SHA256 over
 * `{webhook-id}.{webhook-timestamp}.{raw body}` under the secret (`whsec_` + base64 of the key);
 * `webhook-signature` is a space-separated list of `v1,<base64>`. Uses Web Crypto, so it runs in
 * Node 18+, browsers and edge runtimes. */

import { WebhookVerificationError } from "./errors.js";

/** How far a delivery's timestamp may be from now, in seconds. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export type HeadersLike = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeadersLike, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") {
    return (headers as Headers).get(name) ?? undefined;
  }
  for (const [k, v] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v.join(" ") : v;
  }
  return undefined;
}

function b64decode(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new WebhookVerificationError("the webhook secret is not `whsec_` followed by base64");
  }
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function b64encode(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function bytesOf(body: string | Uint8Array): Uint8Array {
  return typeof body === "string" ? new TextEncoder().encode(body) : body;
}

/** The `webhook-signature` value (`v1,<base64>`) of a delivery. */
export async function signWebhook(
  secret: string,
  msgId: string,
  timestamp: number,
  body: string | Uint8Array,
): Promise<string> {
  const key = b64decode(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret);
  const prefix = new TextEncoder().encode(`${msgId}.${timestamp}.`);
  const raw = bytesOf(body);
  const signed = new Uint8Array(prefix.length + raw.length);
  signed.set(prefix);
  signed.set(raw, prefix.length);
  const k = await crypto.subtle.importKey("raw", key as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", k, signed as BufferSource));
  return `v1,${b64encode(mac)}`;
}

function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

export interface VerifyOptions {
  /** Seconds a timestamp may be away from now (default 300). */
  toleranceSeconds?: number;
  /** The current time in seconds (for tests). */
  now?: number;
}

/** Checks a delivery and resolves to its parsed JSON body (`{type, timestamp, data}`). `body`
 * must be the raw request body exactly as received. Rejects with a `WebhookVerificationError`
 * when a header is missing, the timestamp is too far from now, or no signature matches. */
export async function verifyWebhook(
  headers: HeadersLike,
  body: string | Uint8Array,
  secret: string,
  options: VerifyOptions = {},
): Promise<unknown> {
  const id = header(headers, "webhook-id");
  const ts = header(headers, "webhook-timestamp");
  const sigs = header(headers, "webhook-signature");
  if (!id || !ts || !sigs) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header");
  }
  if (!/^\d+$/.test(ts)) throw new WebhookVerificationError("webhook-timestamp is not a number of seconds");
  const timestamp = Number(ts);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = options.now ?? Date.now() / 1000;
  if (timestamp < now - tolerance) throw new WebhookVerificationError("the delivery's timestamp is too old");
  if (timestamp > now + tolerance) throw new WebhookVerificationError("the delivery's timestamp is in the future");
  const expected = (await signWebhook(secret, id, timestamp, body)).slice(3);
  for (const candidate of sigs.split(" ")) {
    const [version, value] = [candidate.slice(0, candidate.indexOf(",")), candidate.slice(candidate.indexOf(",") + 1)];
    if (version === "v1" && sameText(value, expected)) {
      const text = typeof body === "string" ? body : new TextDecoder().decode(body);
      try {
        return JSON.parse(text);
      } catch {
        throw new WebhookVerificationError("the delivery's body is not JSON");
      }
    }
  }
  throw new WebhookVerificationError("no signature matches: wrong secret, or the body was changed");
}
