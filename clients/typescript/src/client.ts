/** `Latchkey`: the client over `fetch`. */

import { APIConnectionError, errorFromResponse } from "./errors.js";
import type { components } from "./schema.js";

type Schemas = components["schemas"];

/** A connection (never a secret value). */
export type Connection = Schemas["ConnectionView"];
/** A fresh access token. */
export type Token = Schemas["TokenView"];
export type App = Schemas["AppView"];
export type Workspace = Schemas["WorkspaceView"];
export type ApiKey = Schemas["KeyView"] & { key?: string };

/** A connect session: the link an end user opens to connect their own account. */
export interface ConnectSession {
  id: string;
  /** Only in the answer that created it (a bearer credential: treat it like a password). */
  token?: string;
  /** Only in the answer that created it. */
  connect_url?: string;
  expires_at: string;
  /** `open`, `completed`, `expired` or `cancelled` (not in the create answer). */
  status?: string;
  end_user?: { id: string; email?: string | null; display_name?: string | null };
  organization?: { id: string; display_name?: string | null } | null;
  allowed_apps?: string[];
  environment?: string;
  connection_id?: string | null;
  [field: string]: unknown;
}

/** A webhook endpoint; `secret` (`whsec_…`) only in the answers that create or rotate it. */
export interface Webhook {
  id: string;
  url: string;
  events: string[];
  description?: string | null;
  enabled?: boolean;
  /** Only in the answers of create and rotateSecret. */
  secret?: string;
  disabled_reason?: string | null;
  created_at?: string;
  [field: string]: unknown;
}

export interface WebhookDelivery {
  /** The `webhook-id` header, the same on every attempt. */
  id: string;
  event_type?: string;
  /** `pending`, `succeeded` or `failed`. */
  status?: string;
  attempts?: number;
  [field: string]: unknown;
}

/** One page of a list. */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface LatchkeyOptions {
  /** Default: `LATCHKEY_URL`, else `http://127.0.0.1:8080`. */
  baseUrl?: string;
  /** Default: `LATCHKEY_API_KEY`. */
  apiKey?: string;
  /** Retries after a network error, for idempotent requests only (default 2). */
  maxRetries?: number;
  /** A cached token is used until this many seconds before its `expires_at` (default 60). */
  tokenMarginSeconds?: number;
  /** Per-request timeout in milliseconds (default 60000). */
  timeoutMs?: number;
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof fetch;
}

export interface ProxyOptions {
  query?: Record<string, string | number | boolean> | URLSearchParams;
  headers?: Record<string, string>;
  /** Sent as it is. */
  body?: BodyInit;
  /** Sent as JSON (sets `content-type`). */
  json?: unknown;
  signal?: AbortSignal;
}

/** Methods that may be sent again after a network error: repeating them changes nothing more. */
export const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
const DEFAULT_URL = "http://127.0.0.1:8080";

type Query = Record<string, string | number | boolean | undefined | null>;

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

const seg = (s: string) => encodeURIComponent(s);

function clean<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Latchkey {
  readonly baseUrl: string;
  readonly maxRetries: number;
  readonly connections: Connections;
  readonly connectSessions: ConnectSessions;
  readonly webhooks: Webhooks;
  readonly workspaces: Workspaces;
  readonly apiKeys: ApiKeys;
  readonly apps: Apps;
  readonly #apiKey: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #marginMs: number;
  readonly #tokens = new Map<string, Token>();
  readonly #inflight = new Map<string, Promise<Token>>();

  constructor(options: LatchkeyOptions = {}) {
    this.baseUrl = (options.baseUrl ?? env("LATCHKEY_URL") ?? DEFAULT_URL).replace(/\/+$/, "");
    const key = options.apiKey ?? env("LATCHKEY_API_KEY");
    if (!key) throw new Error("no API key: pass { apiKey } or set LATCHKEY_API_KEY");
    this.#apiKey = key;
    this.maxRetries = options.maxRetries ?? 2;
    if (this.maxRetries < 0) throw new Error("maxRetries must be 0 or more");
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#timeoutMs = options.timeoutMs ?? 60_000;
    this.#marginMs = (options.tokenMarginSeconds ?? 60) * 1000;
    this.connections = new Connections(this);
    this.connectSessions = new ConnectSessions(this);
    this.webhooks = new Webhooks(this);
    this.workspaces = new Workspaces(this);
    this.apiKeys = new ApiKeys(this);
    this.apps = new Apps(this);
  }

  /** Sends one request, retrying network errors for idempotent methods only. */
  async send(method: string, path: string, init: { query?: Query | URLSearchParams; headers?: Record<string, string>; body?: BodyInit; signal?: AbortSignal } = {}): Promise<Response> {
    const url = new URL(this.baseUrl + path);
    if (init.query instanceof URLSearchParams) {
      init.query.forEach((v, k) => url.searchParams.append(k, v));
    } else if (init.query) {
      for (const [k, v] of Object.entries(init.query)) if (v !== undefined && v !== null) url.searchParams.append(k, String(v));
    }
    const headers = { ...(init.headers ?? {}), authorization: `Bearer ${this.#apiKey}` };
    const retries = IDEMPOTENT_METHODS.has(method.toUpperCase()) ? this.maxRetries : 0;
    for (let attempt = 0; ; attempt++) {
      const timeout = AbortSignal.timeout(this.#timeoutMs);
      const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
      try {
        return await this.#fetch(url, { method: method.toUpperCase(), headers, body: init.body, signal, redirect: "manual" });
      } catch (e) {
        if (init.signal?.aborted) throw e;
        if (attempt >= retries) throw new APIConnectionError(`${method} ${path}: ${(e as Error).message}`, e);
        await sleep(Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2));
      }
    }
  }

  /** A JSON call: the parsed answer, or the typed error. */
  async call<T>(method: string, path: string, opts: { query?: Query; json?: unknown } = {}): Promise<T> {
    const init: Parameters<Latchkey["send"]>[2] = { query: opts.query };
    if (opts.json !== undefined) {
      init.body = JSON.stringify(opts.json);
      init.headers = { "content-type": "application/json" };
    }
    const resp = await this.send(method, path, init);
    if (resp.status >= 400) throw await errorFromResponse(resp);
    if (resp.status === 204) return undefined as T;
    const text = await resp.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** A fresh access token of an OAuth connection, from the cache until shortly before its
   * `expires_at`. `forceRefresh` asks Latchkey to refresh (after the application answered 401). */
  async token(workspace: string, connection: string, options: { forceRefresh?: boolean } = {}): Promise<Token> {
    const key = `${workspace}\u0000${connection}`;
    if (!options.forceRefresh) {
      const cached = this.#tokens.get(key);
      if (cached?.expires_at && Date.parse(cached.expires_at) - this.#marginMs > Date.now()) return cached;
      const pending = this.#inflight.get(key);
      if (pending) return pending;
    }
    const base = `/v1/workspaces/${seg(workspace)}/connections/${seg(connection)}/token`;
    const p = (options.forceRefresh ? this.call<Token>("POST", `${base}/refresh`) : this.call<Token>("GET", base))
      .then((t) => {
        if (t.expires_at) this.#tokens.set(key, t);
        else this.#tokens.delete(key);
        return t;
      })
      .finally(() => {
        if (this.#inflight.get(key) === p) this.#inflight.delete(key);
      });
    this.#inflight.set(key, p);
    return p;
  }

  /** Calls the application through the connection; Latchkey adds the credential. Resolves to
   * the application's `Response` whatever its status; rejects with a typed error when Latchkey
   * itself refuses the call (unknown connection, missing `proxy` scope, pool busy, unreachable). */
  async proxy(workspace: string, connection: string, method: string, path: string, options: ProxyOptions = {}): Promise<Response> {
    const headers = { ...(options.headers ?? {}) };
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) headers["content-type"] = "application/json";
    }
    const resp = await this.send(
      method,
      `/v1/workspaces/${seg(workspace)}/connections/${seg(connection)}/proxy/${path.replace(/^\/+/, "")}`,
      { query: options.query, headers, body, signal: options.signal },
    );
    // Answers from the application carry Latchkey-Queue-Ms; Latchkey's own refusals do not.
    if (resp.status >= 400 && !resp.headers.has("latchkey-queue-ms")) throw await errorFromResponse(resp);
    return resp;
  }
}

class Resource {
  constructor(protected readonly c: Latchkey) {}
}

export interface CreateConnection {
  name: string;
  app: string;
  authMode?: string;
  environment?: string;
  settings?: Record<string, unknown>;
  credentials?: Record<string, unknown>;
  verify?: boolean;
}

export class Connections extends Resource {
  list(workspace: string, filters: { app?: string; environment?: string; status?: string; limit?: number; cursor?: string; [k: string]: string | number | undefined } = {}): Promise<Page<Connection>> {
    return this.c.call("GET", `/v1/workspaces/${seg(workspace)}/connections`, { query: filters });
  }
  get(workspace: string, connection: string): Promise<Connection> {
    return this.c.call("GET", `/v1/workspaces/${seg(workspace)}/connections/${seg(connection)}`);
  }
  create(workspace: string, body: CreateConnection): Promise<Connection> {
    const { authMode, ...rest } = body;
    return this.c.call("POST", `/v1/workspaces/${seg(workspace)}/connections`, { json: clean({ ...rest, auth_mode: authMode }) });
  }
  update(workspace: string, connection: string, fields: Partial<CreateConnection>): Promise<Connection> {
    const { authMode, ...rest } = fields;
    return this.c.call("PATCH", `/v1/workspaces/${seg(workspace)}/connections/${seg(connection)}`, { json: clean({ ...rest, auth_mode: authMode }) });
  }
  delete(workspace: string, connection: string): Promise<void> {
    return this.c.call("DELETE", `/v1/workspaces/${seg(workspace)}/connections/${seg(connection)}`);
  }
  async verify(workspace: string, connection: string): Promise<Connection> {
    const r = await this.c.call<{ connection: Connection }>("POST", `/v1/workspaces/${seg(workspace)}/connections/${seg(connection)}/verify`);
    return r.connection;
  }
}

export interface CreateConnectSession {
  endUser: { id: string; email?: string; display_name?: string };
  organization?: { id: string; display_name?: string };
  allowedApps?: string[];
  environment?: string;
  connection?: string;
  allowedOrigins?: string[];
  expiresInSeconds?: number;
}

export class ConnectSessions extends Resource {
  create(workspace: string, body: CreateConnectSession): Promise<ConnectSession> {
    return this.c.call("POST", `/v1/workspaces/${seg(workspace)}/connect-sessions`, {
      json: clean({
        end_user: body.endUser,
        organization: body.organization,
        allowed_apps: body.allowedApps,
        environment: body.environment,
        connection: body.connection,
        allowed_origins: body.allowedOrigins,
        expires_in_seconds: body.expiresInSeconds,
      }),
    });
  }
  list(workspace: string, page: { limit?: number; cursor?: string } = {}): Promise<Page<ConnectSession>> {
    return this.c.call("GET", `/v1/workspaces/${seg(workspace)}/connect-sessions`, { query: page });
  }
  get(workspace: string, id: string): Promise<ConnectSession> {
    return this.c.call("GET", `/v1/workspaces/${seg(workspace)}/connect-sessions/${seg(id)}`);
  }
  delete(workspace: string, id: string): Promise<void> {
    return this.c.call("DELETE", `/v1/workspaces/${seg(workspace)}/connect-sessions/${seg(id)}`);
  }
}

export interface CreateWebhook {
  url: string;
  /** Default: every event. */
  events?: string[];
  description?: string;
  enabled?: boolean;
}

export class Webhooks extends Resource {
  create(workspace: string, body: CreateWebhook): Promise<Webhook> {
    return this.c.call("POST", `/v1/workspaces/${seg(workspace)}/webhooks`, { json: clean({ ...body }) });
  }
  list(workspace: string, page: { limit?: number; cursor?: string } = {}): Promise<Page<Webhook>> {
    return this.c.call("GET", `/v1/workspaces/${seg(workspace)}/webhooks`, { query: page });
  }
  get(workspace: string, id: string): Promise<Webhook> {
    return this.c.call("GET", `/v1/workspaces/${seg(workspace)}/webhooks/${seg(id)}`);
  }
  update(workspace: string, id: string, fields: Partial<CreateWebhook>): Promise<Webhook> {
    return this.c.call("PATCH", `/v1/workspaces/${seg(workspace)}/webhooks/${seg(id)}`, { json: clean({ ...fields }) });
  }
  delete(workspace: string, id: string): Promise<void> {
    return this.c.call("DELETE", `/v1/workspaces/${seg(workspace)}/webhooks/${seg(id)}`);
  }
  deliveries(workspace: string, id: string, page: { limit?: number; cursor?: string } = {}): Promise<Page<WebhookDelivery>> {
    return this.c.call("GET", `/v1/workspaces/${seg(workspace)}/webhooks/${seg(id)}/deliveries`, { query: page });
  }
  retry(workspace: string, id: string, deliveryId: string): Promise<WebhookDelivery> {
    return this.c.call("POST", `/v1/workspaces/${seg(workspace)}/webhooks/${seg(id)}/deliveries/${seg(deliveryId)}/retry`);
  }
  rotateSecret(workspace: string, id: string): Promise<Webhook> {
    return this.c.call("POST", `/v1/workspaces/${seg(workspace)}/webhooks/${seg(id)}/rotate-secret`);
  }
}

export class Workspaces extends Resource {
  create(slug: string, name?: string): Promise<Workspace> {
    return this.c.call("POST", "/v1/workspaces", { json: clean({ slug, name }) });
  }
  list(page: { limit?: number; cursor?: string } = {}): Promise<Page<Workspace>> {
    return this.c.call("GET", "/v1/workspaces", { query: page });
  }
  get(workspace: string): Promise<Workspace> {
    return this.c.call("GET", `/v1/workspaces/${seg(workspace)}`);
  }
  delete(workspace: string): Promise<void> {
    return this.c.call("DELETE", `/v1/workspaces/${seg(workspace)}`);
  }
}

export class ApiKeys extends Resource {
  /** `workspace: null` makes an admin key. The answer's `key` is shown this once. */
  create(name: string, options: { workspace: string | null; scopes: string[] }): Promise<ApiKey> {
    return this.c.call("POST", "/v1/api-keys", { json: { name, workspace: options.workspace, scopes: options.scopes } });
  }
  list(filters: { workspace?: string; limit?: number; cursor?: string } = {}): Promise<Page<ApiKey>> {
    return this.c.call("GET", "/v1/api-keys", { query: filters });
  }
  revoke(id: string): Promise<void> {
    return this.c.call("DELETE", `/v1/api-keys/${seg(id)}`);
  }
}

export class Apps extends Resource {
  list(filters: { limit?: number; cursor?: string; [k: string]: string | number | undefined } = {}): Promise<Page<App>> {
    return this.c.call("GET", "/v1/apps", { query: filters });
  }
  get(app: string): Promise<App> {
    return this.c.call("GET", `/v1/apps/${seg(app)}`);
  }
}
