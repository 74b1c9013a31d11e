import { Buffer } from 'node:buffer'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import nock from 'nock'
import {
  CogpayError,
  ErrorCodes,
  PaymentRequiredError,
  SpendLimitError,
  createPayFetch,
  getPayment,
  type FetchFunction,
} from '../src/index.ts'
import { isIlpAddress, SCHEME, SECRET_LENGTH } from '@cogpay/core'
import { startNetwork, type Network } from '../../../test/support/network.ts'

// nock 14.0.10, not 15: nock 15 depends on @mswjs/interceptors 0.44, which needs Node 22
// (Promise.withResolvers) although nock 15 declares Node >= 20.12.1.

// A made-up origin: nothing listens there; only nock answers.
const ORIGIN = 'http://paid-api.cogpay.invalid'

const requirements = {
  scheme: 'ilp-stream',
  version: 1,
  amount: '100',
  assetCode: 'XRP',
  assetScale: 9,
  headers: {
    scheme: 'ilp-stream/1',
    names: ['Cogpay-Scheme', 'Cogpay-Address', 'Cogpay-Secret', 'Cogpay-Request-Id'],
  },
}

describe('payFetch against a nock server, with a real payer on the real testnet', () => {
  let net: Network
  /** The headers of each request nock answered. */
  let seen: Headers[]
  const fetchImpl = globalThis.fetch as FetchFunction

  beforeAll(async () => {
    net = await startNetwork()
    // Nothing may leave this process except the payer's BTP connection to the local testnet.
    nock.disableNetConnect()
    nock.enableNetConnect((host: string) => host.startsWith('127.0.0.1'))
  })
  afterAll(async () => {
    nock.cleanAll()
    nock.enableNetConnect()
    await net?.close()
  })
  afterEach(() => {
    const pending = nock.pendingMocks()
    nock.cleanAll()
    // Every interceptor a test set up was used, and nothing was left in flight on the payer.
    expect(pending).toEqual([])
    expect(net.payer.pendingCount).toBe(0)
  })

  /** An interceptor for one GET that records the request headers and answers with `reply`. */
  function serve(path: string, reply: readonly [number, unknown, Record<string, string>?]) {
    seen = []
    nock(ORIGIN)
      .get(path)
      .reply(function (this: nock.ReplyFnContext) {
        seen.push(new Headers(this.req.headers as Record<string, string>))
        return reply as nock.ReplyFnResult
      })
  }

  /** The address and secret the payer hands out for ORIGIN (one pair per origin). */
  async function credentialsForOrigin() {
    const pending = await net.payer.expect(ORIGIN, 0n)
    await pending.finish(0)
    return pending.headers
  }

  function expectPaymentHeaders(headers: Headers | undefined, credentials: { address: string; secret: Uint8Array }) {
    expect(headers).toBeDefined()
    expect(headers?.get('cogpay-scheme')).toBe(SCHEME)
    expect(headers?.get('cogpay-scheme')).toBe('ilp-stream/1')
    const address = headers?.get('cogpay-address') ?? ''
    expect(isIlpAddress(address)).toBe(true)
    expect(address.startsWith(`${net.testnet.childPrefix}.payer`)).toBe(true)
    expect(address).toBe(credentials.address)
    const secretText = headers?.get('cogpay-secret') ?? ''
    expect(secretText).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const secret = Buffer.from(secretText, 'base64url')
    expect(secret.length).toBe(SECRET_LENGTH)
    expect(secret.equals(Buffer.from(credentials.secret))).toBe(true)
    expect(headers?.get('cogpay-request-id')).toMatch(/^[A-Za-z0-9_-]{16,64}$/)
  }

  it('a cogpay 402 rejects with PaymentRequiredError carrying the requirements', async () => {
    serve('/weather', [
      402,
      { error: { code: ErrorCodes.PAYMENT_REQUIRED, message: 'this resource costs 100' }, accepts: [requirements] },
      { 'Cogpay-Error': ErrorCodes.PAYMENT_REQUIRED },
    ])
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n, fetch: fetchImpl })
    const spentBefore = net.payer.spent
    const error = await payFetch(`${ORIGIN}/weather`).catch((err: unknown) => err)

    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect(error).not.toBeInstanceOf(SpendLimitError)
    const e = error as PaymentRequiredError
    expect(e.code).toBe(ErrorCodes.PAYMENT_REQUIRED)
    expect(e.status).toBe(402)
    expect(e.serverCode).toBe(ErrorCodes.PAYMENT_REQUIRED)
    expect(e.message).toBe('this resource costs 100')
    expect(e.requirements).toEqual(requirements)
    expect(e.spent).toBe(0n)
    expect(net.payer.spent - spentBefore).toBe(0n)

    expect(seen).toHaveLength(1)
    expectPaymentHeaders(seen[0], await credentialsForOrigin())
  })

  it('a 402 with COGPAY_CAP_TOO_LOW rejects with SpendLimitError', async () => {
    serve('/report/9', [
      402,
      {
        error: { code: ErrorCodes.CAP_TOO_LOW, message: 'the payer capped below the price' },
        accepts: [{ ...requirements, amount: '225' }],
      },
      { 'Cogpay-Error': ErrorCodes.CAP_TOO_LOW },
    ])
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n, fetch: fetchImpl })
    const error = await payFetch(`${ORIGIN}/report/9`, { maxSpend: 200n }).catch((err: unknown) => err)

    expect(error).toBeInstanceOf(SpendLimitError)
    expect(error).toBeInstanceOf(PaymentRequiredError)
    const e = error as SpendLimitError
    expect(e.code).toBe(ErrorCodes.SPEND_LIMIT)
    expect(e.serverCode).toBe(ErrorCodes.CAP_TOO_LOW)
    expect(e.maxSpend).toBe(200n) // the per-call cap, not the configured one
    expect(e.spent).toBe(0n)
    expect(e.requirements?.amount).toBe('225')
    expect(e.message).toContain(`${ORIGIN}/report/9`)
    expect(e.message).toContain('maxSpend=200')
    expect(e.message).toContain('price=225')
    expectPaymentHeaders(seen[0], await credentialsForOrigin())
  })

  it('a 402 whose only sign of the cap is the Cogpay-Error header is still a SpendLimitError', async () => {
    serve('/weather', [402, 'not json', { 'Cogpay-Error': ErrorCodes.CAP_TOO_LOW }])
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 50n, fetch: fetchImpl })
    const error = await payFetch(`${ORIGIN}/weather`).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(SpendLimitError)
    expect((error as SpendLimitError).serverCode).toBe(ErrorCodes.CAP_TOO_LOW)
    expect((error as SpendLimitError).requirements).toBeUndefined()
  })

  it('a 402 with a hostile body rejects with PaymentRequiredError and no requirements', async () => {
    serve('/weather', [402, { error: { code: 7, message: { html: '<b>' } }, accepts: [{ ...requirements, amount: -1 }] }, {}])
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n, fetch: fetchImpl })
    const error = await payFetch(`${ORIGIN}/weather`).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect(error).not.toBeInstanceOf(SpendLimitError)
    const e = error as PaymentRequiredError
    expect(e.requirements).toBeUndefined()
    expect(e.serverCode).toBeUndefined()
    expect(e.message).toBe(`${ORIGIN}/weather answered 402 Payment Required`)
  })

  it.each(['-5', '1.5', 'abc', '0100', '18446744073709551616'])(
    'a 200 with Cogpay-Paid %j rejects with COGPAY_PROTOCOL_ERROR',
    async (paid) => {
      serve('/weather', [
        200,
        { forecast: 'sunny' },
        { 'Cogpay-Price': '100', 'Cogpay-Paid': paid, 'Cogpay-Asset-Code': 'XRP', 'Cogpay-Asset-Scale': '9' },
      ])
      const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n, fetch: fetchImpl })
      const error = await payFetch(`${ORIGIN}/weather`).catch((err: unknown) => err)
      expect(error).toBeInstanceOf(CogpayError)
      expect(error).not.toBeInstanceOf(PaymentRequiredError)
      expect((error as CogpayError).code).toBe(ErrorCodes.PROTOCOL_ERROR)
      expect((error as CogpayError).message).toContain('Cogpay-Paid')
      expectPaymentHeaders(seen[0], await credentialsForOrigin())
    },
  )

  it('a 200 without payment headers passes through untouched', async () => {
    const body = JSON.stringify({ ok: true, note: 'free' })
    serve('/health', [200, body, { 'Content-Type': 'application/json', 'X-Upstream': 'nock' }])
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n, fetch: fetchImpl })
    const spentBefore = net.payer.spent
    const response = await payFetch(`${ORIGIN}/health`, { headers: { 'X-Client': 'unit' } })

    expect(response.status).toBe(200)
    expect(response.headers.get('x-upstream')).toBe('nock')
    expect(response.headers.get('content-type')).toBe('application/json')
    expect(await response.text()).toBe(body)
    expect(getPayment(response)).toEqual({
      url: `${ORIGIN}/health`,
      requestId: seen[0]?.get('cogpay-request-id'),
      spent: 0n,
      maxSpend: 1000n,
      price: undefined,
      paid: undefined,
      serverAsset: undefined,
      priceAboveCap: false,
      metered: false,
      refunded: 0n,
      done: expect.any(Promise),
    })
    expect(await getPayment(response)?.done).toEqual({ spent: 0n, complete: true, refunded: 0n })
    expect(net.payer.spent - spentBefore).toBe(0n)
    // The caller's own headers went out alongside the payment headers.
    expect(seen[0]?.get('x-client')).toBe('unit')
    expectPaymentHeaders(seen[0], await credentialsForOrigin())
  })

  it('each request gets a fresh request id; the address and secret stay those of the origin', async () => {
    const ids: (string | null | undefined)[] = []
    const credentials = await credentialsForOrigin()
    for (let i = 0; i < 3; i++) {
      serve('/health', [200, 'ok', {}])
      const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1n, fetch: fetchImpl })
      await (await payFetch(`${ORIGIN}/health`)).text()
      expectPaymentHeaders(seen[0], credentials)
      ids.push(seen[0]?.get('cogpay-request-id'))
    }
    expect(new Set(ids).size).toBe(3)
  })
})
