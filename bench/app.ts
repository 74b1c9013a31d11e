import express, { type Express, type Request, type Response } from 'express'
import { paidRoute } from '@cogpay/express'
import type { PaymentReceiver } from '@cogpay/core'

/**
 * The benchmark's own app: one handler, mounted unpaid at `/free` and paid (100 units) at `/paid`,
 * so paid and unpaid requests hit the same server, the same Express stack and the same handler.
 */
export function createBenchApp(options: { receiver: PaymentReceiver }): Express {
  const app = express()
  const handler = (_req: Request, res: Response) => {
    const paid = (res.locals.payment as { paid?: bigint } | undefined)?.paid ?? 0n
    res.json({ forecast: 'sunny', paid: paid.toString() })
  }
  app.get('/free', handler)
  app.get('/paid', paidRoute(100n, { receiver: options.receiver }), handler)
  return app
}
