import { describe, expect, it } from 'vitest'
import { CogpayError, ErrorCodes, MemoryIdempotencyStore, readIdempotencyKey } from '../src/index.ts'

const header = (value: string | string[] | undefined) => (name: string) => (name === 'idempotency-key' ? value : undefined)

describe('readIdempotencyKey', () => {
  it('reads a bare token and an sf-string (draft-ietf-httpapi-idempotency-key-header)', () => {
    expect(readIdempotencyKey(header(undefined))).toBeUndefined()
    expect(readIdempotencyKey(header('order-1'))).toBe('order-1')
    expect(readIdempotencyKey(header('"8e03978e-40d5-43e8-bc93-6894a57f9324"'))).toBe('8e03978e-40d5-43e8-bc93-6894a57f9324')
    expect(readIdempotencyKey(header(' \tk-1 '))).toBe('k-1')
  })

  it.each([
    ['empty', ''],
    ['empty quotes', '""'],
    ['256 characters', 'a'.repeat(256)],
    ['a space inside', 'a b'],
    ['a no-break space', 'a\u00a0'],
    ['a quote inside', '"a"b"'],
    ['sent twice', ['a', 'b']],
  ])('refuses %s with 400 COGPAY_INVALID_IDEMPOTENCY_KEY', (_name, value) => {
    const result = readIdempotencyKey(header(value))
    expect(result).toBeInstanceOf(CogpayError)
    expect((result as CogpayError).code).toBe(ErrorCodes.INVALID_IDEMPOTENCY_KEY)
    expect((result as CogpayError).status).toBe(400)
  })
})

describe('MemoryIdempotencyStore', () => {
  it('begin is first-come: the second caller sees the running record', async () => {
    const store = new MemoryIdempotencyStore()
    expect(await store.begin('k', 'GET /a -', 1000)).toBeUndefined()
    expect(await store.begin('k', 'GET /a -', 1000)).toEqual({ state: 'running', fingerprint: 'GET /a -' })
    await store.complete('k', { state: 'done', fingerprint: 'GET /a -', paid: '100', price: '100' }, 1000)
    expect((await store.begin('k', 'GET /a -', 1000))?.state).toBe('done')
    // claim: done -> running, once.
    expect((await store.claim('k', 1000))?.state).toBe('done')
    expect(await store.claim('k', 1000)).toBeUndefined()
    expect((await store.begin('k', 'GET /a -', 1000))?.state).toBe('running')
    await store.forget('k')
    expect(await store.begin('k', 'GET /a -', 1000)).toBeUndefined()
  })

  it('forgets a record after its TTL', async () => {
    const store = new MemoryIdempotencyStore()
    await store.begin('k', 'f', 30)
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(await store.begin('k', 'f', 30)).toBeUndefined()
  })

  it('is bounded in records and in bytes', async () => {
    const byCount = new MemoryIdempotencyStore({ maxRecords: 100 })
    for (let i = 0; i < 1000; i++) await byCount.begin(`k${i}`, 'f', 60_000)
    expect(byCount.size).toBe(100)
    const bySize = new MemoryIdempotencyStore({ maxBytes: 1024 * 1024 })
    const body = new Uint8Array(64 * 1024)
    for (let i = 0; i < 100; i++) {
      await bySize.complete(`k${i}`, { state: 'done', fingerprint: 'f', response: { status: 200, headers: [], body } }, 60_000)
    }
    // 1 MiB holds at most 15 responses of 64 KiB (plus their overhead).
    expect(bySize.size).toBeLessThanOrEqual(15)
    expect(bySize.size).toBeGreaterThan(0)
  })
})

describe('sha256 (fingerprints and scopes of idempotency records)', () => {
  it("hashes with the runtime's synchronous hash where there is one, to the same digest as Web Crypto (it went through Web Crypto, two thread-pool jobs per paid request)", async () => {
    const { sha256 } = await import('../src/idempotency.ts')
    for (const text of ['', 'abc', 'GET /paid?x=1\n', 'é'.repeat(1000)]) {
      const web = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)))
      expect(await sha256(text)).toBe(btoa(String.fromCharCode(...web)))
    }
    // Synchronous on Node: the digest is there before a thread-pool job could have come back.
    let settled = false
    void sha256('abc').then(() => (settled = true))
    await Promise.resolve()
    await Promise.resolve()
    expect(settled).toBe(true)
  })
})
