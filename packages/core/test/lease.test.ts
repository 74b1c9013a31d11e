import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { decodeHello, decodeLeaseReport, encodeHello, encodeLeaseReport, ErrorCodes, leaseTerms, MemoryLeaseStore, type LeaseRecord } from '../src/index.ts'
import { FileLeaseStore } from '../src/node.ts'

const ID = 'AAAAAAAAAAAAAAAAAAAAAA'
const SECRET = Buffer.alloc(32, 7).toString('base64url')

function record(id: string, changes: Partial<LeaseRecord> = {}): LeaseRecord {
  return {
    id,
    requestId: 'r'.repeat(22),
    address: 'test.hub.local.payer.abc',
    secret: SECRET,
    amount: 10n,
    intervalMs: 100,
    status: 'active',
    asked: 30n,
    paid: 20n,
    lastAskAt: 1,
    createdAt: 1,
    updatedAt: 1,
    ...changes,
  }
}

describe('lease messages on the payment stream', () => {
  it('a lease hello round-trips, and malformed terms are refused', () => {
    const hello = { v: 1 as const, requestId: 'req', lease: { id: ID, amount: 10n, intervalMs: 100, resume: true } }
    const line = new TextDecoder().decode(encodeHello(hello)).trimEnd()
    expect(decodeHello(line)).toEqual(hello)
    const bad = (lease: unknown) => decodeHello(JSON.stringify({ v: 1, requestId: 'req', lease }))
    expect(bad({ id: 'short', amount: '10', intervalMs: 100 })).toBeUndefined()
    expect(bad({ id: ID, amount: '-1', intervalMs: 100 })).toBeUndefined()
    expect(bad({ id: ID, amount: '10', intervalMs: 0 })).toBeUndefined()
    expect(bad({ id: ID, amount: '10', intervalMs: 1.5 })).toBeUndefined()
    expect(bad({ id: ID, amount: '10', intervalMs: 100, resume: 'yes' })).toBeUndefined()
    expect(bad('lease')).toBeUndefined()
  })

  it('a lease report round-trips with its resume credentials; bad credentials are refused', () => {
    const report = { v: 1 as const, lease: ID, received: 30n, resume: { address: 'test.hub.local.p.x~y', secret: SECRET } }
    expect(decodeLeaseReport(new TextDecoder().decode(encodeLeaseReport(report)).trimEnd())).toEqual(report)
    const json = (value: object) => JSON.stringify({ v: 1, lease: ID, received: '30', ...value })
    expect(decodeLeaseReport(json({ resume: { address: 'test.a', secret: 'c2hvcnQ' } }))).toBeUndefined()
    expect(decodeLeaseReport(json({ resume: { address: 'not an address', secret: SECRET } }))).toBeUndefined()
    expect(decodeLeaseReport(json({ received: '1.5' }))).toBeUndefined()
    expect(decodeLeaseReport('{"v":1,"ping":1}')).toBeUndefined()
  })
})

describe('leaseTerms', () => {
  it('derives the amount per interval from a rate per second, exactly', () => {
    expect(leaseTerms({ ratePerSecond: 100n, intervalMs: 100 })).toEqual({ amount: 10n, intervalMs: 100 })
    expect(leaseTerms({ amount: '7' })).toEqual({ amount: 7n, intervalMs: 1000 })
  })

  it('refuses terms that are not whole, zero, ambiguous or malformed', () => {
    const code = (fn: () => unknown) => {
      try {
        fn()
      } catch (err) {
        return (err as { code: string }).code
      }
      return 'no error'
    }
    expect(code(() => leaseTerms({ ratePerSecond: 15n, intervalMs: 100 }))).toBe(ErrorCodes.INVALID_OPTIONS)
    expect(code(() => leaseTerms({ amount: 0n }))).toBe(ErrorCodes.INVALID_OPTIONS)
    expect(code(() => leaseTerms({ amount: 1n, ratePerSecond: 1n }))).toBe(ErrorCodes.INVALID_OPTIONS)
    expect(code(() => leaseTerms({}))).toBe(ErrorCodes.INVALID_OPTIONS)
    expect(code(() => leaseTerms({ amount: 1n, intervalMs: 0 }))).toBe(ErrorCodes.INVALID_OPTIONS)
    expect(code(() => leaseTerms({ amount: '1e3' }))).toBe(ErrorCodes.INVALID_OPTIONS)
  })
})

describe('lease stores', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cogpay-store-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('FileLeaseStore: what one instance wrote, a new one reads (bigints intact), in a 0600 file', async () => {
    const path = join(dir, 'sub', 'leases.json')
    const store = new FileLeaseStore(path)
    await store.put(record(ID, { meta: { dir: '/x' } }))
    await store.put(record('BBBBBBBBBBBBBBBBBBBBBB', { status: 'ended', code: ErrorCodes.LEASE_ENDED, paid: 2n ** 63n }))
    const again = new FileLeaseStore(path)
    expect(await again.get(ID)).toEqual(record(ID, { meta: { dir: '/x' } }))
    expect((await again.get('BBBBBBBBBBBBBBBBBBBBBB'))?.paid).toBe(2n ** 63n)
    expect((await again.list()).map((r) => r.status)).toEqual(['active', 'ended'])
    expect((await stat(path)).mode & 0o777).toBe(0o600)
  })

  it('FileLeaseStore: concurrent puts are all written (coalesced, never interleaved)', async () => {
    const path = join(dir, 'leases.json')
    const store = new FileLeaseStore(path)
    const ids = Array.from({ length: 50 }, (_, i) => `lease-${String(i).padStart(16, '0')}`)
    await Promise.all(ids.map((id, i) => store.put(record(id, { paid: BigInt(i) }))))
    const reread = await new FileLeaseStore(path).list()
    expect(reread.map((r) => r.id).sort()).toEqual([...ids].sort())
    const json = JSON.parse(await readFile(path, 'utf8')) as { v: number; leases: unknown[] }
    expect(json.v).toBe(1)
    expect(json.leases).toHaveLength(50)
  })

  it('FileLeaseStore: an unreadable file is a clear error, not an empty store', async () => {
    const path = join(dir, 'leases.json')
    await writeFile(path, '{"v":1,"leases":[{"id":"x"}]}')
    await expect(new FileLeaseStore(path).list()).rejects.toMatchObject({
      code: ErrorCodes.INVALID_OPTIONS,
      message: expect.stringContaining('unreadable'),
    })
    await writeFile(path, 'not json')
    await expect(new FileLeaseStore(path).get(ID)).rejects.toMatchObject({ code: ErrorCodes.INVALID_OPTIONS })
  })

  it('MemoryLeaseStore: bounded; past its limit it forgets the oldest lease that is not active', async () => {
    const store = new MemoryLeaseStore(3)
    await store.put(record('a'.repeat(16)))
    await store.put(record('b'.repeat(16), { status: 'ended' }))
    await store.put(record('c'.repeat(16)))
    await store.put(record('d'.repeat(16)))
    expect((await store.list()).map((r) => r.id[0])).toEqual(['a', 'c', 'd'])
  })
})
