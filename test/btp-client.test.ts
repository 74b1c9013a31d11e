import { Buffer } from 'node:buffer'
import { createHash, randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { createPaymentServer, createPlugin, type IlpPlugin } from '@cogpay/ilp'
import { startTestnet, type Testnet } from '@cogpay/testnet'
import { InDoubt, LOST_WITH_CONNECTION } from '../packages/ilp/src/in-doubt.ts'

// cogpay's own BTP client (packages/ilp/src/btp-client.ts), through createPlugin, against the real
// hub: ilp-connector with ilp-plugin-mini-accounts, as users run it.
// ilp-packet and IL-DCP are @cogpay/ilp's dependencies, not the workspace root's: loaded, and typed, from there.
const fromIlp = createRequire(new URL('../packages/ilp/package.json', import.meta.url))
const IlpPacket = fromIlp('ilp-packet') as typeof import('../packages/ilp/node_modules/ilp-packet/dist/index.js')
const ILDCP = fromIlp('ilp-protocol-ildcp') as {
  fetch(send: (data: Buffer) => Promise<Buffer>): Promise<{ clientAddress: string; assetCode: string; assetScale: number }>
}

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {})
})

async function testnet(port?: number): Promise<Testnet> {
  const net = await startTestnet(port === undefined ? {} : { port })
  cleanups.push(() => net.close())
  return net
}

function plugin(uri: string): IlpPlugin {
  const made = createPlugin(uri)
  cleanups.push(() => made.disconnect())
  return made
}

/** A connected plugin and its address. */
async function side(net: Testnet, name: string): Promise<{ plugin: IlpPlugin; address: string }> {
  const made = plugin(net.uri(name))
  await made.connect()
  const { clientAddress } = await ILDCP.fetch((data) => made.sendData(data))
  return { plugin: made, address: clientAddress }
}

const fulfillment = randomBytes(32)
const condition = createHash('sha256').update(fulfillment).digest()

function prepare(destination: string, amount = '10', expiresInMs = 30_000): Buffer {
  return IlpPacket.serializeIlpPrepare({
    amount,
    destination,
    executionCondition: condition,
    expiresAt: new Date(Date.now() + expiresInMs),
    data: Buffer.from('hello'),
  })
}

const fulfill = () => IlpPacket.serializeIlpFulfill({ fulfillment, data: Buffer.from('thanks') })

function rejectOf(response: Buffer) {
  expect(response[0]).toBe(IlpPacket.Type.TYPE_ILP_REJECT)
  return IlpPacket.deserializeIlpReject(response)
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('the BTP client (RFC 23) on the real hub', () => {
  it('authenticates with the name and token of its URI, and learns its address over IL-DCP', async () => {
    const net = await testnet()
    const uri = net.uri('alice')
    const alice = plugin(uri)
    expect(alice.isConnected()).toBe(false)
    await within(alice.connect(), 2000, 'connect')
    expect(alice.isConnected()).toBe(true)
    // connect() again is a no-op
    await within(alice.connect(), 100, 'connect again')
    const info = await ILDCP.fetch((data) => alice.sendData(data))
    // mini-accounts names the child after auth_username.
    const account = new URL(uri).username
    expect(info.clientAddress).toBe(`${net.childPrefix}.${account}`)
    expect(info).toMatchObject({ assetCode: 'XRP', assetScale: 9 })
  })

  it('a wrong token: connect() rejects at once with COGPAY_UPLINK_UNAVAILABLE naming the account, never the token; a later connect() tries again', async () => {
    const net = await testnet()
    const uri = net.uri('bob')
    // The hub keeps the first token it saw for an account name.
    const first = plugin(uri)
    await first.connect()
    await first.disconnect()
    const wrongToken = 'wrong-token-0123456789'
    const wrong = new URL(uri)
    wrong.password = wrongToken
    const impostor = plugin(wrong.href)
    const started = Date.now()
    const error = await within(impostor.connect().then(() => undefined, (err: unknown) => err), 3000, 'refusal')
    expect(Date.now() - started).toBeLessThan(2000)
    expect(error).toMatchObject({ code: 'COGPAY_UPLINK_UNAVAILABLE' })
    const message = (error as Error).message
    expect(message).toContain('refused the credentials')
    expect(message).toContain(wrong.username)
    // mini-accounts' refusal quotes the token it got: it is scrubbed.
    expect(message).not.toContain(wrongToken)
    expect(JSON.stringify(error) + String((error as Error).stack)).not.toContain(wrongToken)
    expect(impostor.isConnected()).toBe(false)
    await expect(within(impostor.connect(), 3000, 'second refusal')).rejects.toMatchObject({ code: 'COGPAY_UPLINK_UNAVAILABLE' })
    // Through an Uplink (a payment server's), within its caller's timeout and as clearly.
    const server = createPaymentServer({ uplink: wrong.href, connectTimeoutMs: 3000 })
    cleanups.push(() => server.close())
    const viaUplink = await server.uplink.connect().then(() => undefined, (err: unknown) => err)
    expect(viaUplink).toMatchObject({ code: 'COGPAY_UPLINK_UNAVAILABLE' })
    expect((viaUplink as Error).message).toMatch(/uplink did not connect: .*refused the credentials/)
    expect((viaUplink as Error).message).not.toContain(wrongToken)
  })

  it('a refused connection is retried in the background: connect() resolves once the hub listens', async () => {
    const first = await startTestnet()
    const port = first.port
    const uri = first.uri('carol')
    await first.close()
    const carol = plugin(uri)
    let connected = false
    const connecting = carol.connect().then(() => {
      connected = true
    })
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(connected).toBe(false)
    // Sent while no connection is up: answered at once, and it never left (no money in doubt).
    const inDoubt = new InDoubt()
    const notSent = rejectOf(await within(inDoubt.send(prepare('test.hub.local.nobody'), (data) => carol.sendData(data)), 100, 'answer'))
    expect(notSent).toMatchObject({ code: 'T00', triggeredBy: '' })
    expect(notSent.message).not.toBe(LOST_WITH_CONNECTION)
    expect(inDoubt.amount).toBe(0n)
    await testnet(port)
    await within(connecting, 3000, 'connect once the hub is up')
    expect(carol.isConnected()).toBe(true)
  })

  it('carries Prepares both ways: the data handler answers the hub’s Messages, the sender gets the Fulfill', async () => {
    const net = await testnet()
    const sender = await side(net, 'sender')
    const receiver = await side(net, 'receiver')
    const seen: { amount: string; destination: string }[] = []
    receiver.plugin.registerDataHandler(async (data) => {
      const { amount, destination } = IlpPacket.deserializeIlpPrepare(data)
      seen.push({ amount, destination })
      return fulfill()
    })
    expect(() => receiver.plugin.registerDataHandler(async () => fulfill())).toThrow(/already registered/)
    // Several at once on one socket: request ids keep them apart.
    const responses = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => sender.plugin.sendData(prepare(`${receiver.address}.s${n}`, String(n)))),
    )
    for (const response of responses) {
      expect(response[0]).toBe(IlpPacket.Type.TYPE_ILP_FULFILL)
      expect(IlpPacket.deserializeIlpFulfill(response).fulfillment.equals(fulfillment)).toBe(true)
    }
    expect(seen.map((s) => s.amount).sort()).toEqual(['1', '2', '3', '4', '5'])
    expect(seen.every((s) => s.destination.startsWith(`${receiver.address}.s`))).toBe(true)

    // A handler that throws: the hub gets a BTP Error and answers the sender with a reject.
    receiver.plugin.deregisterDataHandler()
    receiver.plugin.registerDataHandler(async () => {
      throw new Error('handler failed')
    })
    rejectOf(await sender.plugin.sendData(prepare(`${receiver.address}.x`)))
    // No handler at all: likewise.
    receiver.plugin.deregisterDataHandler()
    rejectOf(await sender.plugin.sendData(prepare(`${receiver.address}.y`)))
  })

  it('a Prepare nobody answers rejects after the 5 s response timeout', async () => {
    const net = await testnet()
    const sender = await side(net, 'sender')
    const silent = await side(net, 'silent')
    silent.plugin.registerDataHandler(() => new Promise<Buffer>(() => {}))
    const started = Date.now()
    const error = await sender.plugin.sendData(prepare(silent.address)).then(() => undefined, (err: unknown) => err)
    const elapsed = Date.now() - started
    expect(error).toMatchObject({ code: 'COGPAY_UPLINK_UNAVAILABLE' })
    expect((error as Error).message).toContain('no answer from the hub within 5000 ms')
    expect(elapsed).toBeGreaterThanOrEqual(4900)
    expect(elapsed).toBeLessThan(6500)
  }, 15_000)

  it('the hub restarts: a packet in flight is answered at once with T00 lost-with-connection (in doubt), and the client reconnects by itself', async () => {
    const first = await startTestnet()
    const port = first.port
    let firstClosed = false
    cleanups.push(async () => {
      if (!firstClosed) await first.close()
    })
    const sender = await side(first, 'sender')
    const holder = await side(first, 'holder')
    let held = 0
    holder.plugin.registerDataHandler(() => {
      held++
      return new Promise<Buffer>(() => {})
    })
    const events: string[] = []
    ;(sender.plugin as unknown as NodeJS.EventEmitter).on('disconnect', () => events.push('disconnect'))
    ;(sender.plugin as unknown as NodeJS.EventEmitter).on('connect', () => events.push('connect'))
    const inDoubt = new InDoubt()
    const inFlight = inDoubt.send(prepare(holder.address, '7'), (data) => sender.plugin.sendData(data))
    await until(() => held === 1, 2000, 'the Prepare reached the holder')
    const down = Date.now()
    await first.close()
    firstClosed = true
    const lost = rejectOf(await within(inFlight, 1000, 'the in-flight packet answered'))
    expect(Date.now() - down).toBeLessThan(1000)
    expect(lost).toMatchObject({ code: 'T00', triggeredBy: '', message: LOST_WITH_CONNECTION })
    expect(inDoubt.amount).toBe(7n)
    expect(sender.plugin.isConnected()).toBe(false)
    expect(events).toEqual(['disconnect'])

    await new Promise((resolve) => setTimeout(resolve, 300))
    const again = await testnet(port)
    const back = Date.now()
    await until(() => sender.plugin.isConnected(), 3000, 'reconnected')
    expect(Date.now() - back).toBeLessThan(2500)
    expect(events).toEqual(['disconnect', 'connect'])
    // The same account on the new hub: IL-DCP and packets work again.
    const { clientAddress } = await ILDCP.fetch((data) => sender.plugin.sendData(data))
    expect(clientAddress).toBe(sender.address)
    await until(() => holder.plugin.isConnected(), 3000, 'holder reconnected')
    holder.plugin.deregisterDataHandler()
    holder.plugin.registerDataHandler(async () => fulfill())
    const response = await sender.plugin.sendData(prepare(`${holder.address}.after`))
    expect(response[0]).toBe(IlpPacket.Type.TYPE_ILP_FULFILL)
    void again
  }, 20_000)

  it('disconnect() ends every wait at once: packets in flight are answered, a pending connect() rejects, and it stays closed', async () => {
    const net = await testnet()
    const sender = await side(net, 'sender')
    const holder = await side(net, 'holder')
    holder.plugin.registerDataHandler(() => new Promise<Buffer>(() => {}))
    const inFlight = sender.plugin.sendData(prepare(holder.address))
    await new Promise((resolve) => setTimeout(resolve, 100))
    await within(sender.plugin.disconnect(), 200, 'disconnect')
    expect(rejectOf(await within(inFlight, 100, 'in flight answered')).message).toBe(LOST_WITH_CONNECTION)
    expect(sender.plugin.isConnected()).toBe(false)
    await expect(sender.plugin.connect()).rejects.toMatchObject({ code: 'COGPAY_UPLINK_UNAVAILABLE' })
    expect(rejectOf(await sender.plugin.sendData(prepare(holder.address))).code).toBe('T00')

    const nowhere = plugin('btp+ws://dave:dave-secret@127.0.0.1:1')
    const connecting = nowhere.connect().then(() => undefined, (err: unknown) => err)
    await new Promise((resolve) => setTimeout(resolve, 200))
    await within(nowhere.disconnect(), 200, 'disconnect while connecting')
    const error = await within(connecting, 100, 'pending connect settled')
    expect(error).toMatchObject({ code: 'COGPAY_UPLINK_UNAVAILABLE' })
    expect((error as Error).message).not.toContain('dave-secret')
  })

  it('sendMoney is a no-op that resolves (mini-accounts without settlement needs none)', async () => {
    const net = await testnet()
    const { plugin: alice } = await side(net, 'alice')
    await expect(alice.sendMoney('100')).resolves.toBeUndefined()
  })
})
