import type { ErrorCode } from './codes.js'

/** Options for {@link CogpayError}. */
export interface CogpayErrorOptions {
  /** HTTP status this error maps to when a server answers with it. */
  status?: number
  /** The underlying error. */
  cause?: unknown
}

/**
 * The base of every error cogpay throws or answers with. `code` is stable; `status` is the HTTP
 * status a server uses for it. `expose` and `headers` follow the contract of Express's
 * finalhandler and Koa's default error handler, so either framework renders it correctly.
 */
export class CogpayError extends Error {
  override name = 'CogpayError'
  readonly code: ErrorCode
  readonly status: number
  /** Its message is safe to show to the client (it names only the client's own input). */
  readonly expose = true
  /** Headers a framework's error handler sets on the response. */
  readonly headers: Record<string, string>

  constructor(code: ErrorCode, message: string, options: CogpayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.status = options.status ?? 500
    this.headers = { 'Cogpay-Error': code }
  }

  /** The JSON body cogpay servers answer with: `{ error: { code, message } }`. */
  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } }
  }
}

/** True when `err` is a {@link CogpayError}, optionally with the given code. */
export function isCogpayError(err: unknown, code?: ErrorCode): err is CogpayError {
  return err instanceof CogpayError && (code === undefined || err.code === code)
}
