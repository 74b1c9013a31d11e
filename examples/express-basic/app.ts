import express, { type Express } from 'express'
import { meteredRoute, paidRoute, type Meter } from '@cogpay/express'
import type { CogpayError, PaymentReceiver } from '@cogpay/core'
import { compute, maxPriceFor, streamChunks, type ComputeObserver } from '@cogpay/example-compute'

/**
 * A paid API in Express: `/weather` costs 100 units, `/report/:pages` costs 25 per page,
 * `/compute/:steps` is metered at 7 units per step of work, `/stream/:chunks` streams a body paid
 * chunk by chunk (7 units each), and `/health` is free. `receiver` is
 * where payments go (default: the uplink in COGPAY_UPLINK); `observer` sees the metered work.
 */
export function createApp(options: { receiver?: PaymentReceiver; observer?: ComputeObserver } = {}): Express {
  const app = express()
  const paid = options.receiver ? { receiver: options.receiver } : {}

  app.get('/health', (_req, res) => {
    res.json({ ok: true })
  })

  app.get('/weather', paidRoute(100n, paid), (_req, res) => {
    res.json({ forecast: 'sunny', paid: res.locals.payment.paid.toString() })
  })

  app.get(
    '/report/:pages',
    paidRoute((req) => BigInt(Math.min(Number(req.params.pages) || 1, 100)) * 25n, paid),
    (req, res) => {
      res.json({ pages: Number(req.params.pages), paid: res.locals.payment.paid.toString() })
    },
  )

  const computeRoute = meteredRoute({ ...paid, maxPrice: (req) => maxPriceFor(Number(req.params.steps)) })
  app.get('/compute/:steps', computeRoute, async (req, res) => {
    const meter: Meter = res.locals.meter
    const result = await compute(meter, Number(req.params.steps), options.observer)
    if (result.stopped) {
      const reason = meter.signal.reason as CogpayError
      res.status(402).set('Cogpay-Error', reason.code).json({ error: reason.toJSON().error, ...result.body })
      return
    }
    res.json(result.body)
  })

  // A paid streaming body: the chunks go out as they are paid for, never buffered.
  app.get('/stream/:chunks', meteredRoute(paid), async (req, res) => {
    res.type('text/plain')
    const write = (chunk: string) =>
      new Promise<void>((resolve) => {
        if (res.write(chunk)) resolve()
        else res.once('drain', resolve)
      })
    await streamChunks(res.locals.meter, Number(req.params.chunks), write, options.observer)
    res.end()
  })

  return app
}
