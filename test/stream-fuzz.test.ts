import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { createRequire } from 'node:module'
import express from 'express'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CloseReasons, ErrorCodes, Headers, SCHEME } from '@cogpay/core'
import { paidRoute } from '@cogpay/express'
import { createPayFetch, getPayment } from '@cogpay/fetch'
import { createPaymentServer, createPlugin, type PaymentServer } from '@cogpay/ilp'
import { listen, startNetwork, type Network } from './support/network.ts'

const require = createRequire(import.meta.url)
const { createConnection, createServer } = require('ilp-protocol-stream') as typeof import('ilp-protocol-stream')
type DataAndMoneyStream = import('ilp-protocol-stream').DataAndMoneyStream

/**
 * Fuzzing the stream messages against a live payer and a live server (issue 9): hellos written by
 * a hostile server to a cogpay payer, and lines written by a hostile payer to a cogpay server, each
 * on a real STREAM connection over the real hub. Seeded like test/fuzz.test.ts (FUZZ_SEED).
 */
const seed = Number(process.env.FUZZ_SEED ?? 20261201)
const PAYER_RUNS = 1000
const SERVER_RUNS = 300
const documented = new Set<string>(Object.values(ErrorCodes))
const reasons = new Set<string>(Object.values(CloseReasons))

/** Printable text, a little binary, and JSON-ish characters. */
const junk = fc.string({
  unit: fc.oneof(
    fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    fc.constantFrom('{', '}', '"', ':', ',', '\\', '\u0000', '\u00ff', '\ud83d\ude00'),
  ),
  maxLength: 120,
})
const amountLike = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n + 5n }).map(String),
  fc.constantFrom('-1', '007', '1e3', '0x10', ' 5', '', '18446744073709551616'),
  fc.integer().map((n) => n as unknown as string),
  fc.constant(null as unknown as string),
)
const requestIdLike = fc.oneof(
  fc.constant(null).map(() => randomBytes(16).toString('base64url')),
  junk,
  fc.integer() as fc.Arbitrary<unknown>,
  fc.constant('x'.repeat(65)),
)

/** A line a hostile server writes as a stream's hello: valid-looking, broken, or garbage. */
const hello = fc.oneof(
  fc.record({ v: fc.constantFrom(1, '1', 2, 0, null), requestId: requestIdLike, amount: fc.option(amountLike, { nil: undefined }) }).map((h) => JSON.stringify(h)),
  fc
    .record({
      v: fc.constant(1),
      requestId: requestIdLike,
      lease: fc.record({ id: fc.oneof(junk, fc.constant(randomBytes(12).toString('base64url'))), amount: amountLike, intervalMs: fc.oneof(fc.integer(), fc.constant(1000)), resume: fc.option(fc.boolean(), { nil: undefined }) }),
    })
    .map((h) => JSON.stringify(h)),
  fc.record({ v: fc.constant(1), requestId: requestIdLike, refund: amountLike, amount: fc.option(amountLike, { nil: undefined }) }).map((h) => JSON.stringify(h)),
  junk,
  fc.constant('{'.repeat(600)),
  fc.constant(JSON.stringify({ v: 1, requestId: 'a'.repeat(20), pad: 'x'.repeat(600) })),
)

/** Lines a hostile payer writes on a server's stream: refusal reasons, look-alikes, reports, junk. */
const payerLine = fc.oneof(
  fc.constantFrom(...Object.values(CloseReasons)),
  fc.constantFrom(...Object.values(CloseReasons)).map((r) => `${r.toLowerCase()}`),
  fc.tuple(junk, fc.constantFrom(...Object.values(CloseReasons)), junk).map(([a, r, b]) => `${a}${r}${b}`),
  fc.record({ v: fc.constantFrom(1, 2), lease: junk, received: amountLike }).map((r) => JSON.stringify(r)),
  fc.record({ v: fc.constant(1), final: fc.constantFrom('complete', 'stopped'), charged: amountLike, paid: amountLike }).map((r) => JSON.stringify(r)),
  junk,
  fc.constant('x'.repeat(2000)),
)

describe(`stream messages against a live payer and server (seed ${seed}; FUZZ_SEED=${seed} replays it)`, () => {
  let net: Network
  let receiver: PaymentServer
  let app: Awaited<ReturnType<typeof listen>>

  beforeAll(async () => {
    net = await startNetwork()
    receiver = createPaymentServer({ uplink: net.testnet.uri('fuzzserver'), paymentTimeoutMs: 1000 })
    const server = express()
    server.get('/paid', paidRoute(100n, { receiver }), (_req, res) => void res.send('served'))
    app = await listen(server)
    await receiver.uplink.connect()
  })
  afterAll(async () => {
    await app.close()
    await receiver.close()
    await net.close()
  })

  it(`${PAYER_RUNS} hellos from a hostile server: the payer never pays, refuses each with a reason, and still pays a real request after`, async () => {
    const origin = 'http://hostile.test'
    // The payer's credentials for the hostile origin, and no request in flight to it.
    const pending = await net.payer.expect(origin, 0n)
    pending.abort()
    const spentBefore = net.payer.spent
    const plugin = createPlugin(net.testnet.uri('hostile'))
    const connection = await createConnection({
      plugin,
      destinationAccount: pending.headers.address,
      sharedSecret: Buffer.from(pending.headers.secret),
    })
    connection.on('error', () => {})
    const lines = fc.sample(hello, { seed, numRuns: PAYER_RUNS })
    const answers = new Map<string, number>()
    let received = 0n
    const one = async (line: string) => {
      const stream: DataAndMoneyStream = connection.createStream()
      stream.on('error', () => {})
      stream.write(line)
      // Greedy: it asks for everything, whatever its hello says.
      stream.setReceiveMax('1000000')
      const answer = await new Promise<string>((resolve) => {
        let said = ''
        const timer = setTimeout(() => resolve(`no answer: ${said}`), 8000)
        stream.on('data', (chunk: Buffer) => {
          said += chunk.toString('latin1')
          if (said.includes('\n')) {
            clearTimeout(timer)
            resolve(said.slice(0, said.indexOf('\n')))
          }
        })
        stream.once('close', () => {
          clearTimeout(timer)
          resolve(said ? said.split('\n')[0]! : 'closed')
        })
      })
      received += BigInt(stream.totalReceived)
      answers.set(answer, (answers.get(answer) ?? 0) + 1)
      stream.destroy()
    }
    // Twenty streams at a time, each with its hello (one line) as its first data.
    for (let i = 0; i < lines.length; i += 20) await Promise.all(lines.slice(i, i + 20).map((line) => one(`${line}\n`)))
    expect(received).toBe(0n)
    expect(net.payer.spent).toBe(spentBefore)
    const unexpected = [...answers.keys()].filter((answer) => !reasons.has(answer))
    expect(unexpected, JSON.stringify(Object.fromEntries(answers))).toEqual([])
    connection.destroy().catch(() => {})
    await plugin.disconnect()

    // The payer is unharmed: a real paid request to a real server still goes through.
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const response = await payFetch(`${app.url}/paid`)
    expect(await response.text()).toBe('served')
    expect(getPayment(response)?.spent).toBe(100n)
  }, 120_000)

  it(`${SERVER_RUNS} hostile payers' lines on a server's stream: never served unpaid, every answer a documented 402, 499 or 502, no crash`, async () => {
    // A hostile payer: a STREAM server that, on each stream the cogpay server opens, pays part of
    // the price (never all of it) and writes lines.
    const plugin = createPlugin(net.testnet.uri('hostilepayer'))
    const stream = await createServer({ plugin, maxRemoteStreams: 1000 })
    const plans = fc.sample(fc.record({ lines: fc.array(payerLine, { minLength: 0, maxLength: 3 }), pay: fc.bigInt({ min: 0n, max: 99n }) }), { seed, numRuns: SERVER_RUNS })
    const planFor = new Map<string, (typeof plans)[number]>()
    stream.on('connection', (connection) => {
      connection.on('error', () => {})
      connection.on('stream', (s: DataAndMoneyStream) => {
        s.on('error', () => {})
        let said = ''
        s.on('data', (chunk: Buffer) => {
          if (said.includes('\n')) return
          said += chunk.toString('latin1')
          const newline = said.indexOf('\n')
          if (newline === -1) return
          let requestId = ''
          try {
            requestId = (JSON.parse(said.slice(0, newline)) as { requestId: string }).requestId
          } catch {}
          const plan = planFor.get(requestId)
          if (!plan) return
          s.setSendMax(plan.pay.toString())
          for (const line of plan.lines) s.write(`${line}\n`)
        })
      })
    })
    const statuses = new Map<string, number>()
    const collectedBefore = receiver.paymentsCollected
    const one = (plan: (typeof plans)[number]) =>
      new Promise<void>((resolve) => {
        const { destinationAccount, sharedSecret } = stream.generateAddressAndSecret()
        const requestId = randomBytes(16).toString('base64url')
        planFor.set(requestId, plan)
        const req = httpRequest(
          `${app.url}/paid`,
          {
            headers: {
              [Headers.scheme]: SCHEME,
              [Headers.address]: destinationAccount,
              [Headers.secret]: sharedSecret.toString('base64url'),
              [Headers.requestId]: requestId,
            },
          },
          (res) => {
            let body = ''
            res.on('data', (chunk: Buffer) => (body += chunk.toString()))
            res.on('end', () => {
              const code = String(res.headers['cogpay-error'] ?? '')
              const key = `${res.statusCode} ${documented.has(code) ? code : `undocumented:${code}:${body.slice(0, 60)}`}`
              statuses.set(key, (statuses.get(key) ?? 0) + 1)
              resolve()
            })
          },
        )
        req.setTimeout(15_000, () => req.destroy())
        req.once('error', (err) => {
          statuses.set(`error ${err.message}`, (statuses.get(`error ${err.message}`) ?? 0) + 1)
          resolve()
        })
        req.end()
      })
    for (let i = 0; i < plans.length; i += 20) await Promise.all(plans.slice(i, i + 20).map(one))
    await stream.close().catch(() => {})
    await plugin.disconnect()

    const seen = Object.fromEntries(statuses)
    const allowed = [...statuses.keys()].filter((key) => /^(402|499|502) COGPAY_[A-Z_]+$/.test(key))
    expect(allowed.reduce((sum, key) => sum + statuses.get(key)!, 0), JSON.stringify(seen)).toBe(SERVER_RUNS)
    expect(receiver.paymentsCollected).toBe(collectedBefore)

    // The server is unharmed: an honest payer is still served.
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    const response = await payFetch(`${app.url}/paid`)
    expect(await response.text()).toBe('served')
  }, 120_000)
})
