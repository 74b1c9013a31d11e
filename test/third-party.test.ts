/**
 * The wire contract (docs/PROTOCOL.md) spoken by parties that are not cogpay: a payer and a
 * malicious server written directly with ilp-protocol-stream, on the real embedded testnet.
 */
import { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { Connection, DataAndMoneyStream, Server as StreamServer } from 'ilp-protocol-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '@cogpay/example-express-basic'
import { createPayFetch, getPayment } from '@cogpay/fetch'
import { createPlugin, type IlpPlugin } from '@cogpay/ilp'
import { listen, startNetwork, type Network } from './support/network.ts'

const IlpStream = createRequire(import.meta.url)('ilp-protocol-stream') as typeof import('ilp-protocol-stream')

type Listening = Awaited<ReturnType<typeof listen>>

/** Rejects when `promise` has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Polls `check` until it is true, for at most `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() >= deadline) throw new Error(`${what}: not true within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** Best-effort cleanup that never hangs the suite. */
async function bounded(work: () => Promise<unknown>, ms = 3000): Promise<void> {
  await within(Promise.resolve().then(work), ms, 'cleanup').catch(() => {})
}

const CLOSE = {
  capTooLow: 'COGPAY_CAP_TOO_LOW',
  unknownRequest: 'COGPAY_UNKNOWN_REQUEST',
  badHello: 'COGPAY_BAD_HELLO',
} as const

interface Hello {
  requestId: string
  amount: bigint | undefined
}

/**
 * Reads the hello line that opens every cogpay payment stream (PROTOCOL.md, "The hello"): JSON
 * up to the first newline, under 512 bytes, `v: 1`, a string `requestId`, an optional decimal
 * string `amount`. Rejects on anything else or when none arrives within `ms`.
 */
function readHello(stream: DataAndMoneyStream, ms: number): Promise<Hello> {
  return new Promise<Hello>((resolve, reject) => {
    let buffered = Buffer.alloc(0)
    const done = (error?: Error, hello?: Hello) => {
      clearTimeout(timer)
      stream.removeListener('data', onData)
      if (hello) resolve(hello)
      else reject(error ?? new Error('no hello'))
    }
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      const newline = buffered.indexOf(0x0a)
      if (newline === -1) {
        if (buffered.length >= 512) done(new Error('hello too long'))
        return
      }
      if (newline >= 512) return done(new Error('hello too long'))
      try {
        const value = JSON.parse(buffered.subarray(0, newline).toString('utf8')) as Record<string, unknown>
        const { v, requestId, amount } = value
        if (v !== 1 || typeof requestId !== 'string' || requestId.length > 64) throw new Error('bad hello')
        if (amount !== undefined && (typeof amount !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(amount))) {
          throw new Error('bad amount')
        }
        done(undefined, { requestId, amount: amount === undefined ? undefined : BigInt(amount) })
      } catch (err) {
        done(err as Error)
      }
    }
    const timer = setTimeout(() => done(new Error('hello timeout')), ms)
    stream.on('data', onData)
  })
}

function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name.toLowerCase()]
  if (typeof value !== 'string') throw new Error(`missing ${name}`)
  return value.trim()
}

describe('third parties speak the wire contract with ilp-protocol-stream alone', () => {
  let net: Network
  let app: Listening
  const streamServers: StreamServer[] = []
  const plugins: IlpPlugin[] = []
  const connections: Connection[] = []
  const httpServers: Listening[] = []

  beforeAll(async () => {
    net = await startNetwork()
    app = await listen(createApp({ receiver: net.receiver }))
  })

  afterAll(async () => {
    for (const connection of connections) await bounded(() => connection.destroy())
    for (const server of streamServers) await bounded(() => server.close())
    for (const plugin of plugins) await bounded(() => plugin.disconnect())
    for (const server of httpServers) await bounded(() => server.close())
    if (app) await bounded(() => app.close())
    if (net) await bounded(() => net.close(), 10_000)
  })

  it('a payer built on ilp-protocol-stream pays the Express example /weather with plain fetch', async () => {
    // The payer's STREAM server on its own uplink account.
    const server = await within(IlpStream.createServer({ plugin: createPlugin(net.testnet.uri('x')) }), 10_000, 'createServer')
    streamServers.push(server)
    const ourAsset = { code: server.assetCode, scale: server.assetScale }

    // One address and secret for this server origin; requests in flight, each with its cap.
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
    const inFlight = new Map<string, { cap: bigint; stream?: DataAndMoneyStream }>()
    let resolvePaying: (stream: DataAndMoneyStream) => void = () => {}
    const paying = new Promise<DataAndMoneyStream>((resolve) => {
      resolvePaying = resolve
    })
    const refusals: string[] = []

    server.on('connection', (connection: Connection) => {
      connection.on('error', () => {})
      connection.on('stream', (stream: DataAndMoneyStream) => {
        stream.on('error', () => {})
        // As docs/PROTOCOL.md says: write the reason as a line of stream data, pay nothing, and
        // let the server close the stream (which hands the stream id back to it).
        const refuse = (reason: string) => {
          refusals.push(reason)
          stream.write(`${reason}\n`)
        }
        readHello(stream, 5000).then(
          (hello) => {
            const request = inFlight.get(hello.requestId)
            if (!request || request.stream) return refuse(CLOSE.unknownRequest)
            const sameAsset =
              connection.destinationAssetCode === ourAsset.code && connection.destinationAssetScale === ourAsset.scale
            if (hello.amount !== undefined && sameAsset && hello.amount > request.cap) return refuse(CLOSE.capTooLow)
            request.stream = stream
            // The cap, in our own units: STREAM never sends past it, whatever the server asks.
            stream.setSendMax(request.cap.toString())
            resolvePaying(stream)
          },
          () => refuse(CLOSE.badHello),
        )
      })
    })

    const requestId = randomBytes(16).toString('base64url')
    inFlight.set(requestId, { cap: 1000n })
    const response = await fetch(`${app.url}/weather`, {
      headers: {
        'Cogpay-Scheme': 'ilp-stream/1',
        'Cogpay-Address': destinationAccount,
        'Cogpay-Secret': sharedSecret.toString('base64url'),
        'Cogpay-Request-Id': requestId,
      },
      signal: AbortSignal.timeout(15_000),
    })
    const body = (await response.json()) as { paid?: string }
    expect(response.status).toBe(200)
    expect(body.paid).toBe('100')
    expect(response.headers.get('Cogpay-Price')).toBe('100')
    expect(response.headers.get('Cogpay-Paid')).toBe('100')
    expect(response.headers.get('Cogpay-Asset-Code')).toBe(ourAsset.code)
    expect(response.headers.get('Cogpay-Asset-Scale')).toBe(String(ourAsset.scale))
    expect(response.headers.get('Cogpay-Request-Id')).toBe(requestId)

    // The server pulled the price, not the cap: exactly 100 left on our stream, which it ended.
    const stream = await within(paying, 1000, 'payment stream')
    await until(() => BigInt(stream.totalSent) >= 100n, 3000, 'stream sent the price')
    await within(
      new Promise<void>((resolve) => (stream.destroyed ? resolve() : stream.once('close', () => resolve()))),
      3000,
      'server ends the stream',
    )
    expect(stream.totalSent).toBe('100')
    expect(refusals).toEqual([])
    inFlight.delete(requestId)
  })

  // Issue 9, PROTOCOL gap: the refusal at the cap needs the server's receive max, which
  // ilp-protocol-stream does not show. A metered server states each raise in an ask line.
  it('a payer built on ilp-protocol-stream refuses a metered route at its cap from the ask lines, and the server stops at once', async () => {
    const server = await within(IlpStream.createServer({ plugin: createPlugin(net.testnet.uri('asker')) }), 10_000, 'createServer')
    streamServers.push(server)
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
    const cap = 20n // /compute charges 7 per step: the third step asks 21
    const asks: string[] = []
    let sent = ''
    server.on('connection', (connection: Connection) => {
      connection.on('error', () => {})
      connection.on('stream', (stream: DataAndMoneyStream) => {
        stream.on('error', () => {})
        let buffered = ''
        let helloRead = false
        stream.on('data', (chunk: Buffer) => {
          buffered += chunk.toString('utf8')
          for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
            const line = buffered.slice(0, newline)
            buffered = buffered.slice(newline + 1)
            if (!helloRead) {
              helloRead = true
              stream.setSendMax(cap.toString())
              continue
            }
            const value = JSON.parse(line) as { ask?: string; final?: string }
            if (value.ask === undefined) continue
            asks.push(value.ask)
            // Same asset (the testnet has one): the ask is comparable with the cap. Above it: refuse.
            if (BigInt(value.ask) > cap) stream.write('COGPAY_CAP_TOO_LOW\n')
          }
        })
        stream.on('close', () => (sent = stream.totalSent))
      })
    })
    const started = Date.now()
    const response = await fetch(`${app.url}/compute/10`, {
      headers: {
        'Cogpay-Scheme': 'ilp-stream/1',
        'Cogpay-Address': destinationAccount,
        'Cogpay-Secret': sharedSecret.toString('base64url'),
        'Cogpay-Request-Id': randomBytes(16).toString('base64url'),
      },
      signal: AbortSignal.timeout(15_000),
    })
    await response.text().catch(() => '')
    const elapsed = Date.now() - started
    expect(asks.slice(0, 3)).toEqual(['7', '14', '21'])
    // Stopped by the refusal, not by the 10 s stall timeout.
    expect(elapsed).toBeLessThan(3000)
    await until(() => sent !== '', 3000, 'stream closed')
    expect(BigInt(sent)).toBeLessThanOrEqual(cap)
  })

  describe('a malicious server against createPayFetch', () => {
    type Mode = 'honest' | 'overclaim' | 'stale' | 'above-cap'
    interface Attempt {
      headerRequestId: string
      helloRequestId: string
      received: bigint
      reason: string
    }
    let evil: Listening
    let mode: Mode = 'overclaim'
    let previousRequestId: string | undefined
    const attempts: Attempt[] = []
    const sockets = new Map<string, Promise<Connection>>()

    /** One STREAM connection per payer address + secret, on a BTP plugin of its own. */
    function connectTo(address: string, secret: Buffer): Promise<Connection> {
      const key = `${address} ${secret.toString('base64')}`
      let socket = sockets.get(key)
      if (!socket) {
        const plugin = createPlugin(net.testnet.uri('evil'))
        plugins.push(plugin)
        socket = within(IlpStream.createConnection({ plugin, destinationAccount: address, sharedSecret: secret }), 5000, 'connect to payer')
        socket.then(
          (connection) => {
            connection.on('error', () => {})
            connections.push(connection)
          },
          () => {},
        )
        sockets.set(key, socket)
      }
      return socket
    }

    async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
      const address = header(req, 'Cogpay-Address')
      const secret = Buffer.from(header(req, 'Cogpay-Secret'), 'base64url')
      const requestId = header(req, 'Cogpay-Request-Id')
      const connection = await connectTo(address, secret)
      const stream = connection.createStream()
      // The payer says why it will not pay in a line of stream data (the hello's counterpart).
      let reason = ''
      let said = ''
      stream.on('error', (err: Error) => {
        reason ||= err.message
      })
      const helloRequestId = mode === 'stale' && previousRequestId ? previousRequestId : requestId
      // overclaim: the hello claims 10 while the receive max asks for far more. above-cap: an
      // honest hello whose amount is above the payer's cap. honest: asks 10, takes 10.
      const claimed = mode === 'above-cap' ? 1000n : 10n
      const receiveMax = mode === 'honest' ? 10n : mode === 'above-cap' ? 1000n : 1_000_000n
      const closed = new Promise<void>((resolve) => {
        stream.once('close', () => resolve())
        stream.on('data', (chunk: Buffer) => {
          said += chunk.toString()
          if (said.includes('\n')) {
            reason = said.slice(0, said.indexOf('\n'))
            resolve()
          }
        })
        stream.on('money', () => {
          if (BigInt(stream.totalReceived) >= receiveMax) resolve()
        })
      })
      stream.write(`${JSON.stringify({ v: 1, requestId: helloRequestId, amount: claimed.toString() })}\n`)
      stream.setReceiveMax(receiveMax.toString())
      // Pull for as long as the payer lets us: until it refuses or closes the stream, or 3 s.
      await within(closed, 3000, 'payer refuses or closes the stream').catch(() => {})
      const received = BigInt(stream.totalReceived)
      if (!stream.destroyed) stream.end()
      attempts.push({ headerRequestId: requestId, helloRequestId, received, reason })
      previousRequestId = requestId
      res.writeHead(200, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ received: received.toString() }))
    }

    beforeAll(async () => {
      evil = await listen((req, res) => {
        handle(req, res).catch((err: unknown) => {
          res.writeHead(500).end(String((err as Error)?.message ?? err))
        })
      })
      httpServers.push(evil)
    })

    async function attack(next: Mode): Promise<{ attempt: Attempt; spent: bigint; paymentSpent: bigint | undefined }> {
      mode = next
      const payFetch = createPayFetch({ payer: net.payer, maxSpend: 500n })
      const before = net.payer.spent
      const count = attempts.length
      const response = await payFetch(`${evil.url}/steal`, { signal: AbortSignal.timeout(15_000) })
      expect(response.status).toBe(200)
      await response.text()
      expect(attempts.length).toBe(count + 1)
      const attempt = attempts[attempts.length - 1]
      if (!attempt) throw new Error('no attempt recorded')
      return { attempt, spent: net.payer.spent - before, paymentSpent: getPayment(response)?.spent }
    }

    it('a hello claiming 10 with a receive max of 1,000,000 gets at most the cap (500)', async () => {
      const { attempt, spent, paymentSpent } = await attack('overclaim')
      expect(attempt.helloRequestId).toBe(attempt.headerRequestId)
      expect(spent).toBeLessThanOrEqual(500n)
      expect(paymentSpent).toBeLessThanOrEqual(500n)
      expect(attempt.received).toBeLessThanOrEqual(500n)
      expect(attempt.received).toBe(spent) // same asset, no spread: what left is what arrived
      expect(attempt.reason).toContain(CLOSE.capTooLow)
    })

    it('a hello naming a request that is no longer in flight gets nothing', async () => {
      // First an honest request (pays 10) that finishes; then a hello naming its id again.
      const honest = await attack('honest')
      expect(honest.spent).toBe(10n)
      expect(honest.attempt.received).toBe(10n)
      const { attempt, spent, paymentSpent } = await attack('stale')
      expect(attempt.helloRequestId).toBe(honest.attempt.headerRequestId)
      expect(attempt.helloRequestId).not.toBe(attempt.headerRequestId) // reused from the finished request
      expect(spent).toBe(0n)
      expect(paymentSpent).toBe(0n)
      expect(attempt.received).toBe(0n)
      expect(attempt.reason).toContain(CLOSE.unknownRequest)
    })

    it('a hello asking more than the cap in the payer asset is refused before anything is paid', async () => {
      const { attempt, spent, paymentSpent } = await attack('above-cap')
      expect(spent).toBe(0n)
      expect(paymentSpent).toBe(0n)
      expect(attempt.received).toBe(0n)
      expect(attempt.reason).toContain(CLOSE.capTooLow)
    })
  })
})
