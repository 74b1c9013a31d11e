import Koa from 'koa'
import { paidRoute } from '@cogpay/koa'
import type { PaymentReceiver } from '@cogpay/core'

/**
 * A paid API in Koa: `/weather` costs 100 units, `/report/:pages` (as `?pages=N`) 25 per page.
 * `receiver` is where payments go (default: the uplink in COGPAY_UPLINK).
 */
export function createApp(options: { receiver?: PaymentReceiver } = {}): Koa {
  const app = new Koa()
  const paid = options.receiver ? { receiver: options.receiver } : {}
  const weather = paidRoute(100n, paid)
  const report = paidRoute((ctx) => BigInt(Math.min(Number(ctx.query.pages) || 1, 100)) * 25n, paid)

  app.use(async (ctx, next) => {
    if (ctx.path === '/weather') {
      return weather(ctx, async () => {
        ctx.body = { forecast: 'sunny', paid: ctx.state.payment.paid.toString() }
      })
    }
    if (ctx.path === '/report') {
      return report(ctx, async () => {
        ctx.body = { pages: Number(ctx.query.pages) || 1, paid: ctx.state.payment.paid.toString() }
      })
    }
    if (ctx.path === '/health') {
      ctx.body = { ok: true }
      return
    }
    await next()
  })
  return app
}
