import { spawn, type ChildProcess } from 'node:child_process'
import { Buffer } from 'node:buffer'
import { mkdtemp, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ErrorCodes, MemoryLeaseStore, type Lease, type LeaseHost } from '@cogpay/core'
import { FileLeaseStore } from '@cogpay/core/node'
import { createLeaseHost, createPaymentServer, createPayer, type Payer } from '@cogpay/ilp'
import Koa from 'koa'
import { leaseRoute } from '@cogpay/koa'
import { createPayFetch, getPayment } from '@cogpay/fetch'
import { listen, startNetwork, type Network } from './support/network.ts'
import { sleep, until } from './support/wait.ts'

const ORIGIN = 'http://host.test'


/** Starts a TypeScript script in its own Node process; its stdout JSON lines go to `lines`. */
function startProcess(script: string, args: string[]): { child: ChildProcess; lines: Record<string, string>[]; exited: Promise<void> } {
  const path = fileURLToPath(new URL(`./support/${script}`, import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', path, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: Record<string, string>[] = []
  let buffered = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
      lines.push(JSON.parse(buffered.slice(0, newline)) as Record<string, string>)
      buffered = buffered.slice(newline + 1)
    }
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return { child, lines, exited }
}

async function openLease(host: LeaseHost, payer: Payer, terms: { amount: bigint; intervalMs: number }): Promise<Lease> {
  const pending = await payer.expect(ORIGIN, 0n)
  try {
    return await host.open(pending.headers, terms)
  } finally {
    await pending.finish(0)
  }
}

describe('leases: pull payments over time on the real testnet', () => {
  let net: Network
  let host: LeaseHost
  beforeEach(async () => {
    net = await startNetwork()
    host = createLeaseHost({ paymentServer: net.receiver, graceMs: 300 })
  })
  afterEach(async () => {
    await host.close()
    await net.close()
  })

  it('pulls amount at the start of every interval: K intervals cost K x amount (within one interval)', async () => {
    net.payer.authorize(ORIGIN, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const started = Date.now()
    const lease = await openLease(host, net.payer, { amount: 10n, intervalMs: 100 })
    expect(lease.paid).toBe(10n)
    await sleep(1000)
    await lease.end()
    const elapsed = Date.now() - started
    const intervals = BigInt(Math.floor(elapsed / 100) + 1)
    // The last interval may still be arriving when the lease ends: the payer's rate cap equals the
    // host's rate, so a pull a little early is paid as the cap refills.
    const seen = `asked=${lease.asked} paid=${lease.paid} intervals=${intervals}`
    expect(lease.asked % 10n, seen).toBe(0n)
    expect(lease.asked - lease.paid <= 10n, seen).toBe(true)
    expect(lease.asked >= (intervals - 1n) * 10n && lease.asked <= intervals * 10n, seen).toBe(true)
    expect(lease.paid >= (intervals - 2n) * 10n, seen).toBe(true)
    // Both sides agree on what moved (the payer counts a payment when its fulfill returns, a moment
    // after the host counted it: a double charge would keep them apart).
    await until(() => net.payer.leases()[0]?.status === 'ended' && net.payer.leases()[0]?.spent === lease.paid, 2000)
    const [view] = net.payer.leases()
    expect(view).toMatchObject({ id: lease.id, origin: ORIGIN, status: 'ended', spent: lease.paid, received: lease.paid })
    expect(net.payer.budgets()[0]).toMatchObject({ spent: lease.paid, reserved: 0n })
    expect(lease.signal.reason.code).toBe(ErrorCodes.LEASE_ENDED)
  })

  it('refuses a lease whose rate is above the payer\'s rate cap, before anything is paid', async () => {
    net.payer.authorize(ORIGIN, { total: 10_000n, rate: { amount: 5n, intervalMs: 100 } })
    await expect(openLease(host, net.payer, { amount: 10n, intervalMs: 100 })).rejects.toMatchObject({
      code: ErrorCodes.RATE_TOO_HIGH,
      status: 402,
    })
    expect(net.payer.spent).toBe(0n)
    const [record] = await host.store.list()
    expect(record).toMatchObject({ status: 'stopped', code: ErrorCodes.RATE_TOO_HIGH, paid: 0n })
    // The same rate over a longer interval is the same cap: 50 per second either way.
    net.payer.authorize(ORIGIN, { total: 10_000n, rate: { amount: 50n, intervalMs: 1000 } })
    const lease = await openLease(host, net.payer, { amount: 5n, intervalMs: 100 })
    expect(lease.paid).toBe(5n)
    await lease.end()
  })

  it('a host that asks faster than the rate it stated is held to the payer\'s cap, then stopped; never overpaid', async () => {
    net.payer.authorize(ORIGIN, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const pending = await net.payer.expect(ORIGIN, 0n)
    // A greedy host on the raw receiver: it states 10 per 100 ms, then asks 10 every 20 ms.
    const stream = await net.receiver.openLease({
      payment: pending.headers,
      lease: { id: 'greedy-host-lease-0001', amount: 10n, intervalMs: 100 },
    })
    const started = Date.now()
    let asked = 0n
    const greedy = setInterval(() => {
      if (stream.received >= asked) stream.ask((asked += 10n))
    }, 20)
    try {
      await sleep(600)
    } finally {
      clearInterval(greedy)
    }
    const elapsed = Date.now() - started
    // The bucket: 10 to start, 10 per 100 ms after, and the slack of 10 ms (1 unit).
    const most = 10n + (BigInt(elapsed) * 10n) / 100n + 1n
    expect(net.payer.spent <= most, `spent ${net.payer.spent}, most ${most}`).toBe(true)
    expect(net.payer.spent >= 40n).toBe(true)
    // Asking two intervals at once is refused outright.
    stream.ask(asked + 20n)
    expect((await stream.stopped).code).toBe(ErrorCodes.RATE_TOO_HIGH)
    // A packet already in flight when the payer stopped is still answered (several may be in
    // flight at once): let those settle, then nothing more may leave.
    await sleep(100)
    const spent = net.payer.spent
    expect(spent <= most + 1n, `spent ${spent}, most ${most}`).toBe(true)
    await sleep(200)
    expect(net.payer.spent).toBe(spent)
    stream.close()
    await pending.finish(0)
  })

  it('a request aborted by its client stops the lease it opened (the client never learnt of it)', async () => {
    net.payer.authorize(ORIGIN, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const pending = await net.payer.expect(ORIGIN, 0n)
    const lease = await host.open(pending.headers, { amount: 10n, intervalMs: 100 })
    pending.abort()
    await until(() => lease.signal.aborted, 1000)
    expect(lease.signal.reason.code).toBe(ErrorCodes.CLIENT_ABORTED)
    expect(net.payer.leases()[0]).toMatchObject({ status: 'stopped', code: 'COGPAY_ABORTED', spent: 10n })
  })

  it('authorizing a host again without a rate cap withdraws consent: its next pull is refused', async () => {
    net.payer.authorize(ORIGIN, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const lease = await openLease(host, net.payer, { amount: 10n, intervalMs: 100 })
    net.payer.authorize(ORIGIN, { total: 10_000n })
    await until(() => lease.signal.aborted, 1000)
    expect(lease.signal.reason.code).toBe(ErrorCodes.PAYER_REFUSED)
    expect(lease.paid).toBe(10n)
  })

  it('refuses a lease from a payer that gave no rate cap (no consent to pull over time)', async () => {
    net.payer.authorize(ORIGIN, { total: 10_000n })
    await expect(openLease(host, net.payer, { amount: 10n, intervalMs: 100 })).rejects.toMatchObject({
      code: ErrorCodes.PAYER_REFUSED,
    })
    expect(net.payer.spent).toBe(0n)
  })

  it('stops within one interval when the payer\'s total is reached, and never pays past it', async () => {
    net.payer.authorize(ORIGIN, { total: 35n, rate: { amount: 10n, intervalMs: 100 } })
    const lease = await openLease(host, net.payer, { amount: 10n, intervalMs: 100 })
    await until(() => lease.signal.aborted, 2000)
    expect(lease.signal.reason.code).toBe(ErrorCodes.CAP_TOO_LOW)
    // 3 intervals paid; the 4th (10 more) does not fit in the 5 left, so it is refused at once.
    expect(lease.paid).toBe(30n)
    expect(lease.asked).toBe(40n)
    await sleep(300)
    expect(net.payer.spent).toBe(30n)
    expect(net.payer.budgets()[0]).toMatchObject({ spent: 30n, reserved: 0n })
  })

  it('revoking mid-lease stops payment at once: the host hears COGPAY_AUTHORIZATION_REVOKED', async () => {
    net.payer.authorize(ORIGIN, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const lease = await openLease(host, net.payer, { amount: 10n, intervalMs: 100 })
    await sleep(250)
    const revokedAt = Date.now()
    net.payer.revoke(ORIGIN)
    await until(() => lease.signal.aborted, 2000)
    expect(Date.now() - revokedAt).toBeLessThan(100 + 300)
    expect(lease.signal.reason.code).toBe(ErrorCodes.AUTHORIZATION_REVOKED)
    // A fulfill in flight at the revoke still lands (the payer counts it when it returns): settle.
    await sleep(100)
    const spent = net.payer.spent
    await sleep(300)
    expect(net.payer.spent).toBe(spent)
    expect(spent).toBe(lease.paid)
    expect(net.payer.leases()[0]).toMatchObject({ status: 'revoked' })
    expect((await host.store.get(lease.id))?.status).toBe('stopped')
  })

  it('a payer process that dies is detected within the grace period, and is asked for nothing more', async () => {
    const payer = startProcess('payer-process.ts', [net.testnet.uri('payer'), ORIGIN, '10000', '10', '100'])
    try {
      await until(() => payer.lines.length > 0, 15_000)
      const { address, secret, requestId } = payer.lines[0]!
      const lease = await host.open(
        { address: address!, secret: Buffer.from(secret!, 'base64url'), requestId: requestId! },
        { amount: 10n, intervalMs: 100 },
      )
      await sleep(300)
      expect(lease.paid >= 30n).toBe(true)
      const killedAt = Date.now()
      payer.child.kill('SIGKILL')
      await payer.exited
      await until(() => lease.signal.aborted, 3000)
      const detectedIn = Date.now() - killedAt
      // Within the grace period (300 ms) plus one check of the watchdog (75 ms) and one interval.
      expect(detectedIn).toBeLessThan(300 + 75 + 100 + 50)
      expect([ErrorCodes.PAYER_UNREACHABLE, ErrorCodes.PAYMENT_STALLED]).toContain(lease.signal.reason.code)
      const asked = lease.asked
      const sent = net.receiver.uplink.packetsSent
      await sleep(500)
      expect(lease.asked).toBe(asked)
      // At most the close of the stream after the stop; no pulls, no keep-alives.
      expect(net.receiver.uplink.packetsSent - sent).toBeLessThanOrEqual(2)
    } finally {
      payer.child.kill('SIGKILL')
    }
  })

  it('a payer that keeps one origin still knows a leased origin after others pushed it out: its host resumes the lease', async () => {
    const payer = createPayer({ uplink: net.testnet.uri('one-origin'), maxOrigins: 1 })
    const store = new MemoryLeaseStore()
    const first = createLeaseHost({ paymentServer: net.receiver, store, graceMs: 300 })
    const server = createPaymentServer({ uplink: net.testnet.uri('hostB') })
    const restarted = createLeaseHost({ paymentServer: server, store, graceMs: 300 })
    try {
      payer.authorize(ORIGIN, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
      const lease = await openLease(first, payer, { amount: 10n, intervalMs: 100 })
      expect(lease.paid).toBe(10n)
      // Two other origins, one credential slot: the leased origin is pushed out of the cache, and
      // the unleased one after it is forgotten (it gets new credentials when it comes back).
      const other = await payer.expect('http://other.test', 0n)
      await other.finish(0)
      await (await payer.expect('http://third.test', 0n)).finish(0)
      const again = await payer.expect('http://other.test', 0n)
      await again.finish(0)
      expect(again.headers.address).not.toBe(other.headers.address)
      // The host restarts: its new process resumes the lease on a new connection, with the
      // credentials the payer handed out for the leased origin.
      await first.close()
      const [resumed] = await restarted.resume()
      expect(resumed?.id).toBe(lease.id)
      await sleep(250)
      await resumed!.end()
      expect(resumed!.paid > lease.paid).toBe(true)
      await until(() => payer.leases()[0]?.status === 'ended' && payer.leases()[0]?.spent === resumed!.paid, 2000)
    } finally {
      await restarted.close()
      await first.close()
      await server.close()
      await payer.close()
    }
  })

  it('a host that crashes and restarts with a file store resumes the lease, with no interval charged twice', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cogpay-leases-'))
    const storePath = join(dir, 'leases.json')
    net.payer.authorize(ORIGIN, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const pending = await net.payer.expect(ORIGIN, 0n)
    const headers = JSON.stringify({
      address: pending.headers.address,
      secret: Buffer.from(pending.headers.secret).toString('base64url'),
      requestId: pending.headers.requestId,
    })
    const first = startProcess('host-process.ts', [net.testnet.uri('hostA'), storePath, headers, '10', '100'])
    try {
      await until(() => first.lines.some((line) => line.opened), 15_000)
      await until(() => first.lines.filter((line) => line.paid).length >= 4, 5000)
      first.child.kill('SIGKILL')
      await first.exited
      await pending.finish(0)
      const paidBeforeCrash = net.payer.spent
      const [stored] = await new FileLeaseStore(storePath).list()
      expect(stored).toMatchObject({ status: 'active' })
      expect(stored!.paid <= paidBeforeCrash && stored!.asked >= paidBeforeCrash).toBe(true)
      // The payer cannot know yet that the host is gone: its lease stays live for a resume.
      expect(['active', 'interrupted']).toContain(net.payer.leases()[0]?.status)

      // The restarted host: a new process's worth of state, the same store file.
      const server = createPaymentServer({ uplink: net.testnet.uri('hostB') })
      const restarted = createLeaseHost({ paymentServer: server, store: new FileLeaseStore(storePath), graceMs: 300 })
      try {
        const [lease] = await restarted.resume()
        expect(lease?.id).toBe(stored!.id)
        // Resumed from what the payer had paid, whatever the crash lost of the record.
        expect(lease!.paid >= paidBeforeCrash).toBe(true)
        await sleep(450)
        await lease!.end()
        await until(() => net.payer.leases()[0]?.status === 'ended' && net.payer.leases()[0]?.spent === lease!.paid, 2000)
        const view = net.payer.leases()[0]!
        // What the payer paid is exactly what the host recorded: no interval was paid twice.
        expect(view.spent).toBe(lease!.paid)
        expect(view.received).toBe(lease!.paid)
        expect(lease!.asked % 10n).toBe(0n)
        expect(lease!.asked - lease!.paid <= 10n).toBe(true)
        expect(lease!.paid > paidBeforeCrash).toBe(true)
        // The record catches up with the last arrival (each is written as it comes).
        let after: Awaited<ReturnType<FileLeaseStore['list']>>[number] | undefined
        for (let i = 0; i < 100 && after?.paid !== lease!.paid; i++) {
          ;[after] = await new FileLeaseStore(storePath).list()
          if (after?.paid !== lease!.paid) await sleep(10)
        }
        expect(after).toMatchObject({ status: 'ended', paid: lease!.paid })
      } finally {
        await restarted.close()
        await server.close()
      }
    } finally {
      first.child.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('leaseRoute on Koa', () => {
  let net: Network
  beforeEach(async () => {
    net = await startNetwork()
  })
  afterEach(async () => {
    await net.close()
  })

  it('Koa: opens a lease before the handler runs, with the lease in ctx.state; bad headers get 400 and no socket', async () => {
    const host = createLeaseHost({ paymentServer: net.receiver, graceMs: 300 })
    const koa = new Koa()
    const lease = leaseRoute({ host, amount: 10n, intervalMs: 100 })
    koa.use(async (ctx, next) => {
      if (ctx.path !== '/lease' && ctx.path !== '/slow') return next()
      await lease(ctx, async () => {
        const opened = ctx.state.lease as Lease
        if (ctx.path === '/slow') await sleep(400)
        ctx.status = 201
        ctx.body = { id: opened.id, paid: opened.paid.toString() }
      })
    })
    const server = await listen(koa.callback())
    try {
      const url = `${server.url}/lease`
      const bad = await fetch(url, {
        method: 'POST',
        headers: { 'Cogpay-Scheme': 'ilp-stream/1', 'Cogpay-Address': 'not an address', 'Cogpay-Secret': 'x', 'Cogpay-Request-Id': 'y' },
      })
      expect(bad.status).toBe(400)
      expect(bad.headers.get('cogpay-error')).toMatch(/^COGPAY_/)
      expect(net.receiver.socketsOpened).toBe(0)
      net.payer.authorize(server.url, { total: 1000n, rate: { amount: 10n, intervalMs: 100 } })
      const payFetch = createPayFetch({ payer: net.payer, maxSpend: 0n })
      const res = await payFetch(url, { method: 'POST' })
      expect(res.status).toBe(201)
      const body = (await res.json()) as { id: string; paid: string }
      expect(body.paid).toBe('10')
      expect(getPayment(res)).toMatchObject({ lease: body.id, intervalMs: 100, price: 10n })
      expect(res.headers.get('cogpay-lease')).toBe(body.id)
      await host.get(body.id)!.end()

      // A client that goes away before the response (with the lease id) arrives: the lease stops
      // (the host ends it, or the client's payer stops it as its request aborted: whichever first).
      net.payer.authorize(server.url, { total: 1000n, rate: { amount: 10n, intervalMs: 100 } })
      const controller = new AbortController()
      const slow = payFetch(`${server.url}/slow`, { method: 'POST', signal: controller.signal })
      await until(() => host.leases.length === 1 && host.leases[0]!.paid >= 10n, 2000)
      const orphan = host.leases[0]!
      controller.abort()
      await expect(slow).rejects.toThrow()
      await until(() => orphan.status !== 'active', 2000)
      expect([ErrorCodes.LEASE_ENDED, ErrorCodes.CLIENT_ABORTED]).toContain(orphan.signal.reason.code)
      expect((await host.store.get(orphan.id))?.status).not.toBe('active')
      // Nothing moves after the stop, and both sides agree on what did (the payer counts a payment
      // when its fulfill returns, a moment after the host has counted it).
      await sleep(250)
      const spent = net.payer.spent
      await sleep(250)
      expect(net.payer.spent).toBe(spent)
      expect(spent).toBe(10n + orphan.paid)
    } finally {
      await host.close()
      await server.close()
    }
  })
})
