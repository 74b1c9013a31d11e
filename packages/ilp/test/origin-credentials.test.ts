import { describe, expect, it } from 'vitest'
import { StreamListener } from '@cogpay/stream'
import { OriginCredentials } from '../src/payer/origin-credentials.ts'

/** A real listener: making credentials needs no network (its plugin is never called here). */
function addresses() {
  return new StreamListener({
    plugin: { sendData: () => Promise.reject(new Error('no network in this test')) },
    address: 'test.payer',
    asset: { code: 'XRP', scale: 9 },
  })
}

describe('OriginCredentials: one address and secret per origin, the least recently used forgotten first', () => {
  it('keeps max origins; a use refreshes one, a connection naming it does not', () => {
    const server = addresses()
    const origins = new OriginCredentials(2, () => new Set())
    const a = origins.get('https://a.test', server)
    const b = origins.get('https://b.test', server)
    expect(origins.get('https://a.test', server)).toBe(a)
    expect(origins.originOf(b.name)).toBe('https://b.test')
    origins.get('https://c.test', server)
    // b was the least recently used (a connection naming it is not a use): forgotten, name and all.
    expect(origins.size).toBe(2)
    expect(origins.originOf(b.name)).toBeUndefined()
    expect(origins.originOf(a.name)).toBe('https://a.test')
    expect(origins.get('https://b.test', server).address).not.toBe(b.address)
  })

  it('never forgets an origin with a live lease: it stays known by its connection tag, with the same credentials', () => {
    const server = addresses()
    const leased = new Set(['https://leased.test'])
    const origins = new OriginCredentials(1, () => leased)
    const kept = origins.get('https://leased.test', server)
    const others = ['https://b.test', 'https://c.test', 'https://d.test'].map((origin) => origins.get(origin, server))
    // A host resuming its lease connects with the leased origin's tag: it is still that origin's.
    expect(origins.originOf(kept.name)).toBe('https://leased.test')
    // The unleased ones went as usual, one cached at a time.
    expect(others.map((other) => origins.originOf(other.name))).toEqual([undefined, undefined, 'https://d.test'])
    expect(origins.size).toBe(2)
    // Used again, it is the same credentials (the host's socket to them stays good).
    expect(origins.get('https://leased.test', server)).toBe(kept)
    expect(origins.originOf(others[2]!.name)).toBeUndefined()
  })

  it('forgets a pinned origin once its leases have ended, when the next new origin arrives', () => {
    const server = addresses()
    const leased = new Set(['https://leased.test'])
    const origins = new OriginCredentials(1, () => leased)
    const kept = origins.get('https://leased.test', server)
    origins.get('https://b.test', server)
    expect(origins.originOf(kept.name)).toBe('https://leased.test')
    leased.clear()
    expect(origins.originOf(kept.name)).toBe('https://leased.test')
    origins.get('https://c.test', server)
    expect(origins.originOf(kept.name)).toBeUndefined()
    expect(origins.size).toBe(1)
  })

  it('a pinned origin used again goes back among the recently used, and is forgotten in turn once unleased', () => {
    const server = addresses()
    const leased = new Set(['https://leased.test'])
    const origins = new OriginCredentials(1, () => leased)
    const kept = origins.get('https://leased.test', server)
    const b = origins.get('https://b.test', server)
    leased.clear()
    // Used again after its lease ended: the most recently used, so b (unleased) makes room for it.
    expect(origins.get('https://leased.test', server)).toBe(kept)
    expect(origins.originOf(b.name)).toBeUndefined()
    expect(origins.size).toBe(1)
    origins.get('https://c.test', server)
    expect(origins.originOf(kept.name)).toBeUndefined()
  })
})
