import type { Response } from 'express'
import type { PaywallOutcome } from '@cogpay/core'

/** Sends a protocol answer (400, 402) as JSON, unless the client already went away. */
export function respond(res: Response, outcome: Extract<PaywallOutcome, { type: 'respond' }>): void {
  if (!res.headersSent) res.status(outcome.status).set(outcome.headers).json(outcome.body)
}
