// Issue 9, defect 2: the hosting sandbox was weak. Scripts ran as uid 0 and killed a sibling run
// and the host itself (a run started earlier then kept running, unbilled); memory outside the V8
// heap was unbounded (295 MiB against a 64 MiB heap limit); disk was bounded per file only; a
// script could reach the network and the host's ports; and a restarted host trusted a run.json kept
// in the script's own writable directory. Each test below reproduces one attack with real processes.
import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, chown, link, mkdtemp, readFile, rm, stat, symlink } from 'node:fs/promises'
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { FileLeaseStore } from '@cogpay/core/node'
import { createLeaseHost } from '@cogpay/ilp'
import { createPayFetch, type PayFetch } from '@cogpay/fetch'
import { createHosting, HostingIsolationError, type HostingOptions, type IsolationReport, type RunView } from '@cogpay/hosting'
import { listen, startNetwork, type Network } from './support/network.ts'
import { sleep, until } from './support/wait.ts'

/** Runs and is not a zombie (on these machines pid 1 reaps orphans late, and `kill(pid, 0)` counts zombies). */
async function running(pid: number | undefined): Promise<boolean> {
  if (!pid) return false
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  const state = stat.replace(/^.*\) /s, '')[0]
  return stat !== '' && state !== 'Z' && state !== 'X'
}

const root = process.getuid?.() === 0

describe.skipIf(!root)('issue 9, defect 2: the hosting sandbox (as root, as on CI)', () => {
  let net: Network
  let payFetch: PayFetch
  const cleanups: (() => Promise<void>)[] = []

  beforeAll(async () => {
    net = await startNetwork()
    payFetch = createPayFetch({ payer: net.payer, maxSpend: 0n })
  })
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  afterAll(async () => {
    await net.close()
  })

  /**
   * A host on `runsDir` (a new one by default). A host restarted in this process shares the first
   * one's `store`: two FileLeaseStores on one file in one process write the same temporary file,
   * and the closed host's last write may still be under way.
   */
  async function startHosting(options: Partial<HostingOptions> = {}, runsDir?: string, store?: FileLeaseStore) {
    const dir = runsDir ?? (await mkdtemp(join(tmpdir(), 'cogpay-sandbox-')))
    const leases = store ?? new FileLeaseStore(join(dir, 'leases.json'))
    const host = createLeaseHost({ paymentServer: net.receiver, graceMs: 500, store: leases })
    const hosting = createHosting({ host, ratePerSecond: 100n, intervalMs: 100, runsDir: dir, isolation: 'strict', ...options })
    const server = await listen(hosting.app)
    // The rate cap is shared by all of a host's leases: room for several runs at 10 per 100 ms.
    net.payer.authorize(server.url, { total: 1_000_000n, rate: { amount: 100n, intervalMs: 100 } })
    let closed = false
    const close = async () => {
      if (closed) return
      closed = true
      await hosting.close()
      await server.close()
    }
    cleanups.push(async () => {
      await close()
      // The lease store may still be writing leases.json when its host has closed: retry.
      if (!runsDir) await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 })
    })
    return { hosting, url: server.url, runsDir: dir, store: leases, close }
  }

  async function deploy(url: string, script: string): Promise<RunView> {
    const res = await payFetch(`${url}/run`, { method: 'POST', body: script })
    expect(res.status).toBe(201)
    return (await res.json()) as RunView
  }

  /** The first line of a run's output that parses as JSON (polled, at most `ms`). */
  async function reported<T>(url: string, id: string, ms = 5000): Promise<T> {
    const deadline = Date.now() + ms
    for (;;) {
      const text = await (await fetch(`${url}/run/${id}/logs`)).text()
      const line = text.split('\n').find((l) => l.startsWith('{'))
      if (line) return JSON.parse(line) as T
      if (Date.now() > deadline) throw new Error(`run ${id} reported nothing within ${ms} ms; its output: ${text.slice(-500)}`)
      await sleep(20)
    }
  }

  async function view(url: string, id: string): Promise<RunView> {
    return (await (await fetch(`${url}/run/${id}`)).json()) as RunView
  }

  it('reports every mechanism as in force at start (strict mode starts)', async () => {
    const { hosting } = await startHosting()
    const report: IsolationReport = hosting.isolation
    expect(report.mode).toBe('strict')
    expect(report.weak).toEqual([])
    for (const mechanism of Object.values(report.mechanisms)) expect(mechanism.level).toBe('isolated')
    expect(report.mechanisms.memory.how).toMatch(/^cgroup v[12] memory: 128 MiB/)
    expect(report.summary).toMatch(/every mechanism in force/)
  })

  it('strict refuses to start when a mechanism is missing, and names it; best-effort starts and says so', async () => {
    // Where uid locks cannot be kept, there is no uid of its own per run (nor a tmpfs for its directory).
    const stateDir = '/proc/cogpay-cannot-be-made'
    const runsDir = await mkdtemp(join(tmpdir(), 'cogpay-sandbox-'))
    cleanups.push(() => rm(runsDir, { recursive: true, force: true }))
    const host = createLeaseHost({ paymentServer: net.receiver })
    const refused = (() => {
      try {
        createHosting({ host, runsDir, stateDir, isolation: 'strict' })
      } catch (err) {
        return err
      }
    })()
    expect(refused).toBeInstanceOf(HostingIsolationError)
    expect(refused).toMatchObject({ code: 'HOSTING_ISOLATION_UNAVAILABLE', report: { weak: ['user', 'disk', 'records'] } })
    expect((refused as Error).message).toMatch(/user \(missing: cannot make \/proc\/cogpay-cannot-be-made/)
    const logged: string[] = []
    const hosting = createHosting({ host, runsDir, stateDir, logger: { info: () => {}, warn: (_fields, message) => logged.push(message) } })
    expect(hosting.isolation).toMatchObject({ mode: 'best-effort', weak: ['user', 'disk', 'records'] })
    expect(hosting.isolation.mechanisms.disk.level).toBe('fallback')
    expect(logged).toEqual([hosting.isolation.summary])
    await hosting.close()
  })

  it('each script runs as an unprivileged uid of its own: killing a sibling run or the host fails with EPERM', async () => {
    const { url } = await startHosting()
    const sibling = await deploy(url, `console.log(JSON.stringify({ uid: process.getuid() })); setInterval(() => {}, 1000)`)
    const attacker = await deploy(
      url,
      `const report = { uid: process.getuid(), gid: process.getgid(), groups: process.getgroups() }
      for (const [name, pid] of [['host', process.ppid], ['sibling', ${sibling.pid}]]) {
        try { process.kill(pid, 'SIGKILL'); report[name] = 'killed' } catch (err) { report[name] = err.code }
      }
      console.log(JSON.stringify(report))
      setInterval(() => {}, 1000)`,
    )
    const seen = await reported<{ uid: number; gid: number; groups: number[]; host: string; sibling: string }>(url, attacker.id)
    const { uid: siblingUid } = await reported<{ uid: number }>(url, sibling.id)
    expect(seen).toMatchObject({ host: 'EPERM', sibling: 'EPERM' })
    expect(seen.uid).not.toBe(0)
    expect(seen.gid).toBe(seen.uid)
    expect(seen.groups).not.toContain(0)
    expect(siblingUid).not.toBe(0)
    expect(siblingUid).not.toBe(seen.uid)
    expect(await running(sibling.pid)).toBe(true)
    expect((await view(url, sibling.id)).status).toBe('running')
  })

  it('memory outside the V8 heap is bounded: Buffer.alloc in a loop is killed at the cgroup limit and reported', async () => {
    const { url } = await startHosting({ memoryMb: 64 })
    // Bounded: it stops by itself at 512 MiB, which it only reaches if nothing bounds it.
    const run = await deploy(
      url,
      `const keep = []
      const timer = setInterval(() => {
        for (let i = 0; i < 4; i++) keep.push(Buffer.alloc(1 << 20, 1))
        const { rss, arrayBuffers } = process.memoryUsage()
        console.log('rss', rss, 'buffers', arrayBuffers)
        if (keep.length >= 512) { clearInterval(timer); console.log('unbounded') }
      }, 5)`,
    )
    let status = await view(url, run.id)
    for (let i = 0; i < 200 && status.status === 'running'; i++) {
      await sleep(25)
      status = await view(url, run.id)
    }
    const logs = await (await fetch(`${url}/run/${run.id}/logs`)).text()
    expect(logs).not.toContain('unbounded')
    expect(status).toMatchObject({ status: 'exited', exceeded: 'memory', signal: 'SIGKILL', lease: { status: 'ended' } })
    const last = [...logs.matchAll(/rss (\d+) buffers (\d+)/g)].at(-1)!
    expect(Number(last[2])).toBeLessThanOrEqual(64 * 1024 * 1024)
  })

  it('CPU is bounded by the cgroup quota: a busy loop gets at most its share of a core', async () => {
    const { url } = await startHosting({ cpuPercent: 20 })
    const run = await deploy(
      url,
      `const started = Date.now(), before = process.cpuUsage()
      while (Date.now() - started < 1000) {}
      const used = process.cpuUsage(before)
      console.log(JSON.stringify({ share: (used.user + used.system) / 1000 / (Date.now() - started) }))`,
    )
    const { share } = await reported<{ share: number }>(url, run.id, 10_000)
    // 20% of a core, give or take one CFS period; unbounded, it is about 1.
    expect(share).toBeLessThan(0.35)
  })

  it('disk is bounded per run, over many files (not just per file): ENOSPC at diskMb', async () => {
    const { url } = await startHosting({ diskMb: 8 })
    // 1 MiB files, each well under any per-file limit; bounded at 64 MiB.
    const run = await deploy(
      url,
      `const fs = require('node:fs')
      let written = 0, error = 'none'
      try { for (let i = 0; i < 64; i++) { fs.writeFileSync('f' + i, Buffer.alloc(1 << 20, 1)); written++ } } catch (err) { error = err.code }
      console.log(JSON.stringify({ written, error }))
      setInterval(() => {}, 1000)`,
    )
    const { written, error } = await reported<{ written: number; error: string }>(url, run.id)
    expect(error).toBe('ENOSPC')
    expect(written).toBeLessThanOrEqual(8)
    expect(written).toBeGreaterThanOrEqual(6)
  })

  it('the script has no network: a connect to a port of the host on 127.0.0.1 fails, yet the host reaches it on PORT', async () => {
    const { url } = await startHosting()
    let connections = 0
    const target: TcpServer = createTcpServer((socket) => (connections++, socket.destroy()))
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise((resolve) => target.close(() => resolve())))
    const port = (target.address() as AddressInfo).port
    const hostPort = Number(new URL(url).port)
    const run = await deploy(
      url,
      `const net = require('node:net')
      const tries = {}
      const attempt = (name, port) => new Promise((resolve) => {
        const socket = net.connect(port, '127.0.0.1')
        socket.once('connect', () => { tries[name] = 'connected'; socket.destroy(); resolve() })
        socket.once('error', (err) => { tries[name] = err.code; resolve() })
      })
      Promise.all([attempt('port', ${port}), attempt('hostApi', ${hostPort})]).then(() => {
        require('node:http').createServer((req, res) => res.end(JSON.stringify(tries))).listen(process.env.PORT)
      })`,
    )
    let answer: Response | undefined
    for (let i = 0; i < 100 && answer?.status !== 200; i++) {
      answer = await fetch(`${url}/run/${run.id}/app/`)
      if (answer.status !== 200) await sleep(20)
    }
    expect(answer?.status).toBe(200)
    const tries = (await answer!.json()) as Record<string, string>
    expect(tries.port).toBe('ENETUNREACH')
    expect(tries.hostApi).toBe('ENETUNREACH')
    expect(connections).toBe(0)
  })

  it('the proxy follows no symlink or foreign socket put at the script\'s socket path', async () => {
    const { url, hosting } = await startHosting()
    const run = await deploy(url, `require('node:http').createServer((req, res) => res.end('script')).listen(process.env.PORT)`)
    let answer: Response | undefined
    for (let i = 0; i < 100 && answer?.status !== 200; i++) {
      answer = await fetch(`${url}/run/${run.id}/app/`)
      if (answer.status !== 200) await sleep(20)
    }
    expect(await answer!.text()).toBe('script')
    // A socket of the host's own (uid 0), as a script that got around Node's permission model
    // could point its socket path at: the proxy must not connect to it.
    const { socket, dir } = hosting.runs.get(run.id)!
    let decoyHits = 0
    const decoy = (await import('node:http')).createServer((_req, res) => (decoyHits++, res.end('decoy')))
    const decoyPath = join(dir, 'decoy.sock')
    await new Promise<void>((resolve) => decoy.listen(decoyPath, resolve))
    cleanups.push(() => new Promise((resolve) => decoy.close(() => resolve())))
    for (const plant of [() => symlink(decoyPath, socket), () => link(decoyPath, socket)]) {
      await rm(socket, { force: true })
      await plant()
      const res = await fetch(`${url}/run/${run.id}/app/`)
      expect(res.status).toBe(502)
      expect(await res.json()).toMatchObject({ error: { code: 'HOSTING_APP_UNREACHABLE' } })
    }
    expect(decoyHits).toBe(0)
  })

  it('killing the host with SIGKILL kills its scripts: no run keeps going unbilled', async () => {
    const runsDir = await mkdtemp(join(tmpdir(), 'cogpay-sandbox-'))
    cleanups.push(() => rm(runsDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 }))
    // Whatever happens below, a host restarted on these records lets go of what the killed one held.
    let recovered = false
    cleanups.push(async () => {
      if (recovered) return
      const hosting = createHosting({ host: createLeaseHost({ paymentServer: net.receiver, store: new FileLeaseStore(join(runsDir, 'leases.json')) }), runsDir })
      await hosting.resume()
      for (const run of hosting.runs.values()) await run.lease.end()
      await hosting.close()
    })
    const host = startHostProcess(['hosting', net.testnet.uri('hostprocess'), runsDir, JSON.stringify({ isolation: 'strict' })])
    cleanups.push(async () => void host.child.kill('SIGKILL'))
    const { url } = await host.first<{ url: string }>()
    net.payer.authorize(url, { total: 1_000_000n, rate: { amount: 100n, intervalMs: 100 } })
    const run = await deploy(url, `setInterval(() => console.log('tick'), 20)`)
    // Killed at once, while the script may still be on its way through setpriv: it must not escape.
    const killedAt = Date.now()
    host.child.kill('SIGKILL')
    await host.exited
    const deadline = Date.now() + 2000
    while ((await running(run.pid)) && Date.now() < deadline) await sleep(5)
    expect(await running(run.pid)).toBe(false)
    expect(Date.now() - killedAt).toBeLessThan(1000)
    // A host restarted on the same records lets go of what the killed one held, and resumes the run.
    const { hosting } = await startHosting({}, runsDir)
    const [resumed] = await hosting.resume()
    recovered = true
    expect(resumed).toMatchObject({ id: run.id, status: 'running' })
    expect(await running(resumed!.pid)).toBe(true)
    await hosting.runs.get(run.id)!.lease.end()
  })

  it('a forged run.json (or record.json) in the script\'s own directory changes nothing on resume; the host\'s records are out of its reach', async () => {
    const first = await startHosting()
    const victim = await deploy(first.url, `console.log('I am the victim'); setInterval(() => {}, 1000)`)
    const forger = await deploy(
      first.url,
      `const fs = require('node:fs')
      const claim = JSON.stringify({ v: 1, lease: ${JSON.stringify(victim.id)}, name: 'run-forged', port: 1, held: null })
      const report = {}
      for (const [name, write] of [
        ['own run.json', () => fs.writeFileSync('run.json', claim)],
        ['own record.json', () => fs.writeFileSync('record.json', claim)],
        ['parent record.json', () => fs.writeFileSync('../record.json', claim)],
        ['runs dir', () => fs.readdirSync(${JSON.stringify(first.runsDir)})],
      ]) { try { write(); report[name] = 'ok' } catch (err) { report[name] = err.code } }
      console.log(JSON.stringify(report))
      setInterval(() => {}, 1000)`,
    )
    const report = await reported<Record<string, string>>(first.url, forger.id)
    expect(report).toMatchObject({ 'own run.json': 'ok', 'own record.json': 'ok' })
    expect(report['parent record.json']).not.toBe('ok')
    expect(report['runs dir']).not.toBe('ok')
    await first.close()

    const again = await startHosting({}, first.runsDir, first.store)
    const restarted = await again.hosting.resume()
    expect(restarted.map((run) => run.id).sort()).toEqual([victim.id, forger.id].sort())
    const resumedVictim = again.hosting.runs.get(victim.id)!
    const resumedForger = again.hosting.runs.get(forger.id)!
    expect(resumedVictim.dir).not.toBe(resumedForger.dir)
    // The victim's lease runs the victim's script again, from the host's own copy.
    const deadline = Date.now() + 5000
    let logs = ''
    while (Date.now() < deadline && (logs.match(/I am the victim/g) ?? []).length < 2) {
      logs = await (await fetch(`${again.url}/run/${victim.id}/logs`)).text()
      await sleep(20)
    }
    expect((logs.match(/I am the victim/g) ?? []).length).toBe(2)
    for (const run of again.hosting.runs.values()) await run.lease.end()
  })
})

describe.skipIf(!root)('issue 9, defect 2: a host that is not root says what it lacks', () => {
  let net: Network
  let payFetch: PayFetch
  let runsDir: string
  const uid = 1_800_000_000 + Math.floor(Math.random() * 1_000_000)
  const hosts: HostProcess[] = []

  // The plain user must be able to reach the repository's files: a checkout in a directory only
  // root may enter (mktemp -d makes 0700) is opened for search (o+x) for the test, then restored.
  const opened: [string, number][] = []
  beforeAll(async () => {
    for (let dir = fileURLToPath(new URL('..', import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
      const { mode } = await stat(dir)
      if ((mode & 0o001) === 0) {
        opened.push([dir, mode & 0o7777])
        await chmod(dir, (mode & 0o7777) | 0o001)
      }
    }
    net = await startNetwork()
    payFetch = createPayFetch({ payer: net.payer, maxSpend: 0n })
    runsDir = await mkdtemp(join(tmpdir(), 'cogpay-sandbox-user-'))
    await chown(runsDir, uid, uid)
  })
  afterAll(async () => {
    for (const [dir, mode] of opened) await chmod(dir, mode).catch(() => {})
    for (const host of hosts) host.child.kill('SIGKILL')
    await Promise.all(hosts.map((host) => host.exited))
    await net.close()
    await rm(runsDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 })
    // tsx's cache of the host process, made by that uid.
    await rm(join(tmpdir(), `tsx-${uid}`), { recursive: true, force: true })
  })

  /** The hosting host process, run as a uid that is not root. */
  const asUser = (options: Partial<HostingOptions>) => {
    const host = startHostProcess(['hosting', net.testnet.uri('hostuser'), runsDir, JSON.stringify(options)], uid)
    hosts.push(host)
    return host
  }

  it('best-effort starts as a plain user, reports its fallbacks at start, and still bounds disk', async () => {
    const host = asUser({ isolation: 'best-effort', diskMb: 4 })
    const { url, isolation } = await host.first<{ url: string; isolation: IsolationReport }>()
    expect(isolation.mode).toBe('best-effort')
    expect(isolation.mechanisms.user).toMatchObject({ level: 'missing', how: expect.stringMatching(/^the host runs as uid \d+, not root/) })
    expect(isolation.mechanisms.records.level).toBe('fallback')
    expect(isolation.mechanisms.disk).toMatchObject({ level: 'fallback', how: expect.stringMatching(/checked every 500 ms, killed past 4 MiB/) })
    expect(isolation.mechanisms.memory).toMatchObject({ level: 'fallback', how: expect.stringMatching(/^prlimit --as/) })
    expect(isolation.weak).toContain('user')
    for (const name of isolation.weak) expect(isolation.summary).toContain(`${name} ${isolation.mechanisms[name].level}`)
    // Without a logger, it still says so at start: a process warning on stderr.
    await until(() => host.stderr.includes('HOSTING_ISOLATION_WEAK'), 2000)
    expect(host.stderr).toContain(isolation.summary)

    net.payer.authorize(url, { total: 1_000_000n, rate: { amount: 100n, intervalMs: 100 } })
    // The proxy still reaches a script on its socket (in a user namespace's network namespace here).
    const web = await payFetch(`${url}/run`, { method: 'POST', body: `require('node:http').createServer((req, res) => res.end('up')).listen(process.env.PORT)` })
    const { id: webId } = (await web.json()) as RunView
    let answer: Response | undefined
    for (let i = 0; i < 100 && answer?.status !== 200; i++) {
      answer = await fetch(`${url}/run/${webId}/app/`)
      if (answer.status !== 200) await sleep(20)
    }
    expect(answer?.status).toBe(200)
    expect(await answer!.text()).toBe('up')
    const res = await payFetch(`${url}/run`, { method: 'POST', body: `
      const fs = require('node:fs')
      console.log(JSON.stringify({ uid: process.getuid() }))
      let i = 0
      const timer = setInterval(() => { fs.writeFileSync('f' + i++, Buffer.alloc(1 << 20, 1)); if (i >= 32) { clearInterval(timer); console.log('unbounded') } }, 40)` })
    expect(res.status).toBe(201)
    const run = (await res.json()) as RunView
    let status = run
    for (let i = 0; i < 150 && status.status === 'running'; i++) {
      await sleep(20)
      status = (await (await fetch(`${url}/run/${run.id}`)).json()) as RunView
    }
    expect(status).toMatchObject({ status: 'exited', exceeded: 'disk', lease: { status: 'ended' } })
    const logs = await (await fetch(`${url}/run/${run.id}/logs`)).text()
    expect(logs).toContain(`{"uid":${uid}}`)
    expect(logs).not.toContain('unbounded')
  })
})

interface HostProcess {
  child: ChildProcess
  exited: Promise<void>
  /** What it wrote to stderr so far. */
  readonly stderr: string
  /** The first JSON line it prints. */
  first<T>(): Promise<T>
}

/** test/support/host-process.ts in its own process (as `uid` if given). */
function startHostProcess(args: string[], uid?: number): HostProcess {
  const script = fileURLToPath(new URL('./support/host-process.ts', import.meta.url))
  const node = [process.execPath, '--import', 'tsx', script, ...args]
  const argv = uid === undefined ? node : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', ...node]
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(uid === undefined ? {} : { HOME: tmpdir() }) } })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  let buffered = ''
  const lines: unknown[] = []
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
      const line = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      if (line.startsWith('{')) lines.push(JSON.parse(line))
    }
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return {
    child,
    exited,
    get stderr() {
      return stderr
    },
    async first<T>() {
      await until(() => lines.length > 0 || child.exitCode !== null, 20_000)
      if (lines.length === 0) throw new Error(`the host process exited (${child.exitCode}) before printing anything`)
      return lines[0] as T
    },
  }
}
