export {
  Latchkey,
  IDEMPOTENT_METHODS,
  Connections,
  ConnectSessions,
  Webhooks,
  Workspaces,
  ApiKeys,
  Apps,
} from "./client.js";
export type {
  LatchkeyOptions,
  ProxyOptions,
  Connection,
  Token,
  App,
  Workspace,
  ApiKey,
  ConnectSession,
  Webhook,
  WebhookDelivery,
  Page,
  CreateConnection,
  CreateConnectSession,
  CreateWebhook,
} from "./client.js";
export {
  LatchkeyError,
  APIError,
  APIConnectionError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  ServerError,
  ValidationError,
  WebhookVerificationError,
  errorFromResponse,
} from "./errors.js";
export { verifyWebhook, signWebhook, DEFAULT_TOLERANCE_SECONDS } from "./webhooks.js";
export type { HeadersLike, VerifyOptions } from "./webhooks.js";
export type { components, paths } from "./schema.js";
