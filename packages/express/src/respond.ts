import { Buffer } from 'node:buffer'
import type { Response } from 'express'
import { groupHeaders, type PaywallOutcome } from '@cogpay/core'

/** Sends a protocol answer (400, 402) as JSON, unless the client already went away. */
export function respond(res: Response, outcome: Extract<PaywallOutcome, { type: 'respond' }>): void {
  if (!res.headersSent) res.status(outcome.status).set(outcome.headers).json(outcome.body)
}

/** Sends a stored response again (an idempotent retry), as it was. */
export function replay(res: Response, outcome: Extract<PaywallOutcome, { type: 'replay' }>): void {
  res.status(outcome.status)
  // Set, not appended: what middleware before this one set again on the retry is not doubled.
  for (const [name, values] of groupHeaders(outcome.headers)) res.setHeader(name, values.length === 1 ? values[0]! : values)
  res.end(Buffer.from(outcome.body))
}
