import { mkdtemp, rm } from 'node:fs/promises'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ErrorCodes, type LeaseHost } from '@cogpay/core'
import { FileLeaseStore } from '@cogpay/core/node'
import { createLeaseHost } from '@cogpay/ilp'
import { createPayFetch, getPayment, type PayFetch } from '@cogpay/fetch'
import { createHosting, type Hosting, type RunView } from '@cogpay/hosting'
import { listen, startNetwork, type Network } from './support/network.ts'
import { sleep, until } from './support/wait.ts'

function alive(pid: number | undefined): boolean {
  if (!pid) return false
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const WORKER = `let n = 0; setInterval(() => console.log('tick', ++n), 20)`
const WEB = `
const http = require('node:http')
const fs = require('node:fs')
let secret = 'readable'
try { fs.readFileSync('/etc/passwd') } catch (err) { secret = err.code }
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ path: req.url, env: Object.keys(process.env).sort(), etcPasswd: secret }))
}).listen(process.env.PORT)
`

describe('hosting example: scripts billed per interval while they run', () => {
  let net: Network
  let host: LeaseHost
  let hosting: Hosting
  let server: Awaited<ReturnType<typeof listen>>
  let payFetch: PayFetch
  let runsDir: string
  const exits = new Map<number, number>()

  beforeEach(async () => {
    net = await startNetwork()
    runsDir = await mkdtemp(join(tmpdir(), 'cogpay-runs-'))
    host = createLeaseHost({ paymentServer: net.receiver, graceMs: 300, store: new FileLeaseStore(join(runsDir, 'leases.json')) })
    hosting = createHosting({
      host,
      ratePerSecond: 100n,
      intervalMs: 100,
      runsDir,
      observer: { onExit: (run, at) => exits.set(run.pid!, at) },
    })
    server = await listen(hosting.app)
    payFetch = createPayFetch({ payer: net.payer, maxSpend: 0n })
  })
  afterEach(async () => {
    await hosting.close()
    await server.close()
    await net.close()
    await rm(runsDir, { recursive: true, force: true })
  })

  async function deploy(script: string): Promise<RunView> {
    const res = await payFetch(`${server.url}/run`, { method: 'POST', body: script })
    expect(res.status).toBe(201)
    const run = (await res.json()) as RunView
    expect(getPayment(res)).toMatchObject({ lease: run.id, intervalMs: 100, price: 10n })
    return run
  }

  it('runs a script, bills it every interval, and stops billing on DELETE (the process is gone)', async () => {
    net.payer.authorize(server.url, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const run = await deploy(WORKER)
    expect(run.status).toBe('running')
    expect(alive(run.pid)).toBe(true)
    await sleep(500)
    const status = (await (await fetch(`${server.url}/run/${run.id}`)).json()) as RunView
    expect(BigInt(status.lease.paid as string) >= 40n).toBe(true)
    expect(await (await fetch(`${server.url}/run/${run.id}/logs`)).text()).toMatch(/tick 5\n/)
    const deleted = (await (await fetch(`${server.url}/run/${run.id}`, { method: 'DELETE' })).json()) as RunView
    expect(deleted).toMatchObject({ status: 'stopped', lease: { status: 'ended' } })
    await until(() => exits.has(run.pid!), 1000)
    expect(alive(run.pid)).toBe(false)
    await until(() => net.payer.leases()[0]?.status === 'ended', 1000)
    await sleep(100)
    const spent = net.payer.spent
    await sleep(300)
    expect(net.payer.spent).toBe(spent)
    expect(net.payer.leases()[0]!.spent).toBe(hosting.runs.get(run.id)!.lease.paid)
  })

  it('proxies to a script that listens on PORT; the script sees no host secrets and no files outside its dir', async () => {
    net.payer.authorize(server.url, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const run = await deploy(WEB)
    let answer: Response | undefined
    for (let i = 0; i < 100 && answer?.status !== 200; i++) {
      answer = await fetch(`${server.url}/run/${run.id}/app/hello?x=1`)
      if (answer.status !== 200) await sleep(20)
    }
    expect(answer?.status).toBe(200)
    const body = (await answer!.json()) as { path: string; env: string[]; etcPasswd: string }
    expect(body.path).toBe('/hello?x=1')
    expect(body.env.filter((name) => !['PATH', 'HOME', 'PORT'].includes(name))).toEqual([])
    expect(body.etcPasswd).toBe('ERR_ACCESS_DENIED')
  })

  // Issue 9, defect 1: the proxy forwarded a visitor's Cogpay-Address, -Secret and -Request-Id to
  // the hosted script, whose owner then opened a lease with them and pulled from the visitor.
  it('the proxy forwards no payment credentials and no hop-by-hop headers to the hosted script', async () => {
    net.payer.authorize(server.url, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const ECHO = `require('node:http').createServer((req, res) => {
      res.setHeader('content-type', 'application/json')
      res.setHeader('cogpay-price', '1')
      res.end(JSON.stringify(req.headers))
    }).listen(process.env.PORT)`
    const run = await deploy(ECHO)
    const sent = {
      'Cogpay-Scheme': 'ilp-stream/1',
      'Cogpay-Address': 'test.hub.local.visitor.abc',
      'Cogpay-Secret': Buffer.alloc(32, 9).toString('base64url'),
      'Cogpay-Request-Id': 'visitorrequest0001',
      'Cogpay-Max-Spend': '100 XRP 9',
      Connection: 'keep-alive, X-Hop',
      'X-Hop': 'only for the next hop',
      'Proxy-Authorization': 'Basic c2VjcmV0',
      'X-Kept': 'yes',
    }
    // node:http, not fetch: fetch may not send a Connection header of its own.
    const get = () =>
      new Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const req = httpRequest(`${server.url}/run/${run.id}/app/echo`, { headers: sent }, (res) => {
          let body = ''
          res.on('data', (chunk: Buffer) => (body += chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
        })
        req.once('error', reject)
        req.end()
      })
    let answer = await get()
    for (let i = 0; i < 100 && answer.status !== 200; i++) {
      await sleep(20)
      answer = await get()
    }
    expect(answer.status).toBe(200)
    const seen = JSON.parse(answer.body) as Record<string, string>
    expect(Object.keys(seen).filter((name) => name.startsWith('cogpay-'))).toEqual([])
    expect(seen['x-hop']).toBeUndefined()
    expect(seen['proxy-authorization']).toBeUndefined()
    expect(seen['x-kept']).toBe('yes')
    // Nor may a script speak for the host to the visitor's payer.
    expect(answer.headers['cogpay-price']).toBeUndefined()
  })

  it('revoking the payer kills the script within one interval plus grace', async () => {
    net.payer.authorize(server.url, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const run = await deploy(WORKER)
    await sleep(250)
    const revokedAt = Date.now()
    net.payer.revoke(server.url)
    await until(() => exits.has(run.pid!), 2000)
    expect(exits.get(run.pid!)! - revokedAt).toBeLessThanOrEqual(100 + 300)
    expect(alive(run.pid)).toBe(false)
    const status = (await (await fetch(`${server.url}/run/${run.id}`)).json()) as RunView
    expect(status).toMatchObject({ status: 'stopped', lease: { status: 'stopped', code: ErrorCodes.AUTHORIZATION_REVOKED } })
  })

  it('kills the script when the payer\'s total is spent, and it is never overpaid', async () => {
    net.payer.authorize(server.url, { total: 45n, rate: { amount: 10n, intervalMs: 100 } })
    const run = await deploy(WORKER)
    await until(() => exits.has(run.pid!), 3000)
    expect(alive(run.pid)).toBe(false)
    expect(net.payer.spent).toBe(40n)
    expect(hosting.runs.get(run.id)!.lease.signal.reason.code).toBe(ErrorCodes.CAP_TOO_LOW)
  })

  it('a run with its own cap (leaseMax) is killed at that cap, while the host budget has plenty left', async () => {
    net.payer.authorize(server.url, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const res = await payFetch(`${server.url}/run`, { method: 'POST', body: WORKER, leaseMax: 30n })
    const run = (await res.json()) as RunView
    await until(() => exits.has(run.pid!), 3000)
    expect(net.payer.spent).toBe(30n)
    expect(net.payer.leases()[0]).toMatchObject({ max: 30n, spent: 30n, status: 'stopped' })
    expect(hosting.runs.get(run.id)!.lease.signal.reason.code).toBe(ErrorCodes.CAP_TOO_LOW)
    expect(net.payer.budgets()[0]).toMatchObject({ spent: 30n, reserved: 0n })
  })

  it('a script that ends by itself ends its lease: billing stops', async () => {
    net.payer.authorize(server.url, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const run = await deploy(`console.log('done')`)
    await until(() => exits.has(run.pid!), 3000)
    await until(() => net.payer.leases()[0]?.status === 'ended', 1000)
    const status = (await (await fetch(`${server.url}/run/${run.id}`)).json()) as RunView
    expect(status).toMatchObject({ status: 'exited', exitCode: 0, lease: { status: 'ended' } })
  })

  it('bad input gets a clear error and opens no socket; no payment headers gets a 402 with the terms', async () => {
    net.payer.authorize(server.url, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const empty = await payFetch(`${server.url}/run`, { method: 'POST', body: '  \n' })
    expect(empty.status).toBe(400)
    expect(await empty.json()).toMatchObject({ error: { code: 'HOSTING_SCRIPT_EMPTY' } })
    const large = await payFetch(`${server.url}/run`, { method: 'POST', body: 'x'.repeat(64 * 1024 + 1) })
    expect(large.status).toBe(413)
    expect(await large.json()).toMatchObject({ error: { code: 'HOSTING_SCRIPT_TOO_LARGE' } })
    const binary = await payFetch(`${server.url}/run`, { method: 'POST', body: new Uint8Array([0xff, 0xfe, 0x00]) })
    expect(binary.status).toBe(400)
    expect(net.receiver.socketsOpened).toBe(0)
    expect(net.payer.spent).toBe(0n)
    const unpaid = await fetch(`${server.url}/run`, { method: 'POST', body: WORKER })
    expect(unpaid.status).toBe(402)
    expect(await unpaid.json()).toMatchObject({
      error: { code: ErrorCodes.PAYMENT_REQUIRED },
      accepts: [{ amount: '10', intervalMs: 100 }],
    })
    const missing = await fetch(`${server.url}/run/nope`)
    expect(missing.status).toBe(404)
  })

  it('a full host answers 503 before any payment; finished runs are forgotten past the limit', async () => {
    await hosting.close()
    await server.close()
    hosting = createHosting({ host, ratePerSecond: 100n, intervalMs: 100, runsDir, maxRunning: 1, maxFinished: 1 })
    server = await listen(hosting.app)
    net.payer.authorize(server.url, { total: 10_000n, rate: { amount: 20n, intervalMs: 100 } })
    const first = await deploy(WORKER)
    const full = await payFetch(`${server.url}/run`, { method: 'POST', body: WORKER })
    expect(full.status).toBe(503)
    expect(await full.json()).toMatchObject({ error: { code: 'HOSTING_FULL' } })
    expect(net.payer.leases()).toHaveLength(1)
    await fetch(`${server.url}/run/${first.id}`, { method: 'DELETE' })
    const second = await deploy(`console.log('quick')`)
    await until(() => hosting.runs.get(second.id)?.status === 'exited', 3000)
    // Two finished, one remembered: the oldest is gone, with its directory.
    expect((await fetch(`${server.url}/run/${first.id}`)).status).toBe(404)
    expect((await fetch(`${server.url}/run/${second.id}`)).status).toBe(200)
  })

  it('a payer without a rate cap for this host is refused (402) and nothing runs', async () => {
    net.payer.authorize(server.url, { total: 10_000n })
    const res = await payFetch(`${server.url}/run`, { method: 'POST', body: WORKER }).catch((err: unknown) => err)
    expect(res).toMatchObject({ name: 'PaymentRequiredError', serverCode: ErrorCodes.PAYER_REFUSED, spent: 0n })
    expect(hosting.runs.size).toBe(0)
  })

  it('a restarted host (same store, same runs dir) resumes the lease and restarts the script, with no interval paid twice', async () => {
    net.payer.authorize(server.url, { total: 10_000n, rate: { amount: 10n, intervalMs: 100 } })
    const run = await deploy(WORKER)
    await sleep(300)
    await hosting.close()
    await until(() => exits.has(run.pid!), 1000)
    const paidBefore = net.payer.spent

    const again = createHosting({
      host: createLeaseHost({ paymentServer: net.receiver, graceMs: 300, store: new FileLeaseStore(join(runsDir, 'leases.json')) }),
      ratePerSecond: 100n,
      intervalMs: 100,
      runsDir,
      observer: { onExit: (r, at) => exits.set(r.pid!, at) },
    })
    try {
      const [restarted] = await again.resume()
      expect(restarted).toMatchObject({ id: run.id, status: 'running' })
      expect(restarted!.pid).not.toBe(run.pid)
      expect(alive(restarted!.pid)).toBe(true)
      await sleep(300)
      const lease = again.runs.get(run.id)!.lease
      expect(lease.paid > paidBefore).toBe(true)
      await lease.end()
      await until(() => net.payer.leases()[0]?.status === 'ended' && net.payer.leases()[0]?.spent === lease.paid, 1000)
      expect(net.payer.leases()[0]!.spent).toBe(lease.paid)
      expect(net.payer.spent).toBe(lease.paid)
    } finally {
      await again.close()
    }
  })
})
