import { Buffer } from 'node:buffer'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  CogpayError,
  ErrorCodes,
  Headers,
  SCHEME,
  createPaywall,
  createPriceResolver,
  paymentRequestHeaders,
  type HeaderSource,
  type PaymentReceiver,
  type PaywallOutcome,
  type PriceSpec,
} from '../src/index.ts'
import { startNetwork, type Network } from '../../../test/support/network.ts'

interface Req {
  readonly path: string
}
const REQ: Req = { path: '/thing' }

/** A price function that counts its calls. */
function countedPrice(value: unknown) {
  const calls: Req[] = []
  const fn = (request: Req) => {
    calls.push(request)
    return value as bigint
  }
  return { fn, calls }
}

function source(raw: Record<string, string | string[] | undefined>): HeaderSource {
  const lower = new Map(Object.entries(raw).map(([name, value]) => [name.toLowerCase(), value]))
  return (name) => lower.get(name)
}

function expectCogpayError(fn: () => unknown, code: string): CogpayError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(CogpayError)
    expect((err as CogpayError).code).toBe(code)
    return err as CogpayError
  }
  throw new Error(`expected a ${code} to be thrown`)
}

function expectRespond(outcome: PaywallOutcome) {
  if (outcome.type !== 'respond') throw new Error(`expected respond, got ${outcome.type}`)
  return outcome
}

function expectProceed(outcome: PaywallOutcome) {
  if (outcome.type !== 'proceed') {
    throw new Error(`expected proceed, got ${outcome.type} ${JSON.stringify(outcome.type === 'fail' ? outcome.error : outcome.body)}`)
  }
  return outcome
}

function expectFail(outcome: PaywallOutcome) {
  if (outcome.type !== 'fail') throw new Error(`expected fail, got ${outcome.type}`)
  return outcome
}

describe('createPriceResolver', () => {
  it.each([
    [100n, 100n],
    ['100', 100n],
    [0n, 0n],
    ['0', 0n],
    [2n ** 64n - 1n, 2n ** 64n - 1n],
  ])('resolves the fixed price %s to %s', async (spec, expected) => {
    await expect(createPriceResolver<Req>(spec)(REQ)).resolves.toBe(expected)
  })

  it.each([
    ['a number', 100],
    ['a fractional number', 1.5],
    ['a negative string', '-1'],
    ['a leading zero', '0100'],
    ['an empty string', ''],
    ['a decimal string', '1.5'],
    ['2^64', 2n ** 64n],
    ['a negative bigint', -1n],
    ['null', null],
    ['undefined', undefined],
    ['an object', { price: 1n }],
  ])('throws COGPAY_INVALID_OPTIONS at creation for %s', (_name, spec) => {
    const error = expectCogpayError(() => createPriceResolver(spec as PriceSpec<Req>), ErrorCodes.INVALID_OPTIONS)
    expect(error.message).toMatch(/^price must be/)
    expect(error.cause).toBeInstanceOf(CogpayError)
    expect((error.cause as CogpayError).code).toBe(ErrorCodes.INVALID_AMOUNT)
  })

  it('does not call a price function at creation, and calls it once per request with the request', async () => {
    const price = countedPrice(25n)
    const resolve = createPriceResolver<Req>(price.fn)
    expect(price.calls).toHaveLength(0)
    await expect(resolve(REQ)).resolves.toBe(25n)
    const other = { path: '/other' }
    await expect(resolve(other)).resolves.toBe(25n)
    expect(price.calls).toEqual([REQ, other])
    expect(price.calls[1]).toBe(other)
  })

  it('accepts sync and async functions returning a bigint or a decimal string', async () => {
    await expect(createPriceResolver<Req>(() => '250')(REQ)).resolves.toBe(250n)
    await expect(createPriceResolver<Req>(async () => 7n)(REQ)).resolves.toBe(7n)
    await expect(createPriceResolver<Req>(async () => '0')(REQ)).resolves.toBe(0n)
  })

  it.each([
    ['a number', 100],
    ['NaN', Number.NaN],
    ['a negative bigint', -1n],
    ['2^64', 2n ** 64n],
    ['a decimal string', '1.5'],
    ['garbage text', 'one hundred'],
    ['null', null],
    ['undefined', undefined],
    ['an object', { amount: '100' }],
  ])('a function returning %s rejects with COGPAY_INVALID_PRICE (500)', async (_name, value) => {
    for (const fn of [() => value, async () => value]) {
      const resolve = createPriceResolver<Req>(fn as () => bigint) // created fine: functions are checked per request
      const error = await resolve(REQ).then(
        () => undefined,
        (err: unknown) => err,
      )
      expect(error).toBeInstanceOf(CogpayError)
      expect((error as CogpayError).code).toBe(ErrorCodes.INVALID_PRICE)
      expect((error as CogpayError).status).toBe(500)
      expect((error as CogpayError).message).toContain('price function returned an invalid price')
      expect(((error as CogpayError).cause as CogpayError).code).toBe(ErrorCodes.INVALID_AMOUNT)
    }
  })
})

describe('createPaywall on the real testnet', () => {
  let net: Network
  const origin = 'http://paywall.unit.test'

  beforeAll(async () => {
    net = await startNetwork()
  })
  afterAll(async () => {
    await net?.close()
  })
  afterEach(() => {
    vi.restoreAllMocks()
  })

  /** Spies (calling through) on every way the paywall could reach the receiver or open a socket. */
  function watchReceiver() {
    return {
      asset: vi.spyOn(net.receiver, 'asset'),
      collect: vi.spyOn(net.receiver, 'collect'),
      openChannel: vi.spyOn(net.receiver.uplink, 'openChannel'),
      socketsBefore: net.receiver.socketsOpened,
    }
  }

  async function validHeaders(maxSpend: bigint) {
    const pending = await net.payer.expect(origin, maxSpend)
    return { pending, headers: paymentRequestHeaders(pending.headers) }
  }

  it('throws COGPAY_INVALID_OPTIONS at creation for a bad fixed price', () => {
    for (const price of [100, '-1', '01', 2n ** 64n, 'free']) {
      expectCogpayError(
        () => createPaywall<Req>(price as PriceSpec<Req>, { receiver: net.receiver }),
        ErrorCodes.INVALID_OPTIONS,
      )
    }
  })

  it('throws COGPAY_INVALID_OPTIONS at creation for a receiver without asset() and collect()', () => {
    for (const receiver of [undefined, null, {}, { asset: () => {} }, { collect: () => {} }]) {
      const error = expectCogpayError(
        () => createPaywall<Req>(1n, { receiver: receiver as unknown as PaymentReceiver }),
        ErrorCodes.INVALID_OPTIONS,
      )
      expect(error.message).toContain('receiver')
    }
  })

  it.each([
    ['missing headers', { [Headers.scheme]: SCHEME }, ErrorCodes.MISSING_HEADER, Headers.address],
    ['a duplicate header', { [Headers.scheme]: [SCHEME, SCHEME] }, ErrorCodes.DUPLICATE_HEADER, Headers.scheme],
    ['an oversize header', { [Headers.secret]: 'A'.repeat(65) }, ErrorCodes.HEADER_TOO_LARGE, Headers.secret],
    [
      'an unknown scheme',
      { [Headers.scheme]: 'x402', [Headers.address]: 'test.a', [Headers.secret]: 'x', [Headers.requestId]: 'x' },
      ErrorCodes.UNSUPPORTED_SCHEME,
      Headers.scheme,
    ],
    [
      'a bad address',
      { [Headers.scheme]: SCHEME, [Headers.address]: 'test..a', [Headers.secret]: 'x', [Headers.requestId]: 'x' },
      ErrorCodes.INVALID_ADDRESS,
      Headers.address,
    ],
    [
      'a bad secret',
      { [Headers.scheme]: SCHEME, [Headers.address]: 'test.a.b', [Headers.secret]: 'AAAA', [Headers.requestId]: 'x' },
      ErrorCodes.INVALID_SECRET,
      Headers.secret,
    ],
    [
      'a bad request id',
      {
        [Headers.scheme]: SCHEME,
        [Headers.address]: 'test.a.b',
        [Headers.secret]: Buffer.alloc(32).toString('base64'),
        [Headers.requestId]: 'short',
      },
      ErrorCodes.INVALID_REQUEST_ID,
      Headers.requestId,
    ],
  ])(
    'answers %s with 400 before running the price function or touching the receiver',
    async (_name, raw, code, named) => {
      const price = countedPrice(100n)
      const watch = watchReceiver()
      const paywall = createPaywall<Req>(price.fn, { receiver: net.receiver })
      const outcome = expectRespond(await paywall.handle({ headers: source(raw), request: REQ }))
      expect(outcome.status).toBe(400)
      expect(outcome.headers).toEqual({ 'Cogpay-Error': code, 'Content-Type': 'application/json; charset=utf-8' })
      expect(outcome.body.error.code).toBe(code)
      expect(outcome.body.error.message).toContain(named)
      expect(outcome.body.accepts).toBeUndefined()
      expect(price.calls).toHaveLength(0)
      expect(watch.asset).not.toHaveBeenCalled()
      expect(watch.collect).not.toHaveBeenCalled()
      expect(watch.openChannel).not.toHaveBeenCalled()
      expect(net.receiver.socketsOpened).toBe(watch.socketsBefore)
      expect(net.receiver.uplink.channelCount).toBe(0)
    },
  )

  it('answers a request without payment headers with 402 and the requirements, opening no socket', async () => {
    const price = countedPrice(100n)
    const watch = watchReceiver()
    const paywall = createPaywall<Req>(price.fn, { receiver: net.receiver })
    const outcome = expectRespond(await paywall.handle({ headers: source({}), request: REQ }))
    expect(outcome.status).toBe(402)
    expect(outcome.headers['Cogpay-Error']).toBe(ErrorCodes.PAYMENT_REQUIRED)
    expect(outcome.body).toEqual({
      error: { code: ErrorCodes.PAYMENT_REQUIRED, message: expect.stringContaining('100') },
      accepts: [
        {
          scheme: 'ilp-stream',
          version: 1,
          amount: '100',
          assetCode: 'XRP',
          assetScale: 9,
          headers: { scheme: SCHEME, names: [Headers.scheme, Headers.address, Headers.secret, Headers.requestId] },
        },
      ],
    })
    expect(price.calls).toEqual([REQ])
    expect(watch.collect).not.toHaveBeenCalled()
    expect(watch.openChannel).not.toHaveBeenCalled()
  })

  it('lets a free request through without payment headers, and with them without collecting', async () => {
    const watch = watchReceiver()
    const paywall = createPaywall<Req>(countedPrice(0n).fn, { receiver: net.receiver })
    const free = expectProceed(await paywall.handle({ headers: source({}), request: REQ }))
    expect(free.receipt).toEqual({ requestId: '', price: 0n, paid: 0n, asset: { code: 'XRP', scale: 9 } })
    expect(free.headers).toEqual({
      'Cogpay-Price': '0',
      'Cogpay-Paid': '0',
      'Cogpay-Asset-Code': 'XRP',
      'Cogpay-Asset-Scale': '9',
    })
    const { pending, headers } = await validHeaders(10n)
    const withHeaders = expectProceed(await paywall.handle({ headers: source(headers), request: REQ }))
    expect(withHeaders.receipt.requestId).toBe(pending.requestId)
    expect(withHeaders.headers['Cogpay-Request-Id']).toBe(pending.requestId)
    expect(withHeaders.receipt.paid).toBe(0n)
    withHeaders.finish()
    await expect(pending.finish(0)).resolves.toBe(0n)
    expect(watch.collect).not.toHaveBeenCalled()
    expect(watch.openChannel).not.toHaveBeenCalled()
  })

  it('hands a price function that returns garbage to the error path as COGPAY_INVALID_PRICE (500)', async () => {
    const watch = watchReceiver()
    const paywall = createPaywall<Req>(countedPrice(12.5).fn, { receiver: net.receiver })
    for (const headers of [source({}), source((await validHeaders(100n)).headers)]) {
      const outcome = expectFail(await paywall.handle({ headers, request: REQ }))
      expect(outcome.error).toBeInstanceOf(CogpayError)
      expect((outcome.error as CogpayError).code).toBe(ErrorCodes.INVALID_PRICE)
      expect((outcome.error as CogpayError).status).toBe(500)
    }
    expect(watch.collect).not.toHaveBeenCalled()
    expect(watch.openChannel).not.toHaveBeenCalled()
  })

  it('a price function that throws goes to the error path without exposing its message to the client', async () => {
    const watch = watchReceiver()
    const thrown = new Error('database password=hunter2 unreachable')
    const paywall = createPaywall<Req>(
      () => {
        throw thrown
      },
      { receiver: net.receiver },
    )
    const outcome = expectFail(await paywall.handle({ headers: source({}), request: REQ }))
    // The app's own error reaches its error handler unchanged: not wrapped in an exposed CogpayError.
    expect(outcome.error).toBe(thrown)
    expect(outcome.error).not.toBeInstanceOf(CogpayError)
    expect((outcome.error as { expose?: boolean }).expose).toBeUndefined()
    expect(watch.collect).not.toHaveBeenCalled()
  })

  it.each([
    ['its own address', (own: string) => own],
    ['an address under its own', (own: string) => `${own}.c0`],
    ['the hub', () => 'test.hub'],
    ['the hub child prefix', () => 'test.hub.local'],
  ])('answers 400 COGPAY_INVALID_ADDRESS for %s, without opening a socket', async (_name, address) => {
    const own = net.receiver.uplink.address
    expect(own).toMatch(/^test\.hub\.local\.server/)
    const watch = watchReceiver()
    const { pending, headers } = await validHeaders(1000n)
    const paywall = createPaywall<Req>(100n, { receiver: net.receiver })
    const outcome = expectRespond(
      await paywall.handle({ headers: source({ ...headers, [Headers.address]: address(own) }), request: REQ }),
    )
    await pending.finish(0)
    expect(outcome.status).toBe(400)
    expect(outcome.body.error.code).toBe(ErrorCodes.INVALID_ADDRESS)
    expect(outcome.headers['Cogpay-Error']).toBe(ErrorCodes.INVALID_ADDRESS)
    expect(outcome.body.error.message).toContain(Headers.address)
    expect(watch.collect).toHaveBeenCalledTimes(1)
    expect(watch.openChannel).not.toHaveBeenCalled()
    expect(net.receiver.socketsOpened).toBe(watch.socketsBefore)
    expect(net.receiver.uplink.channelCount).toBe(0)
  })

  it('collects the price from a real payer, then proceeds with the receipt', async () => {
    const watch = watchReceiver()
    const spentBefore = net.payer.spent
    const price = countedPrice('100')
    const paywall = createPaywall<Req>(price.fn, { receiver: net.receiver })
    const { pending, headers } = await validHeaders(1000n)
    const outcome = expectProceed(await paywall.handle({ headers: source(headers), request: REQ }))
    expect(outcome.receipt).toEqual({
      requestId: pending.requestId,
      price: 100n,
      paid: 100n,
      asset: { code: 'XRP', scale: 9 },
    })
    expect(outcome.headers).toEqual({
      'Cogpay-Price': '100',
      'Cogpay-Paid': '100',
      'Cogpay-Asset-Code': 'XRP',
      'Cogpay-Asset-Scale': '9',
      'Cogpay-Request-Id': pending.requestId,
    })
    outcome.finish()
    outcome.finish() // idempotent
    await expect(pending.finish(2000)).resolves.toBe(100n)
    expect(net.payer.spent - spentBefore).toBe(100n)
    expect(price.calls).toHaveLength(1)
    expect(watch.collect).toHaveBeenCalledTimes(1)
    expect(watch.openChannel).toHaveBeenCalledTimes(1)
    expect(net.receiver.socketsOpened).toBe(watch.socketsBefore + 1)
  })

  it('answers 402 COGPAY_CAP_TOO_LOW with the requirements when the payer caps below the price', async () => {
    const spentBefore = net.payer.spent
    const paywall = createPaywall<Req>(100n, { receiver: net.receiver })
    const { pending, headers } = await validHeaders(99n)
    const outcome = expectRespond(await paywall.handle({ headers: source(headers), request: REQ }))
    await pending.finish(0)
    expect(outcome.status).toBe(402)
    expect(outcome.body.error.code).toBe(ErrorCodes.CAP_TOO_LOW)
    expect(outcome.headers['Cogpay-Error']).toBe(ErrorCodes.CAP_TOO_LOW)
    expect(outcome.body.accepts?.[0]?.amount).toBe('100')
    expect(pending.capReached).toBe(true)
    expect(net.payer.spent - spentBefore).toBe(0n)
  })
})
