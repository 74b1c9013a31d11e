import { request as httpRequest } from 'node:http'
import express from 'express'
import Koa from 'koa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meteredRoute as expressMetered, paidRoute as expressPaid } from '@cogpay/express'
import { meteredRoute as koaMetered, paidRoute as koaPaid } from '@cogpay/koa'
import { Headers, paymentRequestHeaders, type Meter } from '@cogpay/core'
import { createPayFetch, getPayment, PaymentInterruptedError } from '@cogpay/fetch'
import { listen, startNetwork, type Network } from './support/network.ts'
import { until as waitFor } from './support/wait.ts'

// Issue 9, refunds: a paid handler that throws, answers 5xx or cannot deliver its response pays
// back what it took, on the payer's own socket; the payer accepts money only for its own requests,
// at most what each paid, and reports it.
describe('refunds when the paid work fails', () => {
  let net: Network
  // The network, by a name the tests' own `net` parameters do not hide.
  const net_ = { get payer() { return net.payer } }
  const servers: Awaited<ReturnType<typeof listen>>[] = []
  const url = (index: number, path: string) => `${servers[index]!.url}${path}`

  beforeAll(async () => {
    // A payer that is gone is given up on after 2 s (the default is 5 s).
    net = await startNetwork({ connectTimeoutMs: 2000 })
    const app = express()
    const paid = expressPaid(100n, { receiver: net.receiver })
    app.get('/throws', paid, () => {
      throw new Error('the work failed')
    })
    app.get('/unavailable', paid, (_req, res) => void res.status(503).send('overloaded'))
    app.get('/ok', paid, (_req, res) => void res.send('fine'))
    // The connection dies before the response has started: the client got nothing.
    app.get('/cut', paid, (req) => void setTimeout(() => req.socket.destroy(), 20))
    // A long body the client hangs up on midway (on purpose, say).
    app.get('/long', paid, (_req, res) => {
      res.writeHead(200, { 'Content-Length': String(64 * 1024 * 1024) })
      const chunk = Buffer.alloc(64 * 1024, 0x61)
      const write = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', write)
      }
      write()
    })
    app.get('/keep', expressPaid(100n, { receiver: net.receiver, refund: 'never' }), () => {
      throw new Error('the work failed')
    })
    app.get('/metered/throws', expressMetered({ receiver: net.receiver }), async (_req, res) => {
      const meter: Meter = res.locals.meter
      await meter.charge(7n)
      await meter.charge(7n)
      throw new Error('the work failed')
    })
    app.get('/metered/partial', expressMetered({ receiver: net.receiver }), async (_req, res) => {
      const meter: Meter = res.locals.meter
      for (let step = 0; step < 3; step++) await meter.charge(10n)
      // One step's output turned out unusable: the handler pays it back itself.
      meter.refund(10n)
      res.send('two of three')
    })
    app.get('/metered/ahead', expressMetered({ receiver: net.receiver, ahead: 50n }), async (_req, res) => {
      const meter: Meter = res.locals.meter
      await meter.charge(10n)
      // Wait until the payer has prepaid the window (asked when the meter starts: 50; the ask goes
      // up again once half of it is charged), so there is an excess to give back.
      await waitFor(() => meter.paid >= 50n, 2000)
      res.send('done early')
    })
    // Found by a review: a prepaid window still being paid when the response ended kept the late
    // money (net 42 for 35 charged), and a handler's own refund did not add to the window's.
    app.get('/metered/window/:outcome', expressMetered({ receiver: net.receiver, ahead: 20n }), async (req, res) => {
      const meter: Meter = res.locals.meter
      for (let step = 0; step < 5; step++) await meter.charge(7n)
      if (req.params.outcome === 'fail') return void res.status(500).send('failed')
      res.send('done')
    })
    app.get('/metered/both', expressMetered({ receiver: net.receiver, ahead: 50n }), async (_req, res) => {
      const meter: Meter = res.locals.meter
      for (let step = 0; step < 3; step++) await meter.charge(10n)
      await waitFor(() => meter.paid >= 80n, 2000)
      meter.refund(10n)
      res.send('two of three, and the window back')
    })
    app.get('/metered/keep', expressMetered({ receiver: net.receiver, refund: 'never' }), async (_req, res) => {
      await (res.locals.meter as Meter).charge(7n)
      throw new Error('the work failed')
    })

    const koa = new Koa()
    koa.silent = true
    const koaPaidRoute = koaPaid(100n, { receiver: net.receiver })
    const koaMeteredRoute = koaMetered({ receiver: net.receiver })
    koa.use((ctx) => {
      if (ctx.path === '/throws') {
        return koaPaidRoute(ctx, async () => {
          throw new Error('the work failed')
        })
      }
      if (ctx.path === '/throws-midway') {
        // The body has started (headers sent) when the handler fails: Koa can tell, and refunds.
        return koaPaidRoute(ctx, async () => {
          ctx.respond = false
          ctx.res.writeHead(200, { 'Content-Length': '100' })
          ctx.res.write('part of it')
          ctx.res.destroy()
          throw new Error('the work failed midway')
        })
      }
      return koaMeteredRoute(ctx, async () => {
        await (ctx.state.meter as Meter).charge(9n)
        throw new Error('the work failed')
      })
    })
    servers.push(await listen(app), await listen(koa.callback()))
  })
  afterAll(async () => {
    for (const server of servers) await server.close()
    await net.close()
  })

  it.each([
    ['Express, a handler that throws', 0, '/throws', 500],
    ['Express, a handler that answers 503', 0, '/unavailable', 503],
    ['Koa, a handler that throws', 1, '/throws', 500],
  ] as const)('%s: the client paid 100, got 100 back, net 0', async (_name, index, path, status) => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const before = { spent: net.payer.spent, refunded: net.payer.refunded, server: net.receiver.refunded }
    const response = await payFetch(url(index, path))
    expect(response.status).toBe(status)
    expect(response.headers.get(Headers.refund)).toBe('100')
    const payment = getPayment(response)!
    expect(payment.spent).toBe(100n)
    // Returned once the refund has arrived: no waiting needed.
    expect(payment.refunded).toBe(100n)
    expect(net.payer.spent - before.spent).toBe(100n)
    expect(net.payer.refunded - before.refunded).toBe(100n)
    expect(net.receiver.refunded - before.server).toBe(100n)
  })

  it('a paid response that succeeds is not refunded', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const response = await payFetch(url(0, '/ok'))
    expect(await response.text()).toBe('fine')
    expect(response.headers.has(Headers.refund)).toBe(false)
    expect(getPayment(response)).toMatchObject({ spent: 100n, refunded: 0n })
  })

  it('a response cut off before it started is refunded after the fact', async () => {
    const pending = await net.payer.expect(new URL(servers[0]!.url).origin, 1000n)
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest(url(0, '/cut'), { headers: paymentRequestHeaders(pending.headers) }, () => resolve('response'))
      req.on('error', (err) => resolve(err.message))
      req.end()
    })
    await pending.finish()
    expect(outcome).not.toBe('response')
    expect(pending.spent).toBe(100n)
    await waitFor(() => pending.refunded === 100n, 5000)
  })

  it('a client that hangs up midway through the body gets no refund (it cannot take the work for free)', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const controller = new AbortController()
    const response = await payFetch(url(0, '/long'), { signal: controller.signal })
    const reader = response.body!.getReader()
    let read = 0
    while (read < 256 * 1024) read += (await reader.read()).value?.length ?? 0
    controller.abort()
    await reader.cancel().catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(getPayment(response)).toMatchObject({ spent: 100n, refunded: 0n })
  })

  it('Koa, a handler that fails after its body started: refunded (Koa sees the error)', async () => {
    const pending = await net.payer.expect(new URL(servers[1]!.url).origin, 1000n)
    await new Promise<void>((resolve) => {
      const req = httpRequest(url(1, '/throws-midway'), { headers: paymentRequestHeaders(pending.headers) }, (res) => {
        res.on('data', () => {})
        res.on('error', () => resolve())
        res.on('end', () => resolve())
      })
      req.on('error', () => resolve())
      req.end()
    })
    await pending.finish()
    expect(pending.spent).toBe(100n)
    await waitFor(() => pending.refunded === 100n, 5000)
  })

  it("refund: 'never' keeps the money and announces nothing", async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const response = await payFetch(url(0, '/keep'))
    expect(response.status).toBe(500)
    expect(response.headers.has(Headers.refund)).toBe(false)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(getPayment(response)).toMatchObject({ spent: 100n, refunded: 0n })
  })

  it.each([
    ['Express', 0, '/metered/throws', 14n],
    ['Koa', 1, '/metered', 9n],
  ] as const)('%s metered, a handler that throws: everything paid comes back', async (_name, index, path, spent) => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n })
    const response = await payFetch(url(index, path))
    expect(response.status).toBe(500)
    await expect(response.text()).rejects.toBeInstanceOf(PaymentInterruptedError)
    expect(await getPayment(response)!.done).toEqual({ spent, complete: false, code: 'COGPAY_HANDLER_FAILED', refunded: spent })
  })

  it('metered, the handler refunds part of a charge itself', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n })
    const response = await payFetch(url(0, '/metered/partial'))
    expect(await response.text()).toBe('two of three')
    expect(await getPayment(response)!.done).toEqual({ spent: 30n, complete: true, refunded: 10n })
  })

  it('metered with a prepay window: what was prepaid beyond the charges comes back', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n })
    const response = await payFetch(url(0, '/metered/ahead'))
    expect(await response.text()).toBe('done early')
    const done = await getPayment(response)!.done
    expect(done.complete).toBe(true)
    expect(done.spent).toBeGreaterThanOrEqual(50n)
    expect(done.spent - done.refunded).toBe(10n)
  })

  it.each([
    ['served', 'ok', 35n],
    ['answering 500', 'fail', 0n],
  ] as const)('metered with a window, %s: the net cost is what was charged (or 0), whatever was prepaid', async (_name, outcome, net) => {
    const payFetch = createPayFetch({ payer: net_.payer, maxSpend: 1000n })
    for (let run = 0; run < 3; run++) {
      const response = await payFetch(url(0, `/metered/window/${outcome}`))
      await response.text().catch(() => '')
      const done = await getPayment(response)!.done
      expect(done.spent - done.refunded).toBe(net)
    }
  })

  it("metered, the handler's own refund adds to the window's", async () => {
    const payFetch = createPayFetch({ payer: net_.payer, maxSpend: 1000n })
    const response = await payFetch(url(0, '/metered/both'))
    await response.text()
    const done = await getPayment(response)!.done
    expect(done.spent - done.refunded).toBe(20n)
  })

  it("metered, refund: 'never' keeps what was paid", async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n })
    const response = await payFetch(url(0, '/metered/keep'))
    await expect(response.text()).rejects.toBeInstanceOf(PaymentInterruptedError)
    expect(await getPayment(response)!.done).toEqual({ spent: 7n, complete: false, code: 'COGPAY_HANDLER_FAILED', refunded: 0n })
  })

  it('the payer accepts a refund only for its own paid request, and at most what it paid', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const response = await payFetch(url(0, '/ok'))
    await response.text()
    const { requestId } = getPayment(response)!
    // The credentials that request was sent with (the payer keeps one address and secret per origin).
    const pending = await net.payer.expect(new URL(servers[0]!.url).origin, 0n)
    pending.abort()
    const payment = { ...pending.headers, requestId }
    const before = net.payer.refunded

    // A server asked to refund 1000 of a request that paid 100: 100 arrives, not a unit more.
    expect(await net.receiver.refund({ payment, amount: 1000n })).toBe(100n)
    expect(net.payer.refunded - before).toBe(100n)
    expect(getPayment(response)!.refunded).toBe(100n)
    // Nothing is left to refund on it.
    expect(await net.receiver.refund({ payment, amount: 1n })).toBe(0n)
    // A request id this payer never paid for.
    expect(await net.receiver.refund({ payment: { ...payment, requestId: 'never-paid-request-0001' }, amount: 5n })).toBe(0n)
    // A paid request of this origin, named on another origin's credentials.
    const other = await net.payer.expect('http://127.0.0.1:1', 0n)
    other.abort()
    const second = await payFetch(url(0, '/ok'))
    await second.text()
    const wrongOrigin = { ...other.headers, requestId: getPayment(second)!.requestId }
    expect(await net.receiver.refund({ payment: wrongOrigin, amount: 5n })).toBe(0n)
    expect(net.payer.refunded - before).toBe(100n)
  })

  it("a finished request kept for its refund lets go of its closed stream, and is still paid back in full (the payer held every paid request's closed stream for 10 minutes: 10.8 KiB of heap a socket in the bench)", async () => {
    const pending = await net.payer.expect('http://let-go.test', 100n)
    expect((await net.receiver.collect({ payment: pending.headers, amount: 60n })).paid).toBe(60n)
    expect(await pending.finish()).toBe(60n)
    // White box: what the payer keeps of the request once the server has closed its stream.
    const kept = pending as unknown as { stream: unknown; refundable: bigint }
    await waitFor(() => kept.stream === undefined, 2000)
    expect(kept.refundable).toBe(60n)
    const before = net.payer.refunded
    expect(await net.receiver.refund({ payment: pending.headers, amount: 100n })).toBe(60n)
    expect(net.payer.refunded - before).toBe(60n)
  })

  it('a refund to a payer that has gone away fails quietly and moves nothing', async () => {
    const payer = net.newPayer()
    const payFetch = createPayFetch({ payer, maxSpend: 1000n })
    const response = await payFetch(url(0, '/ok'))
    await response.text()
    const pending = await payer.expect(new URL(servers[0]!.url).origin, 0n)
    pending.abort()
    const payment = { ...pending.headers, requestId: getPayment(response)!.requestId }
    await payer.close()
    const before = net.receiver.refunded
    expect(await net.receiver.refund({ payment, amount: 100n })).toBe(0n)
    expect(net.receiver.refunded).toBe(before)
  })

  it('a raw client sees Cogpay-Refund on the failure, before any body', async () => {
    const pending = await net.payer.expect(new URL(servers[0]!.url).origin, 1000n)
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = httpRequest(url(0, '/unavailable'), { headers: paymentRequestHeaders(pending.headers) }, (res) => {
        res.resume()
        resolve(res.headers)
      })
      req.on('error', reject)
      req.end()
    })
    await pending.finish()
    expect(headers['cogpay-refund']).toBe('100')
    expect(headers['cogpay-paid']).toBe('100')
    await waitFor(() => pending.refunded === 100n, 5000)
  })
})
