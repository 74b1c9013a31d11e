import { randomBytes } from 'node:crypto'
import { Agent, request as httpRequest } from 'node:http'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '@cogpay/example-express-basic'
import {
  decodeFinal,
  decodeHello,
  decodeLeaseReport,
  ErrorCodes,
  Headers,
  parsePaymentHeaders,
  SCHEME,
} from '@cogpay/core'
import { listen, startNetwork, type Network } from './support/network.ts'

/**
 * Fuzzing, in the test command: header sets through a real server on the real testnet, and the
 * stream messages through the parsers both sides use. Seeded (FUZZ_SEED to replay a run; the seed
 * is printed), bounded in count, every request with a timeout.
 */
const seed = Number(process.env.FUZZ_SEED ?? 20261201)
const HTTP_RUNS = 10_000
const MESSAGE_RUNS = 10_000
const documented = new Set<string>(Object.values(ErrorCodes))

/** Printable ASCII and Latin-1 (no control characters, no DEL): what an HTTP client sends in a header value. */
const headerText = fc.string({
  unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff })).map((code) => String.fromCharCode(code)),
  maxLength: 80,
})

/** A value near a valid one: valid, cut, padded, case-flipped, with junk around, or arbitrary. */
function around(valid: () => string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constant(null).map(valid),
    fc.tuple(fc.constant(null), fc.nat(70)).map(([, n]) => valid().slice(0, n)),
    fc.tuple(fc.constant(null), headerText).map(([, junk]) => `${valid()}${junk}`),
    fc.tuple(fc.constant(null), headerText).map(([, junk]) => `${junk}${valid()}`),
    fc.constant(null).map(() => valid().toUpperCase()),
    fc.constant(null).map(() => ` ${valid()} `),
    fc.constant(''),
    headerText,
  )
}

const headerSet = fc.record(
  {
    scheme: fc.option(around(() => SCHEME), { nil: undefined }),
    address: fc.option(around(() => `test.hub.local.fuzz${randomBytes(3).toString('hex')}.x`), { nil: undefined }),
    secret: fc.option(
      around(() => randomBytes(32).toString('base64url')),
      { nil: undefined },
    ),
    requestId: fc.option(around(() => randomBytes(16).toString('base64url')), { nil: undefined }),
    maxSpend: fc.option(around(() => '500 XRP 9'), { nil: undefined }),
    twice: fc.option(fc.constantFrom('scheme', 'address', 'secret', 'requestId', 'maxSpend'), { nil: undefined }),
  },
  { requiredKeys: [] },
)

type HeaderSet = {
  scheme?: string | undefined
  address?: string | undefined
  secret?: string | undefined
  requestId?: string | undefined
  maxSpend?: string | undefined
  twice?: 'scheme' | 'address' | 'secret' | 'requestId' | 'maxSpend' | undefined
}

function lines(set: HeaderSet): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const field of ['scheme', 'address', 'secret', 'requestId', 'maxSpend'] as const) {
    const value = set[field]
    if (value === undefined) continue
    out[Headers[field]] = set.twice === field ? [value, value] : [value]
  }
  return out
}

describe(`fuzzing (seed ${seed}; FUZZ_SEED=${seed} replays it)`, () => {
  let net: Network
  let app: Awaited<ReturnType<typeof listen>>
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  beforeAll(async () => {
    net = await startNetwork({ connectTimeoutMs: 1000 })
    app = await listen(createApp({ receiver: net.receiver }))
    console.log(`fuzz seed ${seed}`)
  })
  afterAll(async () => {
    agent.destroy()
    await app.close()
    await net.close()
  })

  function send(set: HeaderSet): Promise<{ status: number; code: string | undefined }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${app.url}/weather`, { agent, headers: lines(set), timeout: 5000 }, (res) => {
        res.resume()
        res.on('end', () => resolve({ status: res.statusCode ?? 0, code: res.headers['cogpay-error'] as string | undefined }))
      })
      req.once('timeout', () => req.destroy(new Error('hang: no answer within 5 s')))
      req.once('error', reject)
      req.end()
    })
  }

  it(`${HTTP_RUNS} header sets through a real server: no crash, no hang, no packet sent on invalid input, every 4xx with a documented code`, async () => {
    let invalid = 0
    await fc.assert(
      fc.asyncProperty(headerSet, async (set) => {
        // What the headers are, by the one parser the server uses: the server must act on that.
        const parsed = parsePaymentHeaders((name) => lines(set)[Object.keys(lines(set)).find((key) => key.toLowerCase() === name) ?? ''])
        const packetsBefore = net.receiver.uplink.packetsSent
        const answer = await send(set)
        if (parsed.type !== 'valid') {
          invalid++
          // Not one ILP packet left the server: no socket was opened on garbage.
          expect(net.receiver.uplink.packetsSent).toBe(packetsBefore)
          expect(answer.status).toBe(parsed.type === 'none' ? 402 : 400)
        } else {
          // Valid headers for a payer that does not exist: it cannot pay; never a 5xx of ours but 502/503.
          expect([400, 402, 502, 503]).toContain(answer.status)
        }
        expect(answer.code === undefined || documented.has(answer.code), `undocumented code ${answer.code}`).toBe(true)
        if (answer.status === 400) expect(answer.code).toBeDefined()
      }),
      { seed, numRuns: HTTP_RUNS },
    )
    // The fuzzer reached both sides of the line.
    expect(invalid).toBeGreaterThan(HTTP_RUNS / 4)
    expect(invalid).toBeLessThan(HTTP_RUNS)
    // And the server still serves a real payment afterwards.
    const payment = await net.payer.expect(app.url, 200n)
    const answer = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${app.url}/weather`, { headers: Object.fromEntries(Object.entries(paymentHeaders(payment.headers))) }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      req.once('error', reject)
      req.end()
    })
    expect(answer).toBe(200)
    expect(await payment.finish()).toBe(100n)
  }, 120_000)

  it(`${MESSAGE_RUNS} stream messages (hello, final, lease report, refusal lines): the parsers never throw and accept only well-formed lines`, () => {
    const line = fc.oneof(
      fc.string({ maxLength: 600 }),
      fc.json({ maxDepth: 3 }),
      fc.record({ v: fc.oneof(fc.constant(1), fc.anything()), requestId: fc.oneof(fc.string({ maxLength: 70 }), fc.anything()), amount: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 65n }).map(String), fc.anything()) }, { requiredKeys: [] }).map((value) => JSON.stringify(value)),
      fc.record({ v: fc.constant(1), final: fc.oneof(fc.constantFrom('complete', 'stopped'), fc.string()), charged: fc.string(), paid: fc.string(), code: fc.string({ maxLength: 80 }) }, { requiredKeys: ['v'] }).map((value) => JSON.stringify(value)),
      fc.record({ v: fc.constant(1), lease: fc.string({ maxLength: 70 }), received: fc.string(), resume: fc.anything() }, { requiredKeys: ['v'] }).map((value) => JSON.stringify(value)),
    )
    fc.assert(
      fc.property(line, (text) => {
        const hello = decodeHello(text)
        const final = decodeFinal(text)
        const report = decodeLeaseReport(text)
        if (hello) {
          expect(hello.v).toBe(1)
          expect(typeof hello.requestId).toBe('string')
          if (hello.amount !== undefined) expect(hello.amount >= 0n && hello.amount < 2n ** 64n).toBe(true)
        }
        if (final) expect(['complete', 'stopped']).toContain(final.final)
        if (report) expect(report.received >= 0n && report.received < 2n ** 64n).toBe(true)
        // A byte-level view of the same line decodes the same way.
        expect(decodeHello(new TextEncoder().encode(text))).toEqual(hello)
      }),
      { seed, numRuns: MESSAGE_RUNS },
    )
  })
})

function paymentHeaders(headers: { address: string; secret: Uint8Array; requestId: string }): Record<string, string> {
  return {
    [Headers.scheme]: SCHEME,
    [Headers.address]: headers.address,
    [Headers.secret]: Buffer.from(headers.secret).toString('base64url'),
    [Headers.requestId]: headers.requestId,
  }
}
