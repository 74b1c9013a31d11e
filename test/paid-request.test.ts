import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp as createExpressApp } from '@cogpay/example-express-basic'
import { createApp as createKoaApp } from '@cogpay/example-koa-basic'
import { createPayFetch, getPayment, SpendLimitError, PaymentRequiredError, ErrorCodes } from '@cogpay/fetch'
import { listen, startNetwork, type Network } from './support/network.ts'

const frameworks = [
  { name: 'Express', start: (net: Network) => listen(createExpressApp({ receiver: net.receiver })), report: '/report/4' },
  { name: 'Koa', start: (net: Network) => listen(createKoaApp({ receiver: net.receiver }).callback()), report: '/report?pages=4' },
] as const

describe.each(frameworks)('$name paid route on the real testnet', ({ start, report }) => {
  let net: Network
  let app: Awaited<ReturnType<typeof listen>>

  beforeAll(async () => {
    net = await startNetwork()
    app = await start(net)
  })
  afterAll(async () => {
    await app.close()
    await net.close()
  })

  it('charges a fixed price: server received = client spent = price, and the handler saw it paid', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const before = net.payer.spent
    const response = await payFetch(`${app.url}/weather`)
    expect(response.status).toBe(200)
    const body = (await response.json()) as { paid: string }
    expect(body.paid).toBe('100') // the handler ran after the price arrived
    const payment = getPayment(response)
    expect(payment?.spent).toBe(100n)
    expect(payment?.paid).toBe(100n)
    expect(payment?.price).toBe(100n)
    expect(payment?.serverAsset).toEqual({ code: 'XRP', scale: 9 })
    expect(net.payer.spent - before).toBe(100n)
  })

  it('charges a price computed from the request', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const response = await payFetch(`${app.url}${report}`)
    expect(response.status).toBe(200)
    expect(((await response.json()) as { paid: string }).paid).toBe('100')
    expect(getPayment(response)?.spent).toBe(100n)
  })

  it('answers 402 with the requirements when the request carries no payment headers', async () => {
    const response = await fetch(`${app.url}/weather`)
    expect(response.status).toBe(402)
    expect(response.headers.get('cogpay-error')).toBe(ErrorCodes.PAYMENT_REQUIRED)
    expect(await response.json()).toEqual({
      error: { code: 'COGPAY_PAYMENT_REQUIRED', message: expect.stringContaining('100') },
      accepts: [
        {
          scheme: 'ilp-stream',
          version: 1,
          amount: '100',
          assetCode: 'XRP',
          assetScale: 9,
          headers: {
            scheme: 'ilp-stream/1',
            names: ['Cogpay-Scheme', 'Cogpay-Address', 'Cogpay-Secret', 'Cogpay-Request-Id'],
          },
        },
      ],
    })
  })

  it('refuses a price above the cap: SpendLimitError, nothing spent, server never ran the handler', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 99n })
    const before = net.payer.spent
    const error = await payFetch(`${app.url}/weather`).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(SpendLimitError)
    expect(error).toBeInstanceOf(PaymentRequiredError)
    expect((error as SpendLimitError).code).toBe(ErrorCodes.SPEND_LIMIT)
    expect((error as SpendLimitError).serverCode).toBe(ErrorCodes.CAP_TOO_LOW)
    expect((error as SpendLimitError).requirements?.amount).toBe('100')
    expect((error as SpendLimitError).spent).toBe(0n)
    expect(net.payer.spent - before).toBe(0n)
  })

  it('passes free routes through untouched', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const response = await payFetch(`${app.url}/health`)
    expect(await response.json()).toEqual({ ok: true })
    expect(getPayment(response)?.spent).toBe(0n)
  })
})
