import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp as createExpressApp } from '@cogpay/example-express-basic'
import { createApp as createKoaApp } from '@cogpay/example-koa-basic'
import { STEP_PRICE, type ComputeObserver } from '@cogpay/example-compute'
import { Meter, encodeAsk, encodeHello, paymentRequestHeaders, type PaymentStream } from '@cogpay/core'
import {
  createPayFetch,
  getPayment,
  PaymentInterruptedError,
  SpendLimitError,
  ErrorCodes,
  type SpendState,
} from '@cogpay/fetch'
import { listen, startNetwork, type Network } from './support/network.ts'

type Stop = Parameters<NonNullable<ComputeObserver['onStop']>>[0]

const frameworks = [
  {
    name: 'Express',
    start: (net: Network, observer: ComputeObserver) => listen(createExpressApp({ receiver: net.receiver, observer })),
    compute: (steps: number) => `/compute/${steps}`,
    stream: (chunks: number) => `/stream/${chunks}`,
  },
  {
    name: 'Koa',
    start: (net: Network, observer: ComputeObserver) => listen(createKoaApp({ receiver: net.receiver, observer }).callback()),
    compute: (steps: number) => `/compute?steps=${steps}`,
    stream: (chunks: number) => `/stream?chunks=${chunks}`,
  },
] as const

describe.each(frameworks)('$name metered route on the real testnet', ({ start, compute, stream }) => {
  let net: Network
  let app: Awaited<ReturnType<typeof listen>>
  const steps: number[] = []
  const stops: Stop[] = []

  beforeAll(async () => {
    net = await startNetwork()
    app = await start(net, {
      onStep: ({ step }) => steps.push(step),
      onStop: (stop) => stops.push(stop),
    })
  })
  afterAll(async () => {
    await app.close()
    await net.close()
  })

  it('N charges of k: the client pays exactly N·k and the server was paid exactly that', async () => {
    const payer = net.newPayer()
    const seen: SpendState[] = []
    const payFetch = createPayFetch({ payer, maxSpend: 1000n, hooks: { onSpend: [(state) => seen.push(state)] } })
    const receivedBefore = net.receiver.received
    const response = await payFetch(`${app.url}${compute(12)}`)
    expect(response.status).toBe(200)
    const body = (await response.json()) as { steps: number; charged: string; paid: string }
    expect(body).toMatchObject({ steps: 12, charged: String(12n * STEP_PRICE), paid: String(12n * STEP_PRICE) })
    expect(response.headers.get('cogpay-price')).toBe(String(12n * STEP_PRICE))
    expect(response.headers.get('cogpay-paid')).toBe(String(12n * STEP_PRICE))
    expect(getPayment(response)?.spent).toBe(12n * STEP_PRICE)
    expect(payer.spent).toBe(12n * STEP_PRICE)
    // Money moved as the work proceeded: one spend report per step, each a running total.
    expect(seen.map((s) => s.spent)).toEqual(Array.from({ length: 12 }, (_, i) => BigInt(i + 1) * STEP_PRICE))
    expect(seen.every((s) => s.maxSpend === 1000n && s.url.endsWith(compute(12)))).toBe(true)
    // With ahead = 0 the server asks for what it has charged: the step just paid, or already the
    // next one (its raise can reach the payer before the last fulfill does). Never more.
    for (const s of seen) {
      expect(s.asked).toBeGreaterThanOrEqual(s.spent)
      expect(s.asked - s.spent).toBeLessThanOrEqual(STEP_PRICE)
    }
    // The server counts the stream when it closes, just after the response.
    await expect.poll(() => net.receiver.received - receivedBefore, { timeout: 2000 }).toBe(12n * STEP_PRICE)
  })

  it("cap reached mid-work: meter.signal fires within 100 ms, spend <= cap, at most one step unpaid", async () => {
    const payer = net.newPayer()
    let capAt = 0
    payer.once('cap', () => {
      capAt = performance.now()
    })
    const cap = 5n * STEP_PRICE + 3n // 5 steps and a bit
    steps.length = 0
    stops.length = 0
    const payFetch = createPayFetch({ payer, maxSpend: cap })
    const error = await payFetch(`${app.url}${compute(50)}`).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(SpendLimitError)
    expect((error as SpendLimitError).serverCode).toBe(ErrorCodes.CAP_TOO_LOW)
    expect(payer.spent).toBeLessThanOrEqual(cap)
    const stop = stops[0]
    expect(stop?.code).toBe(ErrorCodes.CAP_TOO_LOW)
    expect(capAt).toBeGreaterThan(0)
    expect(stop!.at - capAt).toBeLessThan(100)
    // ahead = 0: every step but the last one done was paid before the next began.
    const paidSteps = Number(stop!.paid / STEP_PRICE)
    expect(steps.length).toBeLessThanOrEqual(paidSteps + 1)
    expect(stop!.paid).toBeLessThanOrEqual(payer.spent)
  })

  it('client aborts mid-work: charging stops, the server signal fires, no further charge succeeds', async () => {
    const payer = net.newPayer()
    steps.length = 0
    stops.length = 0
    const controller = new AbortController()
    const payFetch = createPayFetch({
      payer,
      maxSpend: 1000n,
      hooks: {
        onSpend: [
          ({ spent }) => {
            if (spent >= 3n * STEP_PRICE) controller.abort()
          },
        ],
      },
    })
    const error = await payFetch(`${app.url}${compute(100)}`, { signal: controller.signal }).catch((err: unknown) => err)
    expect((error as Error).name).toBe('AbortError')
    await expect.poll(() => stops.length, { timeout: 2000 }).toBe(1)
    expect(stops[0]?.code).toBe(ErrorCodes.CLIENT_ABORTED)
    const spentAtAbort = payer.spent
    expect(spentAtAbort).toBeGreaterThanOrEqual(3n * STEP_PRICE)
    // Nothing more is paid after the abort, and the work stopped within a step of it.
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(payer.spent).toBe(spentAtAbort)
    expect(steps.length).toBeLessThanOrEqual(Number(spentAtAbort / STEP_PRICE) + 1)
    expect(stops[0]!.paid).toBe(spentAtAbort)
  })

  it('a request without payment headers learns that the route is metered', async () => {
    const response = await fetch(`${app.url}${compute(3)}`)
    expect(response.status).toBe(402)
    const body = (await response.json()) as { accepts: { metered?: boolean; amount: string }[] }
    expect(body.accepts[0]).toMatchObject({ metered: true, amount: '0', assetCode: 'XRP', assetScale: 9 })
  })

  it('paid streaming body: chunks arrive progressively, and a complete body is confirmed as such', async () => {
    const payer = net.newPayer()
    steps.length = 0
    const payFetch = createPayFetch({ payer, maxSpend: 1000n })
    const response = await payFetch(`${app.url}${stream(20)}`)
    expect(response.status).toBe(200)
    expect(response.headers.get('cogpay-metered')).toBe('1')
    const reader = response.body!.getReader()
    const first = await reader.read()
    // The first chunk is in our hands while the server is still producing the rest.
    expect(new TextDecoder().decode(first.value)).toContain('chunk 1 of 20')
    expect(steps.length).toBeLessThan(20)
    let text = new TextDecoder().decode(first.value)
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      text += new TextDecoder().decode(chunk.value)
    }
    expect(text.trim().split('\n')).toHaveLength(20)
    const outcome = await getPayment(response)!.done
    expect(outcome).toEqual({ spent: 20n * STEP_PRICE, complete: true, refunded: 0n })
    expect(payer.spent).toBe(20n * STEP_PRICE)
  })

  it('a body cut for non-payment is recognisable: reading it rejects with PaymentInterruptedError', async () => {
    const payer = net.newPayer()
    stops.length = 0
    const cap = 4n * STEP_PRICE
    const payFetch = createPayFetch({ payer, maxSpend: cap })
    const response = await payFetch(`${app.url}${stream(50)}`)
    expect(response.status).toBe(200)
    const error = await response.text().catch((err: unknown) => err)
    expect(error).toBeInstanceOf(PaymentInterruptedError)
    expect((error as PaymentInterruptedError).serverCode).toBe(ErrorCodes.CAP_TOO_LOW)
    expect(await getPayment(response)!.done).toEqual({ spent: cap, complete: false, code: ErrorCodes.CAP_TOO_LOW, refunded: 0n })
    expect(payer.spent).toBe(cap)
    // The server wrote exactly the chunks that were paid for.
    expect(stops[0]).toMatchObject({ code: ErrorCodes.CAP_TOO_LOW, stepsDone: 4, paid: cap })
  })

  it('an announced cap below maxPrice is refused before any socket or work (Cogpay-Max-Spend)', async () => {
    const payer = net.newPayer()
    steps.length = 0
    const socketsBefore = net.receiver.socketsOpened
    const payFetch = createPayFetch({ payer, maxSpend: 30n, announceMaxSpend: true })
    const error = await payFetch(`${app.url}${compute(10)}`).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(SpendLimitError)
    expect((error as SpendLimitError).serverCode).toBe(ErrorCodes.CAP_TOO_LOW)
    expect((error as SpendLimitError).requirements).toMatchObject({ amount: String(10n * STEP_PRICE), metered: true })
    expect(payer.spent).toBe(0n)
    expect(steps).toEqual([])
    expect(net.receiver.socketsOpened).toBe(socketsBefore)
    // The same cap, announced, within maxPrice: the work runs and is paid as usual.
    const within = await payFetch(`${app.url}${compute(4)}`)
    expect(within.status).toBe(200)
    await within.arrayBuffer()
    expect(await getPayment(within)?.done).toEqual({ spent: 4n * STEP_PRICE, complete: true, refunded: 0n })
  })

  it('a malformed Cogpay-Max-Spend is a 400 that names the header', async () => {
    const pending = await net.payer.expect(app.url, 100n)
    const headers = { ...paymentRequestHeaders(pending.headers), 'Cogpay-Max-Spend': 'lots' }
    const response = await fetch(`${app.url}${compute(2)}`, { headers })
    await pending.finish(0)
    expect(response.status).toBe(400)
    const body = (await response.json()) as { error: { code: string; message: string } }
    expect(body.error.code).toBe(ErrorCodes.INVALID_MAX_SPEND)
    expect(body.error.message).toContain('Cogpay-Max-Spend')
  })
})

describe('a meter with a prepay window', () => {
  let net: Network
  beforeAll(async () => {
    net = await startNetwork()
  })
  afterAll(async () => {
    await net.close()
  })

  it('a fast meter writes at most one ask line every 20 ms, the latest ask (it wrote a line a step: a packet a step)', async () => {
    const pending = await net.payer.expect('http://ask-lines.test', 1000n)
    const paying = (await net.receiver.open({ payment: pending.headers })) as PaymentStream & { stream: { writeOffset: number } }
    const meter = new Meter(paying)
    try {
      const started = performance.now()
      for (let step = 0; step < 100; step++) await meter.charge(1n)
      const elapsed = performance.now() - started
      expect(meter.paid).toBe(100n)
      // White box: the bytes written on the stream, past the hello, are ask lines of about 35 bytes.
      const hello = encodeHello({ v: 1, requestId: pending.requestId }).length
      const line = encodeAsk({ v: 1, ask: 100n, received: 99n }).length
      const lines = (paying.stream.writeOffset - hello) / line
      expect(lines).toBeLessThanOrEqual(Math.ceil(elapsed / 20) + 2)
      expect(lines).toBeLessThan(50)
    } finally {
      meter.finish()
      await pending.finish()
    }
  })

  it('raises its ask by half a window or more at a time, so the payer pays several steps a packet (it raised the ask by one step on every step: in the bench, 1.2 packets a step)', async () => {
    const pending = await net.payer.expect('http://window.test', 1000n)
    const stream = await net.receiver.open({ payment: pending.headers })
    // The real stream, with each total the meter asks for recorded on the way.
    const asks: bigint[] = []
    const recorded: PaymentStream = {
      asset: stream.asset,
      get received() {
        return stream.received
      },
      ask: (total) => (asks.push(total), stream.ask(total)),
      onMoney: (listener) => stream.onMoney(listener),
      stopped: stream.stopped,
      freeze: () => stream.freeze?.(),
      close: (final) => stream.close(final),
    }
    const meter = new Meter(recorded, { ahead: 10n })
    try {
      for (let step = 0; step < 100; step++) await meter.charge(1n)
      expect(meter.charged).toBe(100n)
      expect(meter.paid).toBeGreaterThanOrEqual(100n)
      expect(meter.paid).toBeLessThanOrEqual(110n)
      // Never more than the window past the charges; each raise by at least half of it.
      expect(asks.at(-1)).toBeLessThanOrEqual(110n)
      for (let i = 1; i < asks.length; i++) expect(asks[i]! - asks[i - 1]!).toBeGreaterThanOrEqual(5n)
      expect(asks.length).toBeLessThanOrEqual(22)
    } finally {
      meter.finish()
      await pending.finish()
    }
  })
})
