// Type-checked (not run) against the installed declarations, under module NodeNext.
import express from 'express'
import Koa from 'koa'
import { paidRoute, meteredRoute, leaseRoute, type Meter, type PaymentReceipt } from '@cogpay/express'
import * as koaRoutes from '@cogpay/koa'
import { CogpayError, ErrorCodes, parseAmount, type Asset, type LeaseStore } from '@cogpay/core'
import { FileLeaseStore } from '@cogpay/core/node'
import { createLeaseHost, createPayer, createPaymentServer, type Payer, type PaymentServer } from '@cogpay/ilp'
import { createPayFetch, getPayment, SpendLimitError, type PayFetch } from '@cogpay/fetch'
import { startTestnet, type Testnet } from '@cogpay/testnet'
import { createHosting, type Hosting, type RunView } from '@cogpay/hosting'
import { main } from '@cogpay/cli'

export async function typed(): Promise<void> {
  const testnet: Testnet = await startTestnet({ port: 0 })
  const receiver: PaymentServer = createPaymentServer({ uplink: testnet.uri('server') })
  const app = express()
  app.get('/weather', paidRoute(100n, { receiver }), (_req, res) => {
    const receipt: PaymentReceipt = res.locals.payment
    res.json({ paid: receipt.paid.toString() })
  })
  app.get('/work', meteredRoute({ receiver, maxPrice: 70n }), async (_req, res) => {
    const meter: Meter = res.locals.meter
    await meter.charge(7n)
    res.end()
  })
  const koa = new Koa()
  koa.use(koaRoutes.paidRoute((ctx) => BigInt(ctx.path.length), { receiver }))
  const store: LeaseStore = new FileLeaseStore('/tmp/leases.json')
  const host = createLeaseHost({ paymentServer: receiver, store })
  app.post('/lease', leaseRoute({ host, amount: 5n, intervalMs: 1000 }))
  const hosting: Hosting = createHosting({ host, ratePerSecond: 10n })
  const runs: RunView[] = await hosting.resume()
  const payer: Payer = createPayer({ uplink: testnet.uri('payer') })
  const payFetch: PayFetch = createPayFetch({ payer, maxSpend: parseAmount('1000', 'maxSpend') })
  try {
    const response = await payFetch('http://127.0.0.1:1/weather')
    const spent: bigint | undefined = getPayment(response)?.spent
    const asset: Asset | undefined = payer.asset
    void [spent, asset, runs]
  } catch (err) {
    if (err instanceof SpendLimitError) void err.spent
    if (err instanceof CogpayError && err.code === ErrorCodes.SPEND_LIMIT) throw err
  }
  // Money is never a number: if the declarations had been lost (everything `any`), this would pass.
  // @ts-expect-error maxSpend is a bigint
  createPayFetch({ payer, maxSpend: 1000 })
  const code: number = await main(['--help'])
  void code
}
