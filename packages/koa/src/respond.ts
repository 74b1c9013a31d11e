import type { Context } from 'koa'
import type { PaywallOutcome } from '@cogpay/core'

/** Sets a protocol answer (400, 402) as the JSON body. */
export function respond(ctx: Context, outcome: Extract<PaywallOutcome, { type: 'respond' }>): void {
  ctx.status = outcome.status
  ctx.set(outcome.headers)
  ctx.body = outcome.body
}
