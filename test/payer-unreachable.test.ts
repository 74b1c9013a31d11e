import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPlugin } from '@cogpay/ilp'
import { faultyPlugin, type FaultyPlugin } from '@cogpay/testnet'
import { startNetwork, type Network } from './support/network.ts'

// Found by a review of 8ec4b66 (PaymentSocket.open no longer awaits the connection): the payment
// timer runs from the start, beside the connect clock. With paymentTimeoutMs below
// connectTimeoutMs, a payer that never answered the socket's first packet got 402
// COGPAY_PAYMENT_TIMEOUT, not COGPAY_PAYER_UNREACHABLE (before: open() failed with
// PAYER_UNREACHABLE after connectTimeoutMs, and the payment timer had not started).
describe('a payer that never answers the first packet', () => {
  let net: Network
  let payerPlugin: FaultyPlugin
  beforeAll(async () => {
    net = await startNetwork({ paymentTimeoutMs: 1000, connectTimeoutMs: 2000 }, {
      uplink: (uri, role) => (role === 'payer' ? (payerPlugin = faultyPlugin(createPlugin(uri), { responseTimeoutMs: 1000 })) : uri),
    })
  })
  afterAll(() => net.close())

  it('fails the request with 502 COGPAY_PAYER_UNREACHABLE, with a payment timeout below the connect timeout too (it was 402 COGPAY_PAYMENT_TIMEOUT)', async () => {
    const pending = await net.payer.expect('http://review-unreachable.test', 100n)
    payerPlugin.faults.set({ drop: 1, direction: 'incoming' })
    const error = await net.receiver.collect({ payment: pending.headers, amount: 60n }).catch((e: unknown) => e)
    expect((error as { code?: string }).code).toBe('COGPAY_PAYER_UNREACHABLE')
  }, 20_000)
})
