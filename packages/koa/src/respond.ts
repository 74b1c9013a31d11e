import { Buffer } from 'node:buffer'
import type { Context } from 'koa'
import { groupHeaders, type PaywallOutcome } from '@cogpay/core'

/** Sets a protocol answer (400, 402) as the JSON body. */
export function respond(ctx: Context, outcome: Extract<PaywallOutcome, { type: 'respond' }>): void {
  ctx.status = outcome.status
  ctx.set(outcome.headers)
  ctx.body = outcome.body
}

/** Sets a stored response again (an idempotent retry), as it was. */
export function replay(ctx: Context, outcome: Extract<PaywallOutcome, { type: 'replay' }>): void {
  ctx.status = outcome.status
  // Set, not appended: what middleware before this one set again on the retry is not doubled.
  for (const [name, values] of groupHeaders(outcome.headers)) ctx.set(name, values.length === 1 ? values[0]! : values)
  ctx.body = Buffer.from(outcome.body)
}
