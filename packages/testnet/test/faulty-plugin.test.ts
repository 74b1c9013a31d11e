import { Buffer } from 'node:buffer'
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import { faultyPlugin, type PluginLike } from '../src/index.ts'

// The wrapper alone, over a far end that fulfills everything: what it does to each packet, exactly.
// test/uplink-faults.test.ts runs it on the real hub, under cogpay's payer and payment server.

const require = createRequire(import.meta.url)
const IlpPacket = require('ilp-packet') as typeof import('ilp-packet')
const ILDCP = require('ilp-protocol-ildcp') as typeof import('ilp-protocol-ildcp')

/** The other end of the plugin: answers IL-DCP as the testnet's hub would, fulfills every other Prepare. */
function farEnd() {
  let handler: ((data: Buffer) => Promise<Buffer>) | undefined
  const received: Buffer[] = []
  const inner: PluginLike = {
    async connect() {},
    async disconnect() {},
    isConnected: () => true,
    async sendData(data) {
      received.push(data)
      if (IlpPacket.deserializeIlpPrepare(data).destination === 'peer.config') {
        return ILDCP.serve({
          requestPacket: data,
          serverAddress: 'test.hub',
          handler: async () => ({ clientAddress: 'test.hub.local.alice', assetCode: 'XRP', assetScale: 9 }),
        })
      }
      return fulfill()
    },
    async sendMoney() {},
    registerDataHandler(registered) {
      handler = registered
    },
    deregisterDataHandler() {
      handler = undefined
    },
  }
  /** Hands a Prepare to whatever the plugin's user registered, as the hub does. */
  const deliver = (data: Buffer) => handler!(data)
  return { inner, received, deliver }
}

const fulfill = () => IlpPacket.serializeIlpFulfill({ fulfillment: Buffer.alloc(32), data: Buffer.alloc(0) })
const prepare = (amount: bigint, expiresInMs = 30_000) =>
  IlpPacket.serializeIlpPrepare({
    amount: amount.toString(),
    destination: 'test.hub.local.bob',
    executionCondition: Buffer.alloc(32),
    expiresAt: new Date(Date.now() + expiresInMs),
    data: Buffer.alloc(0),
  })
const type = (answer: Buffer) => (answer[0] === IlpPacket.Type.TYPE_ILP_FULFILL ? 'fulfill' : 'reject')

describe('faultyPlugin', () => {
  it('passes everything on untouched while no fault is set, and counts it', async () => {
    const end = farEnd()
    const plugin = faultyPlugin(end.inner)
    plugin.registerDataHandler(async () => fulfill())
    expect(type(await plugin.sendData(prepare(5n)))).toBe('fulfill')
    expect(type(await end.deliver(prepare(7n)))).toBe('fulfill')
    expect(end.received).toHaveLength(1)
    expect(plugin.stats.outgoing).toMatchObject({ prepares: 1, fulfilled: 1, delivered: 5n, inDoubt: 0n })
    expect(plugin.stats.incoming).toMatchObject({ prepares: 1, fulfilled: 1, delivered: 7n, inDoubt: 0n })
  })

  it('answers T04 with a real ILP Reject triggered by the hub, learned from IL-DCP, and passes nothing on', async () => {
    const end = farEnd()
    const plugin = faultyPlugin(end.inner, { faults: { rejectT04: 1 } })
    // IL-DCP is never faulted: the plugin learns its address, and the hub's.
    expect((await ILDCP.fetch((data) => plugin.sendData(data))).clientAddress).toBe('test.hub.local.alice')
    const reject = IlpPacket.deserializeIlpReject(await plugin.sendData(prepare(5n)))
    expect(reject).toMatchObject({ code: 'T04', triggeredBy: 'test.hub' })
    expect(end.received).toHaveLength(1)
    expect(plugin.stats.outgoing).toMatchObject({ prepares: 1, rejectedT04: 1, fulfilled: 0 })
    const named = faultyPlugin(farEnd().inner, { faults: { rejectT04: 1 }, hubAddress: 'g.connector' })
    expect(IlpPacket.deserializeIlpReject(await named.sendData(prepare(5n))).triggeredBy).toBe('g.connector')
  })

  it('strikes every n-th Prepare, at most `times` times; set() restarts the count', async () => {
    const plugin = faultyPlugin(farEnd().inner, { faults: { rejectT04: { every: 3, times: 2 } } })
    const answers = []
    for (let i = 0; i < 10; i++) answers.push(type(await plugin.sendData(prepare(1n))))
    expect(answers.map((a, i) => (a === 'reject' ? i + 1 : 0)).filter(Boolean)).toEqual([3, 6])
    plugin.faults.set({ rejectT04: { every: 1, times: 1 } })
    expect(type(await plugin.sendData(prepare(1n)))).toBe('reject')
    expect(type(await plugin.sendData(prepare(1n)))).toBe('fulfill')
  })

  it('draws probabilities from a seeded generator: the same seed, the same faults', async () => {
    const run = async (seed: number) => {
      const plugin = faultyPlugin(farEnd().inner, { seed, faults: { rejectT04: 0.3 } })
      let pattern = ''
      for (let i = 0; i < 400; i++) pattern += type(await plugin.sendData(prepare(1n))) === 'reject' ? 'x' : '.'
      return pattern
    }
    const first = await run(7)
    expect(await run(7)).toBe(first)
    expect(await run(8)).not.toBe(first)
    const struck = first.split('').filter((c) => c === 'x').length
    expect(struck).toBeGreaterThan(80)
    expect(struck).toBeLessThan(160)
  })

  it('a lost outgoing Prepare: the far end never sees it, and sendData rejects after the response timeout', async () => {
    const end = farEnd()
    const plugin = faultyPlugin(end.inner, { responseTimeoutMs: 200, faults: { drop: 1 } })
    const started = performance.now()
    await expect(plugin.sendData(prepare(5n))).rejects.toThrow('no response within 200 ms')
    expect(performance.now() - started).toBeGreaterThanOrEqual(195)
    expect(end.received).toHaveLength(0)
    expect(plugin.stats.outgoing).toMatchObject({ dropped: 1, delivered: 0n, inDoubt: 0n })
  })

  it('a lost outgoing Fulfill: the far end was paid, the sender times out, and the amount is in doubt', async () => {
    const end = farEnd()
    const plugin = faultyPlugin(end.inner, { responseTimeoutMs: 200, faults: { dropFulfill: 1 } })
    await expect(plugin.sendData(prepare(5n))).rejects.toThrow('no response within 200 ms')
    expect(end.received).toHaveLength(1)
    expect(plugin.stats.outgoing).toMatchObject({ fulfillsDropped: 1, fulfilled: 0, delivered: 0n, inDoubt: 5n })
  })

  it('a lost incoming Prepare or Fulfill is held until the Prepare expires, then answered R00', async () => {
    const end = farEnd()
    const plugin = faultyPlugin(end.inner, { faults: { drop: { every: 1, times: 1 }, direction: 'incoming' } })
    let handled = 0
    plugin.registerDataHandler(async () => {
      handled++
      return fulfill()
    })
    let started = performance.now()
    let reject = IlpPacket.deserializeIlpReject(await end.deliver(prepare(5n, 300)))
    expect(reject.code).toBe('R00')
    expect(performance.now() - started).toBeGreaterThanOrEqual(290)
    expect(handled).toBe(0)
    plugin.faults.set({ dropFulfill: 1, direction: 'incoming' })
    started = performance.now()
    reject = IlpPacket.deserializeIlpReject(await end.deliver(prepare(9n, 300)))
    expect(reject.code).toBe('R00')
    expect(performance.now() - started).toBeGreaterThanOrEqual(290)
    expect(handled).toBe(1)
    expect(plugin.stats.incoming).toMatchObject({ dropped: 1, fulfillsDropped: 1, inDoubt: 9n })
  })

  it('disconnect() ends every wait at once', async () => {
    const end = farEnd()
    const plugin = faultyPlugin(end.inner, { responseTimeoutMs: 60_000, faults: { drop: 1 } })
    plugin.registerDataHandler(async () => fulfill())
    const outgoing = plugin.sendData(prepare(1n))
    const incoming = end.deliver(prepare(1n, 60_000))
    const started = performance.now()
    await plugin.disconnect()
    await expect(outgoing).rejects.toThrow('no response')
    expect(IlpPacket.deserializeIlpReject(await incoming).code).toBe('R00')
    expect(performance.now() - started).toBeLessThan(100)
  })

  it('delays each Prepare and its answer; a Prepare meets the faults in force when it arrived', async () => {
    const plugin = faultyPlugin(farEnd().inner, { faults: { delayMs: 100 } })
    const started = performance.now()
    const answer = plugin.sendData(prepare(5n))
    plugin.faults.set({ dropFulfill: 1 }) // too late for the Prepare under way
    expect(type(await answer)).toBe('fulfill')
    expect(performance.now() - started).toBeGreaterThanOrEqual(195)
    expect(plugin.stats.outgoing).toMatchObject({ delayed: 1, fulfillsDropped: 0, delivered: 5n })
  })

  it('applies faults only in their direction, and with packets: money only to Prepares that carry money', async () => {
    const end = farEnd()
    const plugin = faultyPlugin(end.inner, { faults: { rejectT04: 1, direction: 'incoming', packets: 'money' } })
    plugin.registerDataHandler(async () => fulfill())
    expect(type(await plugin.sendData(prepare(5n)))).toBe('fulfill')
    expect(type(await end.deliver(prepare(0n)))).toBe('fulfill')
    expect(type(await end.deliver(prepare(5n)))).toBe('reject')
    expect(plugin.stats.incoming.rejectedT04).toBe(1)
  })

  it('refuses faults it cannot apply, when they are set', () => {
    const plugin = faultyPlugin(farEnd().inner)
    expect(() => plugin.faults.set({ rejectT04: 1.5 })).toThrow(RangeError)
    expect(() => plugin.faults.set({ drop: { every: 0 } })).toThrow(RangeError)
    expect(() => plugin.faults.set({ delayMs: -1 })).toThrow(RangeError)
    expect(() => plugin.faults.set({ direction: 'sideways' as 'both' })).toThrow(RangeError)
    expect(() => faultyPlugin(farEnd().inner, { responseTimeoutMs: 0 })).toThrow(RangeError)
    expect(plugin.faults.current).toEqual({})
  })
})
