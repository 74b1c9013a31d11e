import { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { createApp as createExpressApp } from '@cogpay/example-express-basic'
import { createApp as createKoaApp } from '@cogpay/example-koa-basic'
import { createPayFetch } from '@cogpay/fetch'
import { ErrorCodes, Headers, SCHEME, type ErrorCode } from '@cogpay/core'
import { listen, startNetwork, type Network } from './support/network.ts'

type HeaderName = (typeof Headers)[keyof typeof Headers]
type RawHeaders = Record<string, string | string[]>

interface Case {
  readonly name: string
  /** The headers sent, given the server's own ILP address. Arrays are sent as repeated header lines. */
  readonly headers: (own: string) => RawHeaders
  readonly code: ErrorCode
  /** The header the error message must name. */
  readonly names: HeaderName
  /** The case passes header parsing and is refused in PaymentServer.collect (still before any socket). */
  readonly reachesCollect?: true
}

const SECRET = Buffer.from(randomBytes(32))
// A secret that uses the alphabet-specific characters of both encodings (+ / in base64, - _ in base64url).
const SPECIAL = Buffer.alloc(32, 0xff)
SPECIAL[0] = 0xfb
SPECIAL[1] = 0xef

function valid(overrides: RawHeaders = {}): RawHeaders {
  const headers: RawHeaders = {
    [Headers.scheme]: SCHEME,
    // Well formed, and nobody's: a case that wrongly passed would try to connect here and fail (502).
    [Headers.address]: 'test.hub.local.nobody.abc~def',
    [Headers.secret]: SECRET.toString('base64url'),
    [Headers.requestId]: 'malformed_case-0001',
  }
  return { ...headers, ...overrides }
}

function without(name: HeaderName): RawHeaders {
  const headers = valid()
  delete headers[name]
  return headers
}

function twice(name: HeaderName): RawHeaders {
  const headers = valid()
  const value = headers[name] as string
  return { ...headers, [name]: [value, value] }
}

const cases: Case[] = [
  // Cogpay-Address
  { name: 'address with a URL scheme', headers: () => valid({ [Headers.address]: 'http://test.hub.local.payer' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address },
  { name: 'address with an unknown allocation scheme', headers: () => valid({ [Headers.address]: 'xyz.payer.abc' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address },
  { name: 'address with an empty segment', headers: () => valid({ [Headers.address]: 'test.hub..payer' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address },
  { name: 'address with a trailing dot', headers: () => valid({ [Headers.address]: 'test.hub.local.' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address },
  { name: 'address in the peer. scheme (link-local, e.g. peer.config)', headers: () => valid({ [Headers.address]: 'peer.config' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address },
  { name: 'address in the self. scheme', headers: () => valid({ [Headers.address]: 'self.payer' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address },
  { name: 'address in the local. scheme', headers: () => valid({ [Headers.address]: 'local.payer' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address },
  { name: 'address that is a bare allocation scheme', headers: () => valid({ [Headers.address]: 'test' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address },
  { name: 'address with an illegal character ($)', headers: () => valid({ [Headers.address]: 'test.hub.local.pay$er' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address },
  { name: 'address with illegal characters (@ /)', headers: () => valid({ [Headers.address]: 'test.hub.local.payer@evil/x' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address },
  { name: 'address longer than 1023 characters', headers: () => valid({ [Headers.address]: `test.${'a'.repeat(1019)}` }), code: ErrorCodes.HEADER_TOO_LARGE, names: Headers.address },
  { name: "the server's own address", headers: (own) => valid({ [Headers.address]: own }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address, reachesCollect: true },
  { name: "an address under the server's own (one of its channels)", headers: (own) => valid({ [Headers.address]: `${own}.c0` }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address, reachesCollect: true },
  { name: "the hub's address test.hub", headers: () => valid({ [Headers.address]: 'test.hub' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address, reachesCollect: true },
  { name: "the hub's child prefix test.hub.local", headers: () => valid({ [Headers.address]: 'test.hub.local' }), code: ErrorCodes.INVALID_ADDRESS, names: Headers.address, reachesCollect: true },
  // Cogpay-Secret
  { name: 'secret that is not base64', headers: () => valid({ [Headers.secret]: `${'!'.repeat(43)}=` }), code: ErrorCodes.INVALID_SECRET, names: Headers.secret },
  { name: 'secret: base64 of 31 bytes', headers: () => valid({ [Headers.secret]: randomBytes(31).toString('base64') }), code: ErrorCodes.INVALID_SECRET, names: Headers.secret },
  { name: 'secret: base64 of 33 bytes', headers: () => valid({ [Headers.secret]: randomBytes(33).toString('base64') }), code: ErrorCodes.INVALID_SECRET, names: Headers.secret },
  { name: 'secret: base64url of 31 bytes', headers: () => valid({ [Headers.secret]: randomBytes(31).toString('base64url') }), code: ErrorCodes.INVALID_SECRET, names: Headers.secret },
  { name: 'secret: non-canonical base64 (trailing bits set)', headers: () => valid({ [Headers.secret]: SPECIAL.toString('base64').replace(/8=$/, '9=') }), code: ErrorCodes.INVALID_SECRET, names: Headers.secret },
  { name: 'secret: non-canonical base64url (trailing bits set)', headers: () => valid({ [Headers.secret]: SPECIAL.toString('base64url').replace(/8$/, '9') }), code: ErrorCodes.INVALID_SECRET, names: Headers.secret },
  { name: 'secret mixing the base64 and base64url alphabets', headers: () => valid({ [Headers.secret]: SPECIAL.toString('base64url').replace('-', '+') }), code: ErrorCodes.INVALID_SECRET, names: Headers.secret },
  { name: 'secret: hex of 32 bytes', headers: () => valid({ [Headers.secret]: SECRET.toString('hex') }), code: ErrorCodes.INVALID_SECRET, names: Headers.secret },
  { name: 'secret that is empty', headers: () => valid({ [Headers.secret]: '' }), code: ErrorCodes.INVALID_SECRET, names: Headers.secret },
  { name: 'secret longer than 64 characters', headers: () => valid({ [Headers.secret]: 'A'.repeat(65) }), code: ErrorCodes.HEADER_TOO_LARGE, names: Headers.secret },
  // Cogpay-Scheme
  { name: 'scheme ilp-stream/2', headers: () => valid({ [Headers.scheme]: 'ilp-stream/2' }), code: ErrorCodes.UNSUPPORTED_SCHEME, names: Headers.scheme },
  { name: 'scheme x402', headers: () => valid({ [Headers.scheme]: 'x402' }), code: ErrorCodes.UNSUPPORTED_SCHEME, names: Headers.scheme },
  { name: 'scheme without a version', headers: () => valid({ [Headers.scheme]: 'ilp-stream' }), code: ErrorCodes.UNSUPPORTED_SCHEME, names: Headers.scheme },
  // Defect 9 of issue 9: String.prototype.trim stripped U+00A0 and this opened a socket. Only SP and HTAB are trimmed.
  { name: 'scheme with a trailing no-break space (U+00A0)', headers: () => valid({ [Headers.scheme]: 'ilp-stream/1\u00a0' }), code: ErrorCodes.UNSUPPORTED_SCHEME, names: Headers.scheme },
  { name: 'scheme longer than 64 characters', headers: () => valid({ [Headers.scheme]: `ilp-stream/1${'1'.repeat(60)}` }), code: ErrorCodes.HEADER_TOO_LARGE, names: Headers.scheme },
  // Cogpay-Request-Id
  { name: 'request id of 15 characters', headers: () => valid({ [Headers.requestId]: 'a'.repeat(15) }), code: ErrorCodes.INVALID_REQUEST_ID, names: Headers.requestId },
  { name: 'request id of 65 characters', headers: () => valid({ [Headers.requestId]: 'a'.repeat(65) }), code: ErrorCodes.HEADER_TOO_LARGE, names: Headers.requestId },
  { name: 'request id with illegal characters', headers: () => valid({ [Headers.requestId]: 'abc.def/ghi+jkl=mno' }), code: ErrorCodes.INVALID_REQUEST_ID, names: Headers.requestId },
  // A header missing
  { name: 'missing Cogpay-Scheme', headers: () => without(Headers.scheme), code: ErrorCodes.MISSING_HEADER, names: Headers.scheme },
  { name: 'missing Cogpay-Address', headers: () => without(Headers.address), code: ErrorCodes.MISSING_HEADER, names: Headers.address },
  { name: 'missing Cogpay-Secret', headers: () => without(Headers.secret), code: ErrorCodes.MISSING_HEADER, names: Headers.secret },
  { name: 'missing Cogpay-Request-Id', headers: () => without(Headers.requestId), code: ErrorCodes.MISSING_HEADER, names: Headers.requestId },
  // A header sent twice (sent with node:http: fetch would join the two values into one)
  { name: 'Cogpay-Scheme sent twice', headers: () => twice(Headers.scheme), code: ErrorCodes.DUPLICATE_HEADER, names: Headers.scheme },
  { name: 'Cogpay-Address sent twice', headers: () => twice(Headers.address), code: ErrorCodes.DUPLICATE_HEADER, names: Headers.address },
  { name: 'Cogpay-Secret sent twice', headers: () => twice(Headers.secret), code: ErrorCodes.DUPLICATE_HEADER, names: Headers.secret },
  { name: 'Cogpay-Request-Id sent twice', headers: () => twice(Headers.requestId), code: ErrorCodes.DUPLICATE_HEADER, names: Headers.requestId },
]

interface Answer {
  status: number
  errorHeader: string | null
  contentType: string | null
  body: unknown
}

async function sendWithFetch(url: string, headers: Record<string, string>): Promise<Answer> {
  const response = await fetch(url, { headers })
  const text = await response.text()
  return {
    status: response.status,
    errorHeader: response.headers.get('cogpay-error'),
    contentType: response.headers.get('content-type'),
    body: parse(text),
  }
}

/** node:http sends an array value as repeated header lines. */
function sendWithHttp(url: string, headers: RawHeaders): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const one = (value: string | string[] | undefined) => (Array.isArray(value) ? value.join(', ') : value ?? null)
        resolve({
          status: res.statusCode ?? 0,
          errorHeader: one(res.headers['cogpay-error']),
          contentType: one(res.headers['content-type']),
          body: parse(Buffer.concat(chunks).toString()),
        })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const frameworks = [
  { name: 'Express', start: (net: Network) => listen(createExpressApp({ receiver: net.receiver })) },
  { name: 'Koa', start: (net: Network) => listen(createKoaApp({ receiver: net.receiver }).callback()) },
] as const

it('the table has at least 24 cases, with unique names', () => {
  expect(cases.length).toBeGreaterThanOrEqual(24)
  expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length)
})

describe.each(frameworks)('$name: malformed payment headers get 400 and open no socket', ({ start }) => {
  let net: Network
  let app: Awaited<ReturnType<typeof listen>>
  let own: string

  beforeAll(async () => {
    net = await startNetwork()
    app = await start(net)
    own = net.receiver.uplink.address
  })
  afterAll(async () => {
    await app?.close()
    await net?.close()
  })
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('sanity: the server knows its own address, under the hub', () => {
    expect(own).toMatch(/^test\.hub\.local\.server[0-9a-f]+$/)
  })

  it.each(cases)('$name → 400 $code', async (c) => {
    const socketsBefore = net.receiver.socketsOpened
    const openChannel = vi.spyOn(net.receiver.uplink, 'openChannel')
    const collect = vi.spyOn(net.receiver, 'collect')
    const headers = c.headers(own)
    const duplicated = Object.values(headers).some(Array.isArray)
    const url = `${app.url}/weather`
    const answer = duplicated
      ? await sendWithHttp(url, headers)
      : await sendWithFetch(url, headers as Record<string, string>)

    expect(answer.status).toBe(400)
    expect(answer.errorHeader).toBe(c.code)
    expect(answer.contentType).toMatch(/^application\/json/)
    expect(answer.body).toEqual({ error: { code: c.code, message: expect.any(String) } })
    const message = (answer.body as { error: { message: string } }).error.message
    expect(message).toContain(c.names)
    // No payment socket: none opened, none opening, no channel on the uplink.
    expect(openChannel).not.toHaveBeenCalled()
    expect(net.receiver.socketsOpened).toBe(socketsBefore)
    expect(net.receiver.socketCount).toBe(0)
    expect(net.receiver.uplink.channelCount).toBe(0)
    // Refused in the header parser, or (own and hub addresses) in collect before any socket.
    expect(collect).toHaveBeenCalledTimes(c.reachesCollect ? 1 : 0)
  })

  it('control: a well-formed paid request does open a socket, so the checks above can fail', async () => {
    const socketsBefore = net.receiver.socketsOpened
    const openChannel = vi.spyOn(net.receiver.uplink, 'openChannel')
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 100n })
    const response = await payFetch(`${app.url}/weather`)
    expect(response.status).toBe(200)
    expect(openChannel).toHaveBeenCalledTimes(1)
    expect(net.receiver.socketsOpened).toBe(socketsBefore + 1)
    expect(net.receiver.socketCount).toBe(1)
    expect(net.receiver.uplink.channelCount).toBe(1)
  })
})
