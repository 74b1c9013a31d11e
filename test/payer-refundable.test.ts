import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPlugin } from '@cogpay/ilp'
import { faultyPlugin, type FaultyPlugin } from '@cogpay/testnet'
import { startNetwork, type Network } from './support/network.ts'
import { sleep, until } from './support/wait.ts'

// Found by a review of ad5b2d3 (a finished request lets go of its stream): the snapshot of what
// the stream had in flight, taken when it closed, was still counted after that money settled (its
// Fulfill came later and added to `spent`): `refundable` counted the same money twice, and the
// payer accepted a refund beyond what it paid.
describe('a finished request whose stream closed with money in flight', () => {
  let net: Network
  let payerPlugin: FaultyPlugin
  beforeAll(async () => {
    net = await startNetwork({}, {
      uplink: (uri, role) => (role === 'payer' ? (payerPlugin = faultyPlugin(createPlugin(uri))) : uri),
    })
  })
  afterAll(() => net.close())

  it('accepts a refund of at most what it paid (it counted the money in flight twice: refundable 120, a refund of 100 taken, for 60 paid)', async () => {
    const pending = await net.payer.expect('http://review-refundable.test', 100n)
    // The payer's money reaches the server 400 ms late, and its Fulfill comes back 400 ms late;
    // the server's own packets (its StreamClose after the price is paid) are not delayed.
    payerPlugin.faults.set({ delayMs: 400, direction: 'outgoing', packets: 'money' })
    expect((await net.receiver.collect({ payment: pending.headers, amount: 60n })).paid).toBe(60n)
    const stream = (pending as unknown as { stream: { isOpen: boolean; inFlight: bigint } }).stream
    await until(() => !stream.isOpen, 1000)
    expect(stream.inFlight).toBe(60n) // closed by the server, its Fulfill still on the way
    // settleTimeoutMs shorter than the Fulfill's delay (payFetch: 2 s; or abort(), or a cap reached)
    await pending.finish(50)
    await until(() => pending.spent === 60n, 2000)
    payerPlugin.faults.clear()
    await sleep(50)
    const kept = pending as unknown as { refundable: bigint }
    expect.soft(kept.refundable).toBe(60n)
    const before = net.payer.refunded
    const sent = await net.receiver.refund({ payment: pending.headers, amount: 100n })
    expect.soft(net.payer.refunded - before).toBeLessThanOrEqual(60n)
    expect(sent).toBeLessThanOrEqual(60n)
  }, 20_000)
})
