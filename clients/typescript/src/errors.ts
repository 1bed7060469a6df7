/** Every error Latchkey answers has the shape `{error, message, hint, details}`; the client
 * throws the subclass matching the status code, carrying those fields. */

export class LatchkeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class APIError extends LatchkeyError {
  readonly status: number;
  readonly error: string;
  readonly hint: string | null;
  readonly details: Record<string, unknown>;
  readonly response?: Response;

  constructor(
    status: number,
    error: string,
    message: string,
    hint: string | null = null,
    details: Record<string, unknown> = {},
    response?: Response,
  ) {
    super(message);
    this.status = status;
    this.error = error;
    this.hint = hint;
    this.details = details;
    this.response = response;
  }

  /** `404 not_found: connection `x` was not found (hint: …)`. */
  override toString(): string {
    return `${this.name}: ${this.status} ${this.error}: ${this.message}${this.hint ? ` (hint: ${this.hint})` : ""}`;
  }
}

export class BadRequestError extends APIError {}
export class AuthenticationError extends APIError {}
export class PermissionDeniedError extends APIError {}
export class NotFoundError extends APIError {}
export class ConflictError extends APIError {}
export class ValidationError extends APIError {}
export class RateLimitError extends APIError {}
export class ServerError extends APIError {}

/** Latchkey could not be reached (after the retries allowed for the request). */
export class APIConnectionError extends LatchkeyError {
  readonly cause?: unknown;
  constructor(message: string, cause?: unknown) {
    super(message);
    this.cause = cause;
  }
}

/** A webhook delivery's signature or timestamp did not check out. */
export class WebhookVerificationError extends LatchkeyError {}

const BY_STATUS: Record<number, typeof APIError> = {
  400: BadRequestError,
  401: AuthenticationError,
  403: PermissionDeniedError,
  404: NotFoundError,
  409: ConflictError,
  422: ValidationError,
  429: RateLimitError,
};

/** The typed error for one of Latchkey's error answers (reads the body). */
export async function errorFromResponse(response: Response): Promise<APIError> {
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = await response.json();
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    // not JSON: the status speaks for itself
  }
  const status = response.status;
  const Cls = BY_STATUS[status] ?? (status >= 500 ? ServerError : APIError);
  const details = body.details && typeof body.details === "object" ? (body.details as Record<string, unknown>) : {};
  return new Cls(
    status,
    typeof body.error === "string" ? body.error : `http_${status}`,
    typeof body.message === "string" ? body.message : response.statusText || "request failed",
    typeof body.hint === "string" ? body.hint : null,
    details,
    response,
  );
}
