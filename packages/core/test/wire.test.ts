import { Buffer } from 'node:buffer'
import { describe, expect, it } from 'vitest'
import {
  CogpayError,
  ErrorCodes,
  HEADER_LIMITS,
  Headers,
  MAX_ADDRESS_LENGTH,
  MAX_AMOUNT,
  MAX_HELLO_BYTES,
  SCHEME,
  SECRET_LENGTH,
  decodeHello,
  encodeHello,
  parsePaymentHeaders,
  paymentRequestHeaders,
  readPaymentRequirements,
  type ErrorCode,
  type HeaderSource,
  type ParsedPaymentHeaders,
} from '../src/index.ts'

// A secret whose encodings use every alphabet-specific character: `+` `/` in base64, `-` `_` in base64url.
const SECRET = Buffer.alloc(SECRET_LENGTH, 0xff)
SECRET[0] = 0xfb
SECRET[1] = 0xef
const B64 = SECRET.toString('base64') // ends in "8=" (one pad character)
const B64_UNPADDED = B64.replace(/=+$/, '')
const B64URL = SECRET.toString('base64url') // Node writes base64url unpadded
const B64URL_PADDED = `${B64URL}=`

const ADDRESS = 'test.hub.local.payer1.abc~def'
const REQUEST_ID = 'req_0123456789-abcdef'

type Raw = Record<string, string | string[] | undefined>

/** A HeaderSource over a plain record, keyed by the header names as the wire spells them. */
function source(raw: Raw): HeaderSource {
  const lower = new Map(Object.entries(raw).map(([name, value]) => [name.toLowerCase(), value]))
  return (name) => lower.get(name)
}

function valid(overrides: Raw = {}): Raw {
  return {
    [Headers.scheme]: SCHEME,
    [Headers.address]: ADDRESS,
    [Headers.secret]: B64URL,
    [Headers.requestId]: REQUEST_ID,
    ...overrides,
  }
}

function expectValid(parsed: ParsedPaymentHeaders) {
  if (parsed.type !== 'valid') throw new Error(`expected valid, got ${JSON.stringify(parsed)}`)
  return parsed.headers
}

function expectInvalid(parsed: ParsedPaymentHeaders, code: ErrorCode): CogpayError {
  if (parsed.type !== 'invalid') throw new Error(`expected invalid ${code}, got ${parsed.type}`)
  expect(parsed.error).toBeInstanceOf(CogpayError)
  expect(parsed.error.code).toBe(code)
  expect(parsed.error.status).toBe(400)
  expect(parsed.error.headers).toEqual({ 'Cogpay-Error': code })
  return parsed.error
}

describe('parsePaymentHeaders: valid requests', () => {
  it('sanity: the fixed secret exercises both alphabets and both padding forms', () => {
    expect(B64).toMatch(/[+/]/)
    expect(B64).toMatch(/=$/)
    expect(B64URL).toMatch(/[-_]/)
    expect(B64URL).not.toMatch(/=/)
    expect(B64_UNPADDED).not.toBe(B64)
  })

  it.each([
    ['base64, padded', B64],
    ['base64, unpadded', B64_UNPADDED],
    ['base64url, unpadded', B64URL],
    ['base64url, padded', B64URL_PADDED],
  ])('accepts a %s secret and decodes it to the exact 32 bytes', (_name, secret) => {
    const headers = expectValid(parsePaymentHeaders(source(valid({ [Headers.secret]: secret }))))
    // A plain Uint8Array: core uses no Node Buffer (it is meant to run in browsers and edge runtimes too).
    expect(headers.secret).toBeInstanceOf(Uint8Array)
    expect(headers.secret.length).toBe(SECRET_LENGTH)
    expect(Buffer.from(headers.secret).equals(SECRET)).toBe(true)
    expect(headers.address).toBe(ADDRESS)
    expect(headers.requestId).toBe(REQUEST_ID)
  })

  it('accepts a secret whose encoding is the same in both alphabets (all-zero bytes)', () => {
    const zero = Buffer.alloc(SECRET_LENGTH)
    for (const text of [zero.toString('base64'), zero.toString('base64url')]) {
      const headers = expectValid(parsePaymentHeaders(source(valid({ [Headers.secret]: text }))))
      expect(Buffer.from(headers.secret).equals(zero)).toBe(true)
    }
  })

  it('looks headers up by lower-case name', () => {
    const asked: string[] = []
    const raw = valid()
    const get: HeaderSource = (name) => {
      asked.push(name)
      return source(raw)(name)
    }
    expectValid(parsePaymentHeaders(get))
    expect(asked.sort()).toEqual(['cogpay-address', 'cogpay-max-spend', 'cogpay-request-id', 'cogpay-scheme', 'cogpay-secret'])
  })

  it('trims surrounding whitespace', () => {
    const headers = expectValid(
      parsePaymentHeaders(
        source({
          [Headers.scheme]: ` ${SCHEME}\t`,
          [Headers.address]: ` ${ADDRESS} `,
          [Headers.secret]: ` ${B64URL} `,
          [Headers.requestId]: `\t${REQUEST_ID} `,
        }),
      ),
    )
    expect(headers.address).toBe(ADDRESS)
    expect(headers.requestId).toBe(REQUEST_ID)
  })

  // Defect 9 of issue 9: String.prototype.trim also strips U+00A0 (and other Unicode spaces), so
  // "ilp-stream/1\xA0" was accepted and opened a socket. Only HTTP whitespace (SP, HTAB) is optional.
  it('trims only HTTP whitespace: a no-break space or other Unicode space is part of the value', () => {
    for (const space of ['\u00a0', '\u2003', '\ufeff', '\u000b', '\u000c']) {
      const scheme = parsePaymentHeaders(source(valid({ [Headers.scheme]: `${SCHEME}${space}` })))
      expect(scheme.type).toBe('invalid')
      if (scheme.type === 'invalid') expect(scheme.error.code).toBe(ErrorCodes.UNSUPPORTED_SCHEME)
      const address = parsePaymentHeaders(source(valid({ [Headers.address]: `${space}${ADDRESS}` })))
      expect(address.type).toBe('invalid')
      if (address.type === 'invalid') expect(address.error.code).toBe(ErrorCodes.INVALID_ADDRESS)
      const cap = parsePaymentHeaders(source(valid({ [Headers.maxSpend]: `5000 XRP 9${space}` })))
      expect(cap.type).toBe('invalid')
      if (cap.type === 'invalid') expect(cap.error.code).toBe(ErrorCodes.INVALID_MAX_SPEND)
    }
  })

  it('accepts a one-element array (headersDistinct of a header sent once)', () => {
    const raw: Raw = {}
    for (const [name, value] of Object.entries(valid())) raw[name] = [value as string]
    expect(parsePaymentHeaders(source(raw)).type).toBe('valid')
  })

  it('accepts an address of exactly 1023 characters and request ids of 16 and 64 characters', () => {
    const long = `test.${'a'.repeat(MAX_ADDRESS_LENGTH - 5)}`
    expect(long.length).toBe(MAX_ADDRESS_LENGTH)
    expect(expectValid(parsePaymentHeaders(source(valid({ [Headers.address]: long })))).address).toBe(long)
    for (const id of ['a'.repeat(16), 'Z_-9'.repeat(16)]) {
      expect(expectValid(parsePaymentHeaders(source(valid({ [Headers.requestId]: id })))).requestId).toBe(id)
    }
  })

  it('round-trips what a payer sends (paymentRequestHeaders)', () => {
    const sent = paymentRequestHeaders({ address: ADDRESS, secret: SECRET, requestId: REQUEST_ID })
    expect(sent).toEqual({
      'Cogpay-Scheme': 'ilp-stream/1',
      'Cogpay-Address': ADDRESS,
      'Cogpay-Secret': B64URL,
      'Cogpay-Request-Id': REQUEST_ID,
    })
    const headers = expectValid(parsePaymentHeaders(source(sent)))
    expect(Buffer.from(headers.secret).equals(SECRET)).toBe(true)
  })
})

describe('parsePaymentHeaders: no payment headers', () => {
  it('returns none when the request carries none of them', () => {
    expect(parsePaymentHeaders(source({}))).toEqual({ type: 'none' })
    expect(parsePaymentHeaders(source({ 'content-type': 'text/plain', 'x-cogpay': 'x' }))).toEqual({ type: 'none' })
  })

  it('treats an empty array as absent', () => {
    expect(
      parsePaymentHeaders(
        source({ [Headers.scheme]: [], [Headers.address]: [], [Headers.secret]: [], [Headers.requestId]: [] }),
      ),
    ).toEqual({ type: 'none' })
  })
})

describe('parsePaymentHeaders: each error code', () => {
  it.each([Headers.scheme, Headers.address, Headers.secret, Headers.requestId])(
    'COGPAY_MISSING_HEADER when only %s is missing, naming it',
    (name) => {
      const raw = valid()
      delete raw[name]
      const error = expectInvalid(parsePaymentHeaders(source(raw)), ErrorCodes.MISSING_HEADER)
      expect(error.message).toContain(name)
      for (const other of Object.values(Headers).filter((n) => n !== name)) expect(error.message).not.toContain(other)
    },
  )

  it('COGPAY_MISSING_HEADER names every missing header', () => {
    const error = expectInvalid(
      parsePaymentHeaders(source({ [Headers.scheme]: SCHEME })),
      ErrorCodes.MISSING_HEADER,
    )
    expect(error.message).toContain(Headers.address)
    expect(error.message).toContain(Headers.secret)
    expect(error.message).toContain(Headers.requestId)
  })

  it.each([Headers.scheme, Headers.address, Headers.secret, Headers.requestId])(
    'COGPAY_DUPLICATE_HEADER when %s is sent twice (even with equal values)',
    (name) => {
      const raw = valid()
      const value = raw[name] as string
      raw[name] = [value, value]
      const error = expectInvalid(parsePaymentHeaders(source(raw)), ErrorCodes.DUPLICATE_HEADER)
      expect(error.message).toContain(name)
      expect(error.message).toContain('2 times')
    },
  )

  it('COGPAY_DUPLICATE_HEADER wins over the other headers being missing', () => {
    expectInvalid(
      parsePaymentHeaders(source({ [Headers.secret]: [B64URL, B64] })),
      ErrorCodes.DUPLICATE_HEADER,
    )
  })

  it.each([
    ['scheme', Headers.scheme, `${SCHEME}${'x'.repeat(HEADER_LIMITS.scheme)}`],
    ['address', Headers.address, `test.${'a'.repeat(MAX_ADDRESS_LENGTH - 4)}`],
    ['secret', Headers.secret, 'A'.repeat(HEADER_LIMITS.secret + 1)],
    ['requestId', Headers.requestId, 'a'.repeat(HEADER_LIMITS.requestId + 1)],
  ] as const)('COGPAY_HEADER_TOO_LARGE for an oversize %s, naming the header and the limit', (field, name, value) => {
    expect(value.length).toBeGreaterThan(HEADER_LIMITS[field])
    const error = expectInvalid(parsePaymentHeaders(source(valid({ [name]: value }))), ErrorCodes.HEADER_TOO_LARGE)
    expect(error.message).toContain(name)
    expect(error.message).toContain(String(HEADER_LIMITS[field]))
    expect(error.message).toContain(String(value.length))
  })

  it('COGPAY_HEADER_TOO_LARGE is checked even when other headers are missing (nothing oversize is kept)', () => {
    expectInvalid(
      parsePaymentHeaders(source({ [Headers.address]: 'x'.repeat(100_000) })),
      ErrorCodes.HEADER_TOO_LARGE,
    )
  })

  it.each(['ilp-stream/2', 'ilp-stream/0', 'ilp-stream', 'ilp-stream/1.1', 'x402', 'ILP-STREAM/1', '', 'ilp-stream/1;v=2'])(
    'COGPAY_UNSUPPORTED_SCHEME for %j',
    (scheme) => {
      const error = expectInvalid(
        parsePaymentHeaders(source(valid({ [Headers.scheme]: scheme }))),
        ErrorCodes.UNSUPPORTED_SCHEME,
      )
      expect(error.message).toContain(Headers.scheme)
      expect(error.message).toContain(SCHEME)
    },
  )

  it.each([
    'http://example.com/pay',
    'example',
    'test',
    'test.',
    '.test.hub',
    'test.hub.',
    'test..hub',
    'foo.bar',
    'g.pay er',
    'test.hub.a!b',
    'test.hub.a/b',
    'test.hub.a@b',
    'test.hub.ä',
    'Test.hub',
    '',
  ])('COGPAY_INVALID_ADDRESS for %j', (address) => {
    const error = expectInvalid(
      parsePaymentHeaders(source(valid({ [Headers.address]: address }))),
      ErrorCodes.INVALID_ADDRESS,
    )
    expect(error.message).toContain(Headers.address)
  })

  it('COGPAY_INVALID_ADDRESS quotes at most 80 characters of the address', () => {
    const address = `test.${'a'.repeat(200)}!`
    const error = expectInvalid(
      parsePaymentHeaders(source(valid({ [Headers.address]: address }))),
      ErrorCodes.INVALID_ADDRESS,
    )
    expect(error.message).toContain(JSON.stringify(address.slice(0, 80)))
    expect(error.message).not.toContain('a'.repeat(81))
  })

  const b31 = Buffer.alloc(31, 7)
  const b33 = Buffer.alloc(33, 7)
  it.each([
    ['base64 of 31 bytes', b31.toString('base64')],
    ['base64url of 31 bytes', b31.toString('base64url')],
    ['base64 of 33 bytes', b33.toString('base64')],
    ['base64url of 33 bytes', b33.toString('base64url')],
    ['hex of 32 bytes', SECRET.toString('hex')],
    ['non-canonical trailing bits (base64)', B64.replace('8=', '9=')],
    ['non-canonical trailing bits (base64url)', `${B64URL.slice(0, -1)}9`],
    ['mixed alphabets', B64_UNPADDED.replace('+', '-')],
    ['too much padding', `${B64}=`],
    ['padding in the middle', `${B64.slice(0, 20)}=${B64.slice(21)}`],
    ['whitespace inside', `${B64.slice(0, 20)} ${B64.slice(20)}`],
    ['illegal characters', `${'!'.repeat(43)}=`],
    ['empty', ''],
    ['only padding', '=='],
  ])('COGPAY_INVALID_SECRET for %s', (_name, secret) => {
    const error = expectInvalid(
      parsePaymentHeaders(source(valid({ [Headers.secret]: secret }))),
      ErrorCodes.INVALID_SECRET,
    )
    expect(error.message).toContain(Headers.secret)
    expect(error.message).toContain('32')
  })

  it('sanity: the non-canonical secrets decode leniently to the same 32 bytes', () => {
    expect(Buffer.from(B64.replace('8=', '9='), 'base64').equals(SECRET)).toBe(true)
    expect(Buffer.from(`${B64URL.slice(0, -1)}9`, 'base64url').equals(SECRET)).toBe(true)
  })

  it.each([
    ['15 characters', 'a'.repeat(15)],
    ['empty', ''],
    ['a dot', 'abcdefgh.ijklmnop'],
    ['a slash', 'abcdefgh/ijklmnop'],
    ['a plus and padding', 'abcdefgh+ijklmno='],
    ['a space', 'abcdefgh ijklmnop'],
    ['non-ASCII', 'abcdefghijklmnoé'],
  ])('COGPAY_INVALID_REQUEST_ID for %s', (_name, requestId) => {
    const error = expectInvalid(
      parsePaymentHeaders(source(valid({ [Headers.requestId]: requestId }))),
      ErrorCodes.INVALID_REQUEST_ID,
    )
    expect(error.message).toContain(Headers.requestId)
  })

  it('checks the scheme before the address, the address before the secret, the secret before the request id', () => {
    const all = { [Headers.scheme]: 'x402', [Headers.address]: 'nope', [Headers.secret]: 'nope', [Headers.requestId]: '!' }
    expectInvalid(parsePaymentHeaders(source(all)), ErrorCodes.UNSUPPORTED_SCHEME)
    expectInvalid(parsePaymentHeaders(source({ ...all, [Headers.scheme]: SCHEME })), ErrorCodes.INVALID_ADDRESS)
    expectInvalid(
      parsePaymentHeaders(source({ ...all, [Headers.scheme]: SCHEME, [Headers.address]: ADDRESS })),
      ErrorCodes.INVALID_SECRET,
    )
    expectInvalid(
      parsePaymentHeaders(source({ ...all, [Headers.scheme]: SCHEME, [Headers.address]: ADDRESS, [Headers.secret]: B64 })),
      ErrorCodes.INVALID_REQUEST_ID,
    )
  })
})

describe('stream hello', () => {
  const line = (hello: Uint8Array) => Buffer.from(hello.subarray(0, hello.length - 1))

  it('encodes one newline-terminated JSON line, amount as a decimal string', () => {
    const encoded = encodeHello({ v: 1, requestId: REQUEST_ID, amount: 100n })
    expect(new TextDecoder().decode(encoded)).toBe(`{"v":1,"requestId":"${REQUEST_ID}","amount":"100"}\n`)
    expect(new TextDecoder().decode(encodeHello({ v: 1, requestId: REQUEST_ID }))).toBe(`{"v":1,"requestId":"${REQUEST_ID}"}\n`)
  })

  it.each([
    { v: 1, requestId: REQUEST_ID },
    { v: 1, requestId: REQUEST_ID, amount: 0n },
    { v: 1, requestId: REQUEST_ID, amount: 100n },
    { v: 1, requestId: 'x'.repeat(64), amount: MAX_AMOUNT },
  ] as const)('round-trips %o', (hello) => {
    const encoded = encodeHello(hello)
    expect(encoded.at(-1)).toBe(0x0a)
    expect(encoded.length).toBeLessThanOrEqual(MAX_HELLO_BYTES)
    expect(decodeHello(line(encoded))).toEqual(hello)
    expect(decodeHello(line(encoded).toString())).toEqual(hello)
  })

  it.each([
    ['not JSON', '{v:1}'],
    ['empty', ''],
    ['null', 'null'],
    ['a number', '1'],
    ['a string', '"hello"'],
    ['an array', '[1,"abc"]'],
    ['no version', `{"requestId":"${REQUEST_ID}"}`],
    ['version 2', `{"v":2,"requestId":"${REQUEST_ID}"}`],
    ['version as a string', `{"v":"1","requestId":"${REQUEST_ID}"}`],
    ['no request id', '{"v":1}'],
    ['numeric request id', '{"v":1,"requestId":1234567890123456}'],
    ['request id of 65 characters', `{"v":1,"requestId":"${'x'.repeat(65)}"}`],
    ['amount as a number', `{"v":1,"requestId":"${REQUEST_ID}","amount":100}`],
    ['negative amount', `{"v":1,"requestId":"${REQUEST_ID}","amount":"-1"}`],
    ['amount with leading zero', `{"v":1,"requestId":"${REQUEST_ID}","amount":"0100"}`],
    ['amount of 2^64', `{"v":1,"requestId":"${REQUEST_ID}","amount":"${2n ** 64n}"}`],
    ['amount null', `{"v":1,"requestId":"${REQUEST_ID}","amount":null}`],
    ['two JSON values', `{"v":1,"requestId":"${REQUEST_ID}"}{"v":1}`],
  ])('rejects a malformed hello: %s', (_name, text) => {
    expect(decodeHello(text)).toBeUndefined()
    expect(decodeHello(Buffer.from(text))).toBeUndefined()
  })

  it('rejects a hello of MAX_HELLO_BYTES or more, even when it is valid JSON, and accepts one byte less', () => {
    const make = (length: number) => {
      const head = `{"v":1,"requestId":"${REQUEST_ID}","pad":"`
      const text = `${head}${'p'.repeat(length - head.length - 2)}"}`
      expect(text.length).toBe(length)
      return Buffer.from(text)
    }
    // The limit counts the newline: a line of MAX_HELLO_BYTES - 1 plus "\n" is the longest hello.
    expect(decodeHello(make(MAX_HELLO_BYTES - 1))).toEqual({ v: 1, requestId: REQUEST_ID })
    expect(decodeHello(make(MAX_HELLO_BYTES))).toBeUndefined()
    expect(decodeHello(make(64 * 1024))).toBeUndefined()
  })
})

describe('readPaymentRequirements on hostile bodies', () => {
  const good = {
    scheme: 'ilp-stream',
    version: 1,
    amount: '100',
    assetCode: 'XRP',
    assetScale: 9,
    headers: { scheme: 'ilp-stream/1', names: ['Cogpay-Scheme', 'Cogpay-Address', 'Cogpay-Secret', 'Cogpay-Request-Id'] },
  }

  it('reads a well-formed body', () => {
    expect(readPaymentRequirements({ error: { code: 'COGPAY_PAYMENT_REQUIRED', message: 'pay' }, accepts: [good] })).toEqual(
      good,
    )
  })

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['a string', 'accepts'],
    ['a number', 402],
    ['an array', [good]],
    ['no accepts', { error: { code: 'COGPAY_PAYMENT_REQUIRED' } }],
    ['accepts null', { accepts: null }],
    ['accepts a string', { accepts: 'ilp-stream' }],
    ['accepts an object', { accepts: { 0: good, length: 1 } }],
    ['accepts empty', { accepts: [] }],
    ['entries that are not objects', { accepts: [null, 1, 'x', true, [good]] }],
    ['__proto__ pollution from JSON', JSON.parse(`{"__proto__":{"accepts":[${JSON.stringify(good)}]}}`)],
  ])('returns undefined for %s', (_name, body) => {
    expect(readPaymentRequirements(body)).toBeUndefined()
  })

  it.each([
    ['another scheme', { scheme: 'x402' }],
    ['scheme with version', { scheme: 'ilp-stream/1' }],
    ['version 2', { version: 2 }],
    ['version as a string', { version: '1' }],
    ['amount as a number', { amount: 100 }],
    ['negative amount', { amount: '-1' }],
    ['fractional amount', { amount: '1.5' }],
    ['exponent amount', { amount: '1e3' }],
    ['amount with leading zero', { amount: '0100' }],
    ['amount of 2^64', { amount: (2n ** 64n).toString() }],
    ['huge amount', { amount: '9'.repeat(10_000) }],
    ['missing amount', { amount: undefined }],
    ['asset code not a string', { assetCode: 5 }],
    ['asset scale 256', { assetScale: 256 }],
    ['asset scale -1', { assetScale: -1 }],
    ['asset scale fractional', { assetScale: 1.5 }],
    ['asset scale as a string', { assetScale: '9' }],
  ])('skips an entry with %s', (_name, patch) => {
    expect(readPaymentRequirements({ accepts: [{ ...good, ...patch }] })).toBeUndefined()
  })

  it('skips bad entries and returns the first good one, rebuilt from its own fields only', () => {
    const hostile = {
      ...good,
      amount: '42',
      headers: { scheme: 'evil/9', names: ['Authorization'] },
      extra: 'dropped',
    }
    const result = readPaymentRequirements({ accepts: [null, { ...good, version: 2 }, hostile, good] })
    expect(result).toEqual({ ...good, amount: '42' })
    expect(result?.headers.scheme).toBe('ilp-stream/1')
    expect(result).not.toHaveProperty('extra')
  })

  it('looks at no more than 16 entries, even in a huge array', () => {
    const bad = { ...good, version: 2 }
    expect(readPaymentRequirements({ accepts: [...Array(15).fill(bad), good] })?.amount).toBe('100')
    expect(readPaymentRequirements({ accepts: [...Array(16).fill(bad), good] })).toBeUndefined()
    const huge = new Array(1_000_000).fill(bad)
    huge.push(good)
    expect(readPaymentRequirements({ accepts: huge })).toBeUndefined()
  })
})
