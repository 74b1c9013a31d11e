import { PassThrough } from 'node:stream'
import Koa from 'koa'
import { meteredRoute, paidRoute, type Meter } from '@cogpay/koa'
import type { CogpayError, PaymentReceiver } from '@cogpay/core'
import { compute, maxPriceFor, streamChunks, type ComputeObserver } from '@cogpay/example-compute'

/**
 * A paid API in Koa: `/weather` costs 100 units, `/report?pages=N` 25 per page, `/compute?steps=N`
 * is metered at 7 units per step of work; `/stream?chunks=N` streams a body paid chunk by chunk. `receiver` is where payments go (default: the uplink in
 * COGPAY_UPLINK); `observer` sees the metered work.
 */
export function createApp(options: { receiver?: PaymentReceiver; observer?: ComputeObserver } = {}): Koa {
  const app = new Koa()
  const paid = options.receiver ? { receiver: options.receiver } : {}
  const weather = paidRoute(100n, paid)
  const report = paidRoute((ctx) => BigInt(Math.min(Number(ctx.query.pages) || 1, 100)) * 25n, paid)
  const metered = meteredRoute(paid)
  const computeRoute = meteredRoute({ ...paid, maxPrice: (ctx) => maxPriceFor(Number(ctx.query.steps)) })

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
    if (ctx.path === '/compute') {
      return computeRoute(ctx, async () => {
        const meter: Meter = ctx.state.meter
        const result = await compute(meter, Number(ctx.query.steps), options.observer)
        if (result.stopped) {
          const reason = meter.signal.reason as CogpayError
          ctx.status = 402
          ctx.set('Cogpay-Error', reason.code)
          ctx.body = { error: reason.toJSON().error, ...result.body }
          return
        }
        ctx.body = result.body
      })
    }
    if (ctx.path === '/stream') {
      return metered(ctx, async () => {
        // A stream body: Koa sends the headers now and each chunk as it is written.
        const body = new PassThrough()
        ctx.type = 'text/plain'
        ctx.body = body
        const write = (chunk: string) =>
          new Promise<void>((resolve) => {
            if (body.write(chunk)) resolve()
            else body.once('drain', resolve)
          })
        void streamChunks(ctx.state.meter, Number(ctx.query.chunks), write, options.observer).then(() => body.end())
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
