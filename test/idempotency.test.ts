import { request as httpRequest } from 'node:http'
import { createRequire } from 'node:module'
import { gzipSync } from 'node:zlib'
import express from 'express'
import Koa from 'koa'
import { Agent, RetryAgent, fetch as undiciFetch } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meteredRoute, paidRoute as expressPaid } from '@cogpay/express'
import { paidRoute as koaPaid } from '@cogpay/koa'
import { createPlugin } from '@cogpay/ilp'
import { ErrorCodes, Headers, MemoryIdempotencyStore, paymentRequestHeaders, type Meter } from '@cogpay/core'
import { createPayFetch, getPayment, type FetchFunction } from '@cogpay/fetch'
import { listen, startNetwork, type Network } from './support/network.ts'
import { until } from './support/wait.ts'

const { createServer: createStreamServer } = createRequire(import.meta.url)('ilp-protocol-stream') as typeof import('ilp-protocol-stream')

// Issue 9, idempotent retries: one logical request, one payment. payFetch sends an
// Idempotency-Key; a paid route keeps a record per key and payer, so a retry is never charged twice.
describe('idempotent retries: one logical request, one payment', () => {
  let net: Network
  const servers: Awaited<ReturnType<typeof listen>>[] = []
  const runs = new Map<string, number>()
  const count = (name: string) => runs.set(name, (runs.get(name) ?? 0) + 1)
  let release: () => void = () => {}
  const url = (path: string, index = 0) => `${servers[index]!.url}${path}`

  beforeAll(async () => {
    net = await startNetwork()
    const app = express()
    const paid = expressPaid(100n, { receiver: net.receiver })
    app.post('/order', paid, (req, res) => {
      count('order')
      res.json({ order: runs.get('order'), paid: res.locals.payment.paid.toString() })
    })
    app.get('/big', expressPaid(100n, { receiver: net.receiver, idempotency: { maxReplayBytes: 16 } }), (_req, res) => {
      count('big')
      res.send('x'.repeat(1000))
    })
    app.post('/slow', paid, async (_req, res) => {
      count('slow')
      await new Promise<void>((resolve) => (release = resolve))
      res.send('slow done')
    })
    // The first attempt is paid, then its connection dies before any response: the money is kept.
    const cutOnce = (name: string) => (req: express.Request, res: express.Response) => {
      count(name)
      if (runs.get(name) === 1) return void req.socket.destroy()
      res.send(`served on attempt ${runs.get(name)}`)
    }
    app.get('/cut-keep', expressPaid(100n, { receiver: net.receiver, refund: 'never' }), cutOnce('cut-keep'))
    app.get('/cut-refund', paid, cutOnce('cut-refund'))
    // The first attempt fails with a 500 (refunded by default), the retry succeeds.
    app.get('/flaky', paid, (_req, res) => {
      count('flaky')
      if (runs.get('flaky') === 1) return void res.status(500).send('try again')
      res.send('worked')
    })
    app.get('/flaky-keep', expressPaid(100n, { receiver: net.receiver, refund: 'never' }), (_req, res) => {
      count('flaky-keep')
      if (runs.get('flaky-keep') === 1) return void res.status(500).send('try again')
      res.send('worked')
    })
    app.get('/off', expressPaid(100n, { receiver: net.receiver, idempotency: false }), (_req, res) => void res.send('ok'))

    const koa = new Koa()
    const koaRoute = koaPaid(100n, { receiver: net.receiver })
    koa.use((ctx) =>
      koaRoute(ctx, async () => {
        count('koa')
        ctx.body = { run: runs.get('koa') }
      }),
    )
    servers.push(await listen(app), await listen(koa.callback()))
  })
  afterAll(async () => {
    release()
    for (const server of servers) await server.close()
    await net.close()
  })

  it('payFetch sends an Idempotency-Key of its own on every call, a new one each time', async () => {
    const seen: string[] = []
    const payFetch = createPayFetch({
      payer: net.payer,
      maxSpend: 1000n,
      fetch: (input, init) => {
        seen.push(new globalThis.Headers(init?.headers).get('Idempotency-Key') ?? '')
        return undiciFetch(input, init as never) as unknown as Promise<Response>
      },
    })
    await (await payFetch(url('/order'), { method: 'POST' })).text()
    await (await payFetch(url('/order'), { method: 'POST' })).text()
    expect(seen[0]).toMatch(/^[0-9a-f-]{36}$/)
    expect(seen[1]).toMatch(/^[0-9a-f-]{36}$/)
    expect(seen[0]).not.toBe(seen[1])
  })

  it('a manual retry with the same key after success gets the stored response, and is not charged', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const before = { spent: net.payer.spent, collected: net.receiver.paymentsCollected, runs: runs.get('order') ?? 0 }
    const first = await payFetch(url('/order'), { method: 'POST', idempotencyKey: 'order-7f3a-0001' })
    const firstBody = await first.json()
    const retry = await payFetch(url('/order'), { method: 'POST', idempotencyKey: 'order-7f3a-0001' })
    expect(retry.status).toBe(200)
    expect(await retry.json()).toEqual(firstBody)
    expect(retry.headers.get(Headers.replayed)).toBe('response')
    expect(getPayment(first)).toMatchObject({ spent: 100n })
    expect(getPayment(retry)).toMatchObject({ spent: 0n, replayed: 'response' })
    // The retry's own request id is echoed, not the first attempt's.
    expect(retry.headers.get(Headers.requestId)).toBe(getPayment(retry)!.requestId)
    expect(net.payer.spent - before.spent).toBe(100n)
    expect(net.receiver.paymentsCollected - before.collected).toBe(1)
    expect((runs.get('order') ?? 0) - before.runs).toBe(1)
  })

  it('Koa: the same', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const before = net.payer.spent
    const first = await (await payFetch(url('/', 1), { idempotencyKey: 'koa-key-0001' })).json()
    const retry = await payFetch(url('/', 1), { idempotencyKey: 'koa-key-0001' })
    expect(await retry.json()).toEqual(first)
    expect(getPayment(retry)).toMatchObject({ spent: 0n, replayed: 'response' })
    expect(net.payer.spent - before).toBe(100n)
  })

  it('a response too large to keep: the retry is served again as already paid', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const before = { spent: net.payer.spent, runs: runs.get('big') ?? 0 }
    expect((await (await payFetch(url('/big'), { idempotencyKey: 'big-key-0001' })).text()).length).toBe(1000)
    const retry = await payFetch(url('/big'), { idempotencyKey: 'big-key-0001' })
    expect((await retry.text()).length).toBe(1000)
    expect(getPayment(retry)).toMatchObject({ spent: 0n, replayed: 'payment', paid: 100n })
    expect(net.payer.spent - before.spent).toBe(100n)
    expect((runs.get('big') ?? 0) - before.runs).toBe(2)
  })

  it('served again as paid at most maxReplays (3) times: then 422 COGPAY_IDEMPOTENCY_REPLAYS_EXHAUSTED, so one payment cannot buy the work over and over', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const before = { spent: net.payer.spent, runs: runs.get('big') ?? 0 }
    await (await payFetch(url('/big'), { idempotencyKey: 'big-key-0002' })).text()
    const answers: string[] = []
    for (let i = 0; i < 5; i++) {
      const retry = await payFetch(url('/big'), { idempotencyKey: 'big-key-0002' })
      await retry.text()
      answers.push(`${retry.status} ${retry.headers.get(Headers.replayed) ?? retry.headers.get(Headers.error)}`)
    }
    expect(answers).toEqual([
      '200 payment',
      '200 payment',
      '200 payment',
      `422 ${ErrorCodes.IDEMPOTENCY_REPLAYS_EXHAUSTED}`,
      `422 ${ErrorCodes.IDEMPOTENCY_REPLAYS_EXHAUSTED}`,
    ])
    expect(net.payer.spent - before.spent).toBe(100n)
    expect((runs.get('big') ?? 0) - before.runs).toBe(4)
  })

  it('retries served as paid, all at once: never more than maxReplays run, the others get 409 (or 422 once used up)', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    await (await payFetch(url('/big'), { idempotencyKey: 'big-key-0003' })).text()
    const before = runs.get('big') ?? 0
    const retries = await Promise.all(Array.from({ length: 8 }, () => payFetch(url('/big'), { idempotencyKey: 'big-key-0003' })))
    const statuses = await Promise.all(retries.map(async (r) => (await r.text(), r.status)))
    const served = statuses.filter((s) => s === 200).length
    expect(served).toBeGreaterThanOrEqual(1)
    expect(served).toBeLessThanOrEqual(3)
    expect(statuses.filter((s) => s !== 200).every((s) => s === 409 || s === 422)).toBe(true)
    expect((runs.get('big') ?? 0) - before).toBe(statuses.filter((s) => s === 200).length)
  })

  it('a running record is kept alive while its attempt runs, past its running TTL (so a crashed server frees the key within that TTL)', async () => {
    const app = express()
    const store = new MemoryIdempotencyStore()
    let finish: () => void = () => {}
    app.post('/long', expressPaid(10n, { receiver: net.receiver, idempotency: { store, runningTtlMs: 300 } }), async (_req, res) => {
      await new Promise<void>((resolve) => (finish = resolve))
      res.send('long done')
    })
    const long = await listen(app)
    try {
      const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n })
      const first = payFetch(`${long.url}/long`, { method: 'POST', idempotencyKey: 'long-key-0001' })
      await until(() => store.size === 1, 2000)
      // Three running TTLs later the attempt still runs: its record was written again meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 900))
      const retry = await payFetch(`${long.url}/long`, { method: 'POST', idempotencyKey: 'long-key-0001' })
      expect(retry.status).toBe(409)
      await retry.text()
      finish()
      expect(await (await first).text()).toBe('long done')
    } finally {
      finish()
      await long.close()
    }
  })

  it('a retry while the first attempt is still running gets 409 COGPAY_IDEMPOTENCY_IN_PROGRESS, and pays nothing', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const first = payFetch(url('/slow'), { method: 'POST', idempotencyKey: 'slow-key-0001' })
    // The first attempt has paid and its handler is running.
    await until(() => runs.get('slow') === 1, 2000)
    const collected = net.receiver.paymentsCollected
    const retry = await payFetch(url('/slow'), { method: 'POST', idempotencyKey: 'slow-key-0001' })
    expect(retry.status).toBe(409)
    expect(retry.headers.get(Headers.error)).toBe(ErrorCodes.IDEMPOTENCY_IN_PROGRESS)
    expect(retry.headers.get('Retry-After')).toBe('1')
    expect(((await retry.json()) as { error: { code: string } }).error.code).toBe(ErrorCodes.IDEMPOTENCY_IN_PROGRESS)
    release()
    const done = await first
    expect(await done.text()).toBe('slow done')
    expect(getPayment(done)!.spent).toBe(100n)
    expect(net.receiver.paymentsCollected).toBe(collected)
  })

  it('the same key for a different request gets 422 COGPAY_IDEMPOTENCY_KEY_REUSED, and pays nothing', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    await (await payFetch(url('/order'), { method: 'POST', idempotencyKey: 'reused-key-0001' })).text()
    const before = net.payer.spent
    for (const [path, method] of [['/order?x=1', 'POST'], ['/big', 'GET']] as const) {
      const other = await payFetch(url(path), { method, idempotencyKey: 'reused-key-0001' })
      expect([path, other.status, await other.text()]).toEqual([path, 422, expect.stringContaining(ErrorCodes.IDEMPOTENCY_KEY_REUSED)])
      expect(other.headers.get(Headers.error)).toBe(ErrorCodes.IDEMPOTENCY_KEY_REUSED)
    }
    expect(net.payer.spent).toBe(before)
  })

  it('keys are per payer: another payer with the same key is charged for its own request', async () => {
    const other = createPayFetch({ payer: net.newPayer(), maxSpend: 1000n })
    const mine = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    await (await mine(url('/order'), { method: 'POST', idempotencyKey: 'shared-key-0001' })).text()
    const theirs = await other(url('/order'), { method: 'POST', idempotencyKey: 'shared-key-0001' })
    expect(theirs.status).toBe(200)
    await theirs.text()
    expect(getPayment(theirs)).toMatchObject({ spent: 100n })
    expect(getPayment(theirs)!.replayed).toBeUndefined()
  })

  it.each([
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['not visible ASCII', 'key with spaces'],
  ])('an invalid Idempotency-Key (%s) gets 400 COGPAY_INVALID_IDEMPOTENCY_KEY before any socket', async (_name, key) => {
    // A payer of its own, so that any socket opened to it would be a new one.
    const payer = net.newPayer()
    const pending = await payer.expect(new URL(servers[0]!.url).origin, 1000n)
    const opened = net.receiver.socketsOpened
    const status = await new Promise<[number, unknown]>((resolve, reject) => {
      const req = httpRequest(
        url('/order'),
        { method: 'POST', headers: { ...paymentRequestHeaders(pending.headers), 'Idempotency-Key': key } },
        (res) => {
          res.resume()
          resolve([res.statusCode ?? 0, res.headers['cogpay-error']])
        },
      )
      req.on('error', reject)
      req.end()
    })
    pending.abort()
    expect(status).toEqual([400, ErrorCodes.INVALID_IDEMPOTENCY_KEY])
    expect(net.receiver.socketsOpened).toBe(opened)
    expect(payer.spent).toBe(0n)
  })

  it("idempotency: false ignores the key: each request pays", async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const before = net.payer.spent
    await (await payFetch(url('/off'), { idempotencyKey: 'off-key-0001' })).text()
    await (await payFetch(url('/off'), { idempotencyKey: 'off-key-0001' })).text()
    expect(net.payer.spent - before).toBe(200n)
  })

  describe("undici's RetryAgent under payFetch (it resends the same headers, request id included)", () => {
    const retrying: FetchFunction = (input, init) =>
      undiciFetch(input, {
        ...(init as object),
        // undici's default first backoff (500 ms): a refunded attempt's record is kept (409) until
        // its refund has been sent, a few ms normally, longer on a loaded machine.
        dispatcher: new RetryAgent(new Agent(), { maxRetries: 2, minTimeout: 500, maxTimeout: 1000, timeoutFactor: 2 }),
      } as never) as unknown as Promise<Response>

    // The defect: a retry after a paid attempt whose response was lost was refused by the payer
    // (the request id was already paid), and the caller got a 402 after paying 100.
    it("the response of a paid attempt is lost (refund: 'never'): the retry is served as already paid, 200, charged once", async () => {
      const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n, fetch: retrying })
      const before = net.payer.spent
      const response = await payFetch(url('/cut-keep'))
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('served on attempt 2')
      expect(getPayment(response)).toMatchObject({ spent: 100n, refunded: 0n, replayed: 'payment' })
      expect(net.payer.spent - before).toBe(100n)
    })

    it('the response of a paid attempt is lost (refunded): the retry pays again, net 100', async () => {
      const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n, fetch: retrying })
      const response = await payFetch(url('/cut-refund'))
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('served on attempt 2')
      const payment = getPayment(response)!
      expect(payment.spent - payment.refunded).toBe(100n)
      expect(payment.refunded).toBe(100n)
    })

    it('a 500 that is refunded, then a retry that works: 200, net 100', async () => {
      const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n, fetch: retrying })
      const response = await payFetch(url('/flaky'))
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('worked')
      const payment = getPayment(response)!
      expect(payment.spent - payment.refunded).toBe(100n)
    })

    it("a 500 under refund: 'never', then a retry: served as already paid, charged once", async () => {
      const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n, fetch: retrying })
      const response = await payFetch(url('/flaky-keep'))
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('worked')
      expect(getPayment(response)).toMatchObject({ spent: 100n, refunded: 0n, replayed: 'payment' })
    })
  })
})

describe('idempotent retries of a metered route', () => {
  let net: Network
  let server: Awaited<ReturnType<typeof listen>>
  let runs = 0
  beforeAll(async () => {
    net = await startNetwork()
    const app = express()
    // 5 steps of 7: a small body (kept), or a large one (not kept: served again with a credit).
    app.get('/work/:size', meteredRoute({ receiver: net.receiver }), async (req, res) => {
      runs++
      const meter: Meter = res.locals.meter
      for (let step = 0; step < 5; step++) await meter.charge(7n)
      res.send(req.params.size === 'big' ? 'x'.repeat(100_000) : 'five steps')
    })
    server = await listen(app)
  })
  afterAll(async () => {
    await server.close()
    await net.close()
  })

  it('a retry after the metered work was served gets the stored response, whole, and pays nothing', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const before = { spent: net.payer.spent, runs }
    const first = await payFetch(`${server.url}/work/small`, { idempotencyKey: 'metered-key-0001' })
    expect(await first.text()).toBe('five steps')
    const retry = await payFetch(`${server.url}/work/small`, { idempotencyKey: 'metered-key-0001' })
    expect(await retry.text()).toBe('five steps')
    expect(getPayment(retry)).toMatchObject({ spent: 0n, replayed: 'response', metered: false })
    expect(net.payer.spent - before.spent).toBe(35n)
    expect(runs - before.runs).toBe(1)
  })

  it('a large metered response is served again with what the first paid as a credit: the work runs, nothing is paid again', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const before = { spent: net.payer.spent, runs }
    const first = await payFetch(`${server.url}/work/big`, { idempotencyKey: 'metered-key-0002' })
    expect((await first.text()).length).toBe(100_000)
    const retry = await payFetch(`${server.url}/work/big`, { idempotencyKey: 'metered-key-0002' })
    expect((await retry.text()).length).toBe(100_000)
    expect(getPayment(retry)).toMatchObject({ replayed: 'payment', metered: true })
    expect(await getPayment(retry)!.done).toEqual({ spent: 0n, complete: true, refunded: 0n })
    expect(net.payer.spent - before.spent).toBe(35n)
    expect(runs - before.runs).toBe(2)
  })
})

// Found by a review of this work (each failed before its fix).
describe('idempotent retries: what a review found', () => {
  let net: Network
  let server: Awaited<ReturnType<typeof listen>>
  const seen: string[] = []
  beforeAll(async () => {
    net = await startNetwork()
    const app = express()
    // Middleware before the route sets headers on every request, the retry's too.
    app.use((_req, res, next) => {
      res.setHeader('Access-Control-Allow-Origin', '*')
      next()
    })
    const big = 'x'.repeat(100_000)
    app.get(
      '/quality',
      expressPaid((req: express.Request) => (req.headers['x-quality'] === 'high' ? 1000n : 1n), { receiver: net.receiver }),
      (req, res) => {
        seen.push(String(req.headers['x-quality']))
        res.send(big)
      },
    )
    app.get('/small', expressPaid(10n, { receiver: net.receiver }), (_req, res) => void res.send('small'))
    app.get('/slow', expressPaid(100n, { receiver: net.receiver }), async (_req, res) => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      if (!res.destroyed) res.send(big)
    })
    // A compression layer of its own kind (the compression package is not a dependency): it
    // gzips the body the handler writes, and sets Content-Encoding, unless one is set already.
    app.get('/gzip', (_req, res, next) => {
      const chunks: Buffer[] = []
      const write = res.write.bind(res)
      const end = res.end.bind(res)
      res.write = ((chunk: Buffer | string) => (chunks.push(Buffer.from(chunk)), true)) as typeof res.write
      res.end = ((chunk?: Buffer | string) => {
        if (chunk) chunks.push(Buffer.from(chunk))
        if (res.getHeader('content-encoding')) return end(Buffer.concat(chunks))
        const zipped = gzipSync(Buffer.concat(chunks))
        res.setHeader('Content-Encoding', 'gzip')
        res.setHeader('Content-Length', String(zipped.length))
        void write
        return end(zipped)
      }) as typeof res.end
      next()
    }, expressPaid(10n, { receiver: net.receiver }), (_req, res) => void res.send('squeezed'))
    server = await listen(app)
  })
  afterAll(async () => {
    await server.close()
    await net.close()
  })

  it('a retry served as paid is priced again: a dearer retry is asked the difference, not served for what the first paid', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 2000n })
    const cheap = await payFetch(`${server.url}/quality`, { idempotencyKey: 'reprice-0001', headers: { 'X-Quality': 'low' } })
    await cheap.text()
    expect(getPayment(cheap)!.spent).toBe(1n)
    const dear = await payFetch(`${server.url}/quality`, { idempotencyKey: 'reprice-0001', headers: { 'X-Quality': 'high' } })
    await dear.text()
    expect(dear.status).toBe(200)
    // Before: served for the 1 the first paid (Cogpay-Replayed: payment, spent 0).
    expect(getPayment(dear)!.spent).toBe(999n)
    expect(dear.headers.get(Headers.paid)).toBe('1000')
    expect(seen.slice(-2)).toEqual(['low', 'high'])
  })

  it('a replayed response does not double the headers that middleware sets again', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n })
    await (await payFetch(`${server.url}/small`, { idempotencyKey: 'headers-0001' })).text()
    const retry = await payFetch(`${server.url}/small`, { idempotencyKey: 'headers-0001' })
    expect(await retry.text()).toBe('small')
    expect(retry.headers.get(Headers.replayed)).toBe('response')
    expect(retry.headers.get('access-control-allow-origin')).toBe('*')
    expect(retry.headers.get('x-powered-by')).toBe('Express')
  })

  it('a response encoded after it was written is not replayed broken: the retry is served again as paid', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n })
    const first = await payFetch(`${server.url}/gzip`, { idempotencyKey: 'gzip-0001' })
    expect(await first.text()).toBe('squeezed')
    const retry = await payFetch(`${server.url}/gzip`, { idempotencyKey: 'gzip-0001' })
    // Before: the stored plain bytes went out under Content-Encoding: gzip, and could not be read.
    expect(await retry.text()).toBe('squeezed')
    expect(getPayment(retry)).toMatchObject({ spent: 0n, replayed: 'payment' })
  })

  it("a partly refunded failure keeps only what it kept as the retry's credit: the retry pays the rest", async () => {
    // A payer of its own, on ilp-protocol-stream: it pays what it is asked (up to 100 a stream),
    // and takes back at most 99 of a refund (its refund stream's receive max is its own to set).
    const streamServer = await createStreamServer({ plugin: createPlugin(net.testnet.uri('partialpayer')) })
    const { destinationAccount, sharedSecret } = streamServer.generateAddressAndSecret()
    let sent = 0n
    let refunded = 0n
    streamServer.on('connection', (connection) => {
      connection.on('error', () => {})
      connection.on('stream', (stream: import('ilp-protocol-stream').DataAndMoneyStream) => {
        stream.on('error', () => {})
        stream.once('data', (chunk: Buffer) => {
          if (chunk.toString().includes('"refund"')) {
            stream.setReceiveMax('99')
            stream.on('money', (amount: string) => (refunded += BigInt(amount)))
          } else {
            stream.setSendMax('100')
            stream.on('outgoing_money', (amount: string) => (sent += BigInt(amount)))
          }
        })
      })
    })
    const headers = {
      'Cogpay-Scheme': 'ilp-stream/1',
      'Cogpay-Address': destinationAccount,
      'Cogpay-Secret': sharedSecret.toString('base64url'),
      'Idempotency-Key': 'partial-0001',
    }
    try {
      // The first attempt pays 100, then its connection dies before the response starts: refunded,
      // but only 99 is taken back, so the server keeps 1.
      const first = httpRequest(`${server.url}/slow`, { headers: { ...headers, 'Cogpay-Request-Id': 'partial-request-0001' } })
      first.on('error', () => {})
      first.end()
      await until(() => sent === 100n, 5000)
      first.destroy()
      await until(() => refunded === 99n, 10_000)
      // The retry (same key) is asked the 99 it lacks, not served for the 1 the server kept.
      const retry = await new Promise<{ status: number; body: string; replayed: unknown }>((resolve, reject) => {
        const req = httpRequest(`${server.url}/slow`, { headers: { ...headers, 'Cogpay-Request-Id': 'partial-request-0002' } }, (res) => {
          let body = ''
          res.on('data', (chunk: Buffer) => (body += chunk.toString()))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, replayed: res.headers['cogpay-replayed'] }))
        })
        req.on('error', reject)
        req.end()
      })
      expect(retry.status).toBe(200)
      expect(retry.body.length).toBe(100_000)
      // Before: served as paid (Cogpay-Replayed: payment) with nothing more paid: net 1 for 100.
      await until(() => sent === 199n, 5000)
      expect(sent - refunded).toBe(100n)
    } finally {
      await streamServer.close().catch(() => {})
    }
  })
})
