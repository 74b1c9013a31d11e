/**
 * A structured logger: pino's (`pino()`), or anything with these four methods. cogpay logs
 * nothing unless the app gives it one. What it logs never carries a secret: payer addresses and
 * request ids yes, shared secrets and uplink passwords no (uplink URIs are redacted), and amounts
 * as decimal strings.
 */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void
  info(fields: Record<string, unknown>, message: string): void
  warn(fields: Record<string, unknown>, message: string): void
  error(fields: Record<string, unknown>, message: string): void
}

/** The default: logs nothing. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
}
