import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '@cogpay/example-express-basic'
import { decodeAsk, decodeFinal, decodeHello, encodeAsk, ErrorCodes, Headers, SCHEME } from '@cogpay/core'
import { listen, startNetwork, type Network } from './support/network.ts'

/** A GET with raw header lines (repeats and empty values as sent), answered with status and code. */
function get(url: string, headers: [string, string][]): Promise<{ status: number; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    // A name given twice goes out as two header lines (setHeader with an array).
    const lines: Record<string, string[]> = {}
    for (const [name, value] of headers) (lines[name] ??= []).push(value)
    const req = httpRequest(url, { headers: lines }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: res.headers['cogpay-error'] as string | undefined }))
    })
    req.once('error', reject)
    req.end()
  })
}

// The value rules of docs/PROTOCOL.md section 2 and the hello of section 3, as the server applies them.
describe('PROTOCOL.md value rules hold in the code', () => {
  let net: Network
  let app: Awaited<ReturnType<typeof listen>>
  const valid = (): [string, string][] => [
    [Headers.scheme, SCHEME],
    [Headers.address, `${'test.hub.local'}.payer.x`],
    [Headers.secret, randomBytes(32).toString('base64url')],
    [Headers.requestId, randomBytes(16).toString('base64url')],
  ]
  beforeAll(async () => {
    net = await startNetwork()
    app = await listen(createApp({ receiver: net.receiver }))
  })
  afterAll(async () => {
    await app.close()
    await net.close()
  })

  it('an empty header value counts as present: an empty Cogpay-Scheme alone is 400 COGPAY_MISSING_HEADER, not 402', async () => {
    expect(await get(`${app.url}/weather`, [[Headers.scheme, '']])).toEqual({ status: 400, code: ErrorCodes.MISSING_HEADER })
  })

  it('a header on two lines is a duplicate; one line with a comma is one (invalid) value', async () => {
    const twice = valid()
    twice.push([Headers.requestId, randomBytes(16).toString('base64url')])
    expect(await get(`${app.url}/weather`, twice)).toEqual({ status: 400, code: ErrorCodes.DUPLICATE_HEADER })
    const joined = valid().map(([name, value]): [string, string] => (name === Headers.requestId ? [name, `${value}, ${value}`] : [name, value]))
    expect(await get(`${app.url}/weather`, joined)).toEqual({ status: 400, code: ErrorCodes.INVALID_REQUEST_ID })
  })

  it('Cogpay-Max-Spend: no leading zeros, checked after the four headers, meaningless without them', async () => {
    expect(await get(`${app.url}/weather`, [...valid(), [Headers.maxSpend, '007 XRP 9']])).toEqual({
      status: 400,
      code: ErrorCodes.INVALID_MAX_SPEND,
    })
    // The four headers fail first.
    const badScheme = valid().map(([name, value]): [string, string] => (name === Headers.scheme ? [name, 'x'] : [name, value]))
    expect(await get(`${app.url}/weather`, [...badScheme, [Headers.maxSpend, 'junk']])).toEqual({
      status: 400,
      code: ErrorCodes.UNSUPPORTED_SCHEME,
    })
    // Alone it is ignored: the request is unpaid.
    expect(await get(`${app.url}/weather`, [[Headers.maxSpend, '5 XRP 9']])).toEqual({ status: 402, code: ErrorCodes.PAYMENT_REQUIRED })
    // Asset codes are case-sensitive: a cap in "xrp" is not in the server's XRP, so it is not acted on.
    const lower = await get(`${app.url}/weather`, [...valid(), [Headers.maxSpend, '5 xrp 9']])
    expect(lower.code).not.toBe(ErrorCodes.CAP_TOO_LOW)
  })

  it('a hello is invalid when v is not the number 1, or amount is a number or has leading zeros', () => {
    const line = (value: object) => JSON.stringify(value)
    expect(decodeHello(line({ v: 1, requestId: 'r', amount: '100' }))).toEqual({ v: 1, requestId: 'r', amount: 100n })
    expect(decodeHello(line({ v: '1', requestId: 'r' }))).toBeUndefined()
    expect(decodeHello(line({ v: 1, requestId: 'r', amount: 100 }))).toBeUndefined()
    expect(decodeHello(line({ v: 1, requestId: 'r', amount: '007' }))).toBeUndefined()
    expect(decodeHello(line({ v: 1, requestId: 'r', amount: '-1' }))).toBeUndefined()
    expect(decodeHello(line({ v: 1, requestId: 'r'.repeat(65) }))).toBeUndefined()
    expect(decodeHello(line({ v: 1, requestId: 'r', extra: true }))).toEqual({ v: 1, requestId: 'r' })
  })
})

describe('PROTOCOL.md stream lines: ask lines and refund hellos', () => {
  it('an ask line round-trips, and is never read as a final message or a hello', () => {
    const line = encodeAsk({ v: 1, ask: 21n, received: 14n })
    expect(new TextDecoder().decode(line)).toBe('{"v":1,"ask":"21","received":"14"}\n')
    expect(decodeAsk(line.subarray(0, line.length - 1))).toEqual({ v: 1, ask: 21n, received: 14n })
    expect(decodeFinal('{"v":1,"ask":"21","received":"14"}')).toBeUndefined()
    expect(decodeAsk('{"v":1,"final":"complete","ask":"1","received":"1","charged":"1","paid":"1"}')).toBeUndefined()
    expect(decodeAsk('{"v":1,"ask":21,"received":"14"}')).toBeUndefined()
    expect(decodeAsk('{"v":1,"ask":"021","received":"14"}')).toBeUndefined()
  })

  it('a refund hello carries a positive amount and nothing else', () => {
    expect(decodeHello('{"v":1,"requestId":"abcdefghijklmnop","refund":"100"}')).toEqual({ v: 1, requestId: 'abcdefghijklmnop', refund: 100n })
    expect(decodeHello('{"v":1,"requestId":"abcdefghijklmnop","refund":"0"}')).toBeUndefined()
    expect(decodeHello('{"v":1,"requestId":"abcdefghijklmnop","refund":"100","amount":"100"}')).toBeUndefined()
    expect(decodeHello('{"v":1,"requestId":"abcdefghijklmnop","refund":100}')).toBeUndefined()
    expect(decodeFinal('{"v":1,"final":"stopped","code":"COGPAY_HANDLER_FAILED","charged":"14","paid":"14","refund":"14"}')?.refund).toBe(14n)
  })
})
