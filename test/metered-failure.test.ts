import express from 'express'
import Koa from 'koa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meteredRoute as expressMetered } from '@cogpay/express'
import { meteredRoute as koaMetered } from '@cogpay/koa'
import type { Meter } from '@cogpay/core'
import { createPayFetch, getPayment, PaymentInterruptedError } from '@cogpay/fetch'
import { listen, startNetwork, type Network } from './support/network.ts'

// Issue 9, defect 6: a metered handler that threw (Express and Koa answer 500) still ended its
// payment stream with `final: "complete"`, so the client read a failed response as whole.
describe('a metered response that was not served in full says so in its final message', () => {
  let net: Network
  const servers: Awaited<ReturnType<typeof listen>>[] = []
  beforeAll(async () => {
    net = await startNetwork()
    const app = express()
    app.get('/fail', expressMetered({ receiver: net.receiver }), async (_req, res) => {
      const meter: Meter = res.locals.meter
      await meter.charge(7n)
      await meter.charge(7n)
      throw new Error('the work failed')
    })
    app.get('/status', expressMetered({ receiver: net.receiver }), async (_req, res) => {
      await (res.locals.meter as Meter).charge(7n)
      res.status(503).send('overloaded')
    })
    app.get('/ok', expressMetered({ receiver: net.receiver }), async (_req, res) => {
      await (res.locals.meter as Meter).charge(7n)
      res.send('fine')
    })
    const koa = new Koa()
    koa.silent = true
    const route = koaMetered({ receiver: net.receiver })
    koa.use((ctx) =>
      route(ctx, async () => {
        const meter: Meter = ctx.state.meter
        await meter.charge(7n)
        await meter.charge(7n)
        if (ctx.path === '/fail') throw new Error('the work failed')
        ctx.body = 'fine'
      }),
    )
    servers.push(await listen(app), await listen(koa.callback()))
  })
  afterAll(async () => {
    for (const server of servers) await server.close()
    await net.close()
  })

  it.each([
    ['Express, a handler that throws', 0, '/fail', 500, 14n],
    ['Express, a handler that answers 5xx', 0, '/status', 503, 7n],
    ['Koa, a handler that throws', 1, '/fail', 500, 14n],
  ] as const)('%s: the client hears stopped (COGPAY_HANDLER_FAILED), not complete', async (_name, index, path, status, spent) => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n })
    const response = await payFetch(`${servers[index]!.url}${path}`)
    expect(response.status).toBe(status)
    await expect(response.text()).rejects.toBeInstanceOf(PaymentInterruptedError)
    // And under the default refund: 'on-error', what it paid comes back (test/refunds.test.ts).
    expect(await getPayment(response)?.done).toEqual({ spent, complete: false, code: 'COGPAY_HANDLER_FAILED', refunded: spent })
  })

  it.each([
    ['Express', 0, 7n],
    ['Koa', 1, 14n],
  ] as const)('%s: a handler that succeeds still ends complete', async (_name, index, spent) => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n })
    const response = await payFetch(`${servers[index]!.url}/ok`)
    expect(await response.text()).toBe('fine')
    expect(await getPayment(response)?.done).toEqual({ spent, complete: true, refunded: 0n })
  })
})
