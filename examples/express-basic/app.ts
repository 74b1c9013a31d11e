import express, { type Express } from 'express'
import { paidRoute } from '@cogpay/express'
import type { PaymentReceiver } from '@cogpay/core'

/**
 * A paid API in Express: `/weather` costs 100 units, `/report/:pages` costs 25 per page, and
 * `/health` is free. `receiver` is where payments go (default: the uplink in COGPAY_UPLINK).
 */
export function createApp(options: { receiver?: PaymentReceiver } = {}): Express {
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

  return app
}
