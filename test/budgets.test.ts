import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '@cogpay/example-express-basic'
import { STEP_PRICE } from '@cogpay/example-compute'
import { createPayFetch, ErrorCodes, PaymentRequiredError, SpendLimitError } from '@cogpay/fetch'
import { listen, startNetwork, type Network } from './support/network.ts'

describe('host budgets shared across requests (payer side of issue 4)', () => {
  let net: Network
  let app: Awaited<ReturnType<typeof listen>>
  const stops: string[] = []
  beforeAll(async () => {
    net = await startNetwork()
    app = await listen(createApp({ receiver: net.receiver, observer: { onStop: ({ code }) => stops.push(code) } }))
  })
  afterAll(async () => {
    await app.close()
    await net.close()
  })

  it('requests to one host together pay at most its budget; each still at most its own cap', async () => {
    const payer = net.newPayer()
    payer.authorize(app.url, { total: 250n })
    const payFetch = createPayFetch({ payer, maxSpend: 1000n })
    expect((await payFetch(`${app.url}/weather`)).status).toBe(200)
    expect((await payFetch(`${app.url}/weather`)).status).toBe(200)
    // 50 left: the third 100-unit request is refused before anything is paid.
    const third = await payFetch(`${app.url}/weather`).catch((err: unknown) => err)
    expect(third).toBeInstanceOf(SpendLimitError)
    expect((third as SpendLimitError).spent).toBe(0n)
    expect(payer.spent).toBe(200n)
    expect(payer.budgets()).toEqual([
      { origin: app.url, total: 250n, spent: 200n, refunded: 0n, reserved: 0n, available: 50n, revoked: false },
    ])
    // A top-up makes room again.
    payer.topUp(app.url, 50n)
    expect((await payFetch(`${app.url}/weather`)).status).toBe(200)
    expect(payer.budgets()[0]).toMatchObject({ spent: 300n, available: 0n })
  })

  it('concurrent requests cannot overspend a budget: reservations, not checks after the fact', async () => {
    const payer = net.newPayer()
    payer.authorize(app.url, { total: 250n })
    const payFetch = createPayFetch({ payer, maxSpend: 100n })
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => payFetch(`${app.url}/weather`)))
    const ok = results.filter((r) => r.status === 'fulfilled' && r.value.status === 200)
    expect(ok).toHaveLength(2)
    expect(results.filter((r) => r.status === 'rejected').every((r) => r.reason instanceof SpendLimitError)).toBe(true)
    expect(payer.spent).toBe(200n)
    expect(payer.budgets()[0]).toMatchObject({ spent: 200n, reserved: 0n, available: 50n })
  })

  it('revoking stops a metered request at once, and later requests pay nothing', async () => {
    const payer = net.newPayer()
    payer.authorize(app.url, { total: 10_000n })
    stops.length = 0
    const payFetch = createPayFetch({
      payer,
      maxSpend: 10_000n,
      hooks: {
        onSpend: [
          ({ spent }) => {
            if (spent >= 3n * STEP_PRICE && !payer.budgets()[0]?.revoked) payer.revoke(app.url)
          },
        ],
      },
    })
    const error = await payFetch(`${app.url}/compute/200`).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect(error).not.toBeInstanceOf(SpendLimitError)
    expect((error as PaymentRequiredError).serverCode).toBe(ErrorCodes.AUTHORIZATION_REVOKED)
    expect(stops).toEqual([ErrorCodes.AUTHORIZATION_REVOKED])
    const spentAtRevoke = payer.spent
    expect(spentAtRevoke).toBeLessThanOrEqual(4n * STEP_PRICE)
    const later = await payFetch(`${app.url}/weather`).catch((err: unknown) => err)
    expect((later as PaymentRequiredError).serverCode).toBe(ErrorCodes.AUTHORIZATION_REVOKED)
    expect(payer.spent).toBe(spentAtRevoke)
    expect(payer.budgets()[0]).toMatchObject({ revoked: true, reserved: 0n, available: 0n })
  })

  it('a host\'s rate cap bounds its requests too: over the rate, a request is refused before paying', async () => {
    const payer = net.newPayer()
    // 250 per minute: two 100-unit requests now, the third must wait for the bucket to refill.
    payer.authorize(app.url, { total: 10_000n, rate: { amount: 250n, intervalMs: 60_000 } })
    const payFetch = createPayFetch({ payer, maxSpend: 1000n })
    expect((await payFetch(`${app.url}/weather`)).status).toBe(200)
    expect((await payFetch(`${app.url}/weather`)).status).toBe(200)
    const third = await payFetch(`${app.url}/weather`).catch((err: unknown) => err)
    expect(third).toBeInstanceOf(SpendLimitError)
    expect(third).toMatchObject({ spent: 0n, serverCode: ErrorCodes.RATE_TOO_HIGH })
    expect(payer.spent).toBe(200n)
    const [budget] = payer.budgets()
    expect(budget).toMatchObject({ spent: 200n, reserved: 0n, rate: { amount: 250n, intervalMs: 60_000 } })
    expect(budget!.available >= 50n && budget!.available < 60n).toBe(true)
  })

  it('hosts without a budget keep per-request caps only', async () => {
    const payer = net.newPayer()
    payer.authorize('http://elsewhere.test', { total: 0n })
    const response = await createPayFetch({ payer, maxSpend: 100n })(`${app.url}/weather`)
    expect(response.status).toBe(200)
    expect(payer.spent).toBe(100n)
  })
})
