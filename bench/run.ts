/**
 * cogpay benchmark: paid against unpaid requests on the same Express server, in the same run, on
 * the real embedded testnet (ilp-connector + mini-accounts) over loopback.
 *
 *   node --expose-gc --import tsx bench/run.ts      (or: pnpm bench)
 *
 * Measures warm and cold latency (p50, p99), throughput with 1 and 32 clients, and memory per open
 * payment socket (server and payer sides in child processes of their own). Prints a table and the
 * raw numbers, and exits 0: it is a benchmark, not a test. Every loop is bounded in count and time.
 *
 * Knobs (environment): BENCH_SCALE (default 1) multiplies every count and duration; BENCH_SOCKETS
 * (default 1000) is the number of sockets opened for the memory figure.
 *
 * Note: hub, HTTP server, payment server and clients share this one process and event loop for
 * the latency and throughput figures, so every paid figure includes the hub's and the payer's CPU.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { cpus } from 'node:os'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import express, { type NextFunction, type Request as ExpressRequest, type Response as ExpressResponse } from 'express'
import { startTestnet } from '@cogpay/testnet'
import { createPaymentServer, createPayer, type Payer } from '@cogpay/ilp'
import { createPayFetch, getPayment, type FetchFunction, type PayFetch } from '@cogpay/fetch'
import { createApp as createExampleApp } from '@cogpay/example-express-basic'
import { createBenchApp } from './app.ts'
import { listen } from '../test/support/network.ts'
import { benchMetered, printMetered } from './metered.ts'
import type { FromChild, ToChild } from './memory-child.ts'

// ---------------------------------------------------------------------------------------------
// undici: the very copy @cogpay/fetch uses (it is that package's dependency, not the root's).

interface UndiciAgent {
  close(): Promise<void>
}
interface Undici {
  Agent: new (options?: { connections?: number; pipelining?: number }) => UndiciAgent
  fetch(input: string | URL, init?: RequestInit & { dispatcher?: UndiciAgent }): Promise<Response>
}
const undici = createRequire(new URL('../packages/fetch/package.json', import.meta.url))('undici') as Undici

/** A fetch bound to one undici Agent (one keep-alive connection pool). */
const fetchVia =
  (agent: UndiciAgent): FetchFunction =>
  (input, init) =>
    undici.fetch(input, { ...init, dispatcher: agent })

// ---------------------------------------------------------------------------------------------
// Settings

const scale = Number(process.env.BENCH_SCALE ?? 1) > 0 ? Number(process.env.BENCH_SCALE ?? 1) : 1
const n = (count: number) => Math.max(1, Math.round(count * scale))
const settings = {
  warmup: n(50),
  warmUnpaid: n(2000),
  // More than the payer's 1000 concurrent streams: one socket must keep serving past it.
  warmPaid: n(2000),
  warmMaxMs: 20_000 * scale,
  exampleCount: n(200),
  coldUnpaid: n(200),
  coldPaid: n(100),
  coldMaxMs: 30_000 * scale,
  throughputMs: 5_000 * scale,
  clientsMany: 32,
  sockets: Math.max(1, Number(process.env.BENCH_SOCKETS ?? 1000)),
  memoryPayers: 4,
  memoryMaxMs: 60_000,
}

// ---------------------------------------------------------------------------------------------
// Helpers

const now = () => performance.now()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length) // nearest rank
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

interface Stats {
  count: number
  errors: number
  p50: number
  p90: number
  p99: number
  mean: number
  min: number
  max: number
  firstError?: string
}
function stats(values: number[], errors = 0, firstError?: string): Stats {
  return {
    ...(firstError === undefined ? {} : { firstError }),
    count: values.length,
    errors,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    mean: values.reduce((a, b) => a + b, 0) / (values.length || 1),
    min: Math.min(...values),
    max: Math.max(...values),
  }
}

/** Runs `fn` sequentially: `warmup` untimed calls, then up to `count` timed ones within `maxMs`. */
async function sequential(fn: () => Promise<void>, count: number, maxMs: number, warmup = settings.warmup): Promise<Stats> {
  const times: number[] = []
  let errors = 0
  let firstError: string | undefined
  const deadline = now() + maxMs
  for (let i = 0; i < warmup + count && now() < deadline; i++) {
    const start = now()
    try {
      await fn()
      if (i >= warmup) times.push(now() - start)
    } catch (err) {
      errors++
      firstError ??= errorText(err)
    }
  }
  return stats(times, errors, firstError)
}

function errorText(err: unknown): string {
  return ((err as Error)?.message ?? String(err)).split('\n')[0]!.slice(0, 300)
}

interface Throughput {
  clients: number
  requests: number
  errors: number
  seconds: number
  rps: number
  latency: Stats
}
/** Each client loops sequentially until the deadline; req/s = completed requests / elapsed. */
async function throughput(clients: Array<() => Promise<void>>, durationMs: number): Promise<Throughput> {
  const times: number[] = []
  let errors = 0
  let firstError: string | undefined
  const start = now()
  const deadline = start + durationMs
  await Promise.all(
    clients.map(async (fn) => {
      while (now() < deadline) {
        const t = now()
        try {
          await fn()
          times.push(now() - t)
        } catch (err) {
          errors++
          firstError ??= errorText(err)
          await sleep(1)
        }
      }
    }),
  )
  const seconds = (now() - start) / 1000
  return {
    clients: clients.length,
    requests: times.length,
    errors,
    seconds,
    rps: times.length / seconds,
    latency: stats(times, errors, firstError),
  }
}

function unpaidRequest(url: string, agent: UndiciAgent): () => Promise<void> {
  const fetch = fetchVia(agent)
  return async () => {
    const response = await fetch(`${url}/free`)
    const body = await response.text()
    if (response.status !== 200) throw new Error(`unpaid: ${response.status} ${body}`)
  }
}

function paidRequest(url: string, payFetch: PayFetch, path = '/paid'): () => Promise<void> {
  return async () => {
    const response = await payFetch(`${url}${path}`)
    const body = await response.text()
    if (response.status !== 200) throw new Error(`paid: ${response.status} ${body}`)
    const spent = getPayment(response)?.spent
    if (spent !== 100n) throw new Error(`paid: spent ${spent}, expected 100`)
  }
}

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`)

// ---------------------------------------------------------------------------------------------
// Memory: one PaymentServer in a child process, the payers in another, the testnet here.

interface MemorySample {
  heapUsed: number
  rss: number
  external: number
  arrayBuffers: number
  gc: string
  sockets?: number
}
interface MemoryResult {
  sockets: number
  opened: number
  failed: number
  firstError?: string
  openMs: number
  gc: string
  server: { before: MemorySample; after: MemorySample }
  payers: { before: MemorySample; after: MemorySample }
}

class Child {
  readonly process: ChildProcess
  #queue: FromChild[] = []
  #waiting: ((message: FromChild) => void) | undefined
  #exited = false

  constructor(role: string, args: string[]) {
    const file = fileURLToPath(new URL('./memory-child.ts', import.meta.url))
    this.process = fork(file, [role, ...args], {
      execArgv: ['--expose-gc', '--import', import.meta.resolve('tsx')],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    this.process.on('message', (message: FromChild) => {
      const waiting = this.#waiting
      this.#waiting = undefined
      if (waiting) waiting(message)
      else this.#queue.push(message)
    })
    this.process.on('exit', () => {
      this.#exited = true
    })
  }

  send(message: ToChild): void {
    this.process.send(message)
  }

  /** The next message, within `ms`. */
  next(ms: number): Promise<FromChild> {
    const queued = this.#queue.shift()
    if (queued) return Promise.resolve(queued)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined
        reject(new Error(`child did not answer within ${ms} ms`))
      }, ms)
      this.#waiting = (message) => {
        clearTimeout(timer)
        if (message.type === 'error') reject(new Error(message.message))
        else resolve(message)
      }
    })
  }

  async ask<T extends FromChild['type']>(message: ToChild, type: T, ms: number): Promise<Extract<FromChild, { type: T }>> {
    this.send(message)
    const answer = await this.next(ms)
    if (answer.type !== type) throw new Error(`expected ${type} from child, got ${JSON.stringify(answer)}`)
    return answer as Extract<FromChild, { type: T }>
  }

  async stop(): Promise<void> {
    if (this.#exited) return
    const exited = new Promise((resolve) => this.process.once('exit', resolve))
    try {
      this.send({ cmd: 'exit' })
    } catch {
      // channel already closed
    }
    await Promise.race([exited, sleep(3000)])
    if (!this.#exited && this.process.pid !== undefined) this.process.kill('SIGKILL')
  }
}

async function memoryBenchmark(uri: (name: string) => string): Promise<MemoryResult> {
  const server = new Child('server', [uri('memserver')])
  const payers = new Child('payers', Array.from({ length: settings.memoryPayers }, () => uri('mempayer')))
  try {
    await Promise.all([server.next(30_000), payers.next(30_000)])
    // Warm-up: a few sockets, so that code paths, caches and lazy state exist before the baseline.
    const warm = await payers.ask({ cmd: 'issue', prefix: 'w', count: 8 }, 'headers', 30_000)
    const warmed = await server.ask({ cmd: 'collect', list: warm.list, concurrency: 8 }, 'collected', 30_000)
    if (warmed.ok !== 8) throw new Error(`warm-up collect failed: ${warmed.firstError}`)
    await payers.ask({ cmd: 'finish' }, 'finished', 30_000)
    const serverBefore = await server.ask({ cmd: 'measure' }, 'memory', 30_000)
    const payersBefore = await payers.ask({ cmd: 'measure' }, 'memory', 30_000)

    const issued = await payers.ask({ cmd: 'issue', prefix: 'o', count: settings.sockets }, 'headers', 60_000)
    const collected = await server.ask(
      { cmd: 'collect', list: issued.list, concurrency: 64 },
      'collected',
      settings.memoryMaxMs,
    )
    await payers.ask({ cmd: 'finish' }, 'finished', 60_000)
    const serverAfter = await server.ask({ cmd: 'measure' }, 'memory', 30_000)
    const payersAfter = await payers.ask({ cmd: 'measure' }, 'memory', 30_000)
    const strip = ({ type: _type, ...sample }: Extract<FromChild, { type: 'memory' }>): MemorySample => sample
    return {
      sockets: settings.sockets,
      opened: collected.ok,
      failed: collected.failed,
      ...(collected.firstError ? { firstError: collected.firstError } : {}),
      openMs: collected.ms,
      gc: serverAfter.gc,
      server: { before: strip(serverBefore), after: strip(serverAfter) },
      payers: { before: strip(payersBefore), after: strip(payersAfter) },
    }
  } finally {
    await Promise.all([server.stop(), payers.stop()])
  }
}

// ---------------------------------------------------------------------------------------------
// Main

const startedAt = now()
log(`node ${process.version}, ${cpus().length} CPUs, scale ${scale}`)
const testnet = await startTestnet()
const receiver = createPaymentServer({ uplink: testnet.uri('server') })
await receiver.uplink.connect()

// One HTTP server: the bench's /free and /paid (one handler, unpaid and paid), and the
// express-basic example's routes (/weather paid 100, /health free).
const app = express()
app.use(createBenchApp({ receiver }))
app.use(createExampleApp({ receiver }))
// Errors (502s) are counted by the clients; answer them quietly instead of Express's stack dump.
app.use((err: unknown, _req: ExpressRequest, res: ExpressResponse, _next: NextFunction) => {
  const { status, code, message } = err as { status?: number; code?: string; message?: string }
  res.status(status ?? 500).json({ error: { code, message } })
})
const http = await listen(app)
const url = http.url

const payers: Payer[] = []
const newPayer = () => {
  const payer = createPayer({ uplink: testnet.uri('payer') })
  payers.push(payer)
  return payer
}
const agents: UndiciAgent[] = []
const newAgent = () => {
  const agent = new undici.Agent()
  agents.push(agent)
  return agent
}
const newPayFetch = async (agent = newAgent()) => {
  const payer = newPayer()
  await payer.start()
  return createPayFetch({ payer, maxSpend: 1000n, fetch: fetchVia(agent) })
}

// 1. Warm latency: one client each, socket (and HTTP connection) reused.
log('warm latency...')
const warmUnpaid = await sequential(unpaidRequest(url, newAgent()), settings.warmUnpaid, settings.warmMaxMs)
const warmPayFetch = await newPayFetch()
const warmPaid = await sequential(paidRequest(url, warmPayFetch), settings.warmPaid, settings.warmMaxMs)
// The express-basic example on the same server: /health (free) against /weather (100).
const exampleAgent = newAgent()
const exampleFree = await sequential(
  async () => {
    const response = await undici.fetch(`${url}/health`, { dispatcher: exampleAgent })
    await response.text()
    if (response.status !== 200) throw new Error(`health: ${response.status}`)
  },
  settings.exampleCount,
  settings.warmMaxMs,
)
const examplePaid = await sequential(paidRequest(url, await newPayFetch(), '/weather'), settings.exampleCount, settings.warmMaxMs)

// 2. Throughput: 1 and 32 clients, each its own HTTP connection; paid clients each their own payer.
log('throughput...')
const unpaidClients = Array.from({ length: settings.clientsMany }, () => unpaidRequest(url, newAgent()))
// Open every client's HTTP connection (and, for paid ones below, payment socket) before the clock.
for (const client of unpaidClients) await client().catch(() => {})
const tUnpaid1 = await throughput(unpaidClients.slice(0, 1), settings.throughputMs)
const tUnpaidMany = await throughput(unpaidClients, settings.throughputMs)
const paidClients = await Promise.all(
  Array.from({ length: settings.clientsMany }, async () => paidRequest(url, await newPayFetch())),
)
for (const client of paidClients) await client().catch(() => {})
const tPaid1 = await throughput(paidClients.slice(0, 1), settings.throughputMs)
const tPaidMany = await throughput(paidClients, settings.throughputMs)

// 3. Cold latency: a new HTTP connection per request; paid also a new payer (its own uplink, a new
// STREAM connection and rate probe). The payer's uplink is connected (BTP + IL-DCP) before the
// clock starts; that time is reported separately.
log('cold latency...')
const coldUnpaidTimes: number[] = []
let coldUnpaidErrors = 0
let coldUnpaidError: string | undefined
{
  const deadline = now() + settings.coldMaxMs
  for (let i = 0; i < settings.coldUnpaid && now() < deadline; i++) {
    const agent = new undici.Agent()
    const start = now()
    try {
      await unpaidRequest(url, agent)()
      coldUnpaidTimes.push(now() - start)
    } catch (err) {
      coldUnpaidErrors++
      coldUnpaidError ??= errorText(err)
    }
    await agent.close()
  }
}
const coldPaidTimes: number[] = []
const payerStartTimes: number[] = []
let coldPaidErrors = 0
let coldPaidError: string | undefined
const socketsBeforeCold = receiver.socketsOpened
{
  const coldPayers: Payer[] = []
  const deadline = now() + settings.coldMaxMs
  for (let i = 0; i < settings.coldPaid && now() < deadline; i++) {
    const payer = createPayer({ uplink: testnet.uri('cold') })
    coldPayers.push(payer)
    const agent = new undici.Agent()
    const started = now()
    try {
      await payer.start()
      payerStartTimes.push(now() - started)
      const request = paidRequest(url, createPayFetch({ payer, maxSpend: 1000n, fetch: fetchVia(agent) }))
      const start = now()
      await request()
      coldPaidTimes.push(now() - start)
    } catch (err) {
      coldPaidErrors++
      coldPaidError ??= errorText(err)
    }
    await agent.close()
  }
  // Closed after the loop: each close waits ~100 ms (ilp-protocol-stream's disconnect delay).
  await Promise.race([Promise.allSettled(coldPayers.map((p) => p.close())), sleep(10_000)])
}
const coldSocketsOpened = receiver.socketsOpened - socketsBeforeCold
const coldUnpaid = stats(coldUnpaidTimes, coldUnpaidErrors, coldUnpaidError)
const coldPaid = stats(coldPaidTimes, coldPaidErrors, coldPaidError)

const totalSpent = payers.reduce((sum, p) => sum + p.spent, 0n)
await Promise.race([
  Promise.allSettled([...payers.map((p) => p.close()), ...agents.map((a) => a.close())]),
  sleep(10_000),
])
await http.close()
await receiver.close()

// 4. Memory per open payment socket.
log(`memory: opening ${settings.sockets} sockets...`)
let memory: MemoryResult | undefined
let memoryError: string | undefined
try {
  memory = await memoryBenchmark((name) => testnet.uri(name))
} catch (err) {
  memoryError = (err as Error).message
}
await testnet.close()

// ---------------------------------------------------------------------------------------------
// Report

const KiB = 1024
const fmt = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a')
const perSocket = (side: { before: MemorySample; after: MemorySample }, key: 'heapUsed' | 'rss' | 'external', count: number) =>
  (side.after[key] - side.before[key]) / count / KiB
const opened = memory?.opened ?? 0

type Row = [metric: string, unpaid: string, paid: string, ratio: string, target: string, met: string]
const ratio = (paid: number, unpaid: number) => (unpaid > 0 ? `${fmt(paid / unpaid)}x` : 'n/a')
const verdict = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? 'yes' : 'NO')
const rows: Row[] = [
  [
    'warm latency p50 (ms)',
    fmt(warmUnpaid.p50),
    fmt(warmPaid.p50),
    ratio(warmPaid.p50, warmUnpaid.p50),
    `paid adds <= 1.5 ms (adds ${fmt(warmPaid.p50 - warmUnpaid.p50)})`,
    verdict(warmPaid.p50 - warmUnpaid.p50 <= 1.5),
  ],
  ['warm latency p99 (ms)', fmt(warmUnpaid.p99), fmt(warmPaid.p99), ratio(warmPaid.p99, warmUnpaid.p99), '-', ''],
  [
    'cold latency p50 (ms)',
    fmt(coldUnpaid.p50),
    fmt(coldPaid.p50),
    ratio(coldPaid.p50, coldUnpaid.p50),
    `paid adds <= 5 ms (adds ${fmt(coldPaid.p50 - coldUnpaid.p50)})`,
    verdict(coldPaid.p50 - coldUnpaid.p50 <= 5),
  ],
  ['cold latency p99 (ms)', fmt(coldUnpaid.p99), fmt(coldPaid.p99), ratio(coldPaid.p99, coldUnpaid.p99), '-', ''],
  ['throughput, 1 client (req/s)', fmt(tUnpaid1.rps, 0), fmt(tPaid1.rps, 0), ratio(tPaid1.rps, tUnpaid1.rps), '-', ''],
  [
    `throughput, ${settings.clientsMany} clients (req/s)`,
    fmt(tUnpaidMany.rps, 0),
    fmt(tPaidMany.rps, 0),
    ratio(tPaidMany.rps, tUnpaidMany.rps),
    'paid >= 1,000 req/s',
    verdict(tPaidMany.rps >= 1000),
  ],
  [
    `memory per open socket, server heap (KiB)`,
    '-',
    memory ? fmt(perSocket(memory.server, 'heapUsed', opened), 1) : 'n/a',
    '-',
    '<= 20 KiB per socket',
    memory ? verdict(perSocket(memory.server, 'heapUsed', opened) <= 20) : '',
  ],
  ['memory per open socket, server RSS (KiB)', '-', memory ? fmt(perSocket(memory.server, 'rss', opened), 1) : 'n/a', '-', '-', ''],
  ['memory per open socket, payer heap (KiB)', '-', memory ? fmt(perSocket(memory.payers, 'heapUsed', opened), 1) : 'n/a', '-', '-', ''],
]

const header: Row = ['metric', 'unpaid', 'paid', 'ratio (paid/unpaid)', 'target', 'met']
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
const line = (r: Row) => `| ${r.map((c, i) => (i === 0 || i === 4 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
console.log()
console.log(line(header))
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
for (const r of rows) console.log(line(r))

const firstError = (x: Stats) => (x.firstError ? ` first error: ${x.firstError}` : '')
const s = (x: Stats) =>
  `n=${x.count} err=${x.errors} p50=${fmt(x.p50)} p90=${fmt(x.p90)} p99=${fmt(x.p99)} mean=${fmt(x.mean)} min=${fmt(x.min)} max=${fmt(x.max)} ms${firstError(x)}`
const t = (x: Throughput) =>
  `${x.clients} client(s): ${x.requests} req in ${fmt(x.seconds)} s = ${fmt(x.rps, 1)} req/s, err=${x.errors}; latency p50=${fmt(x.latency.p50)} p99=${fmt(x.latency.p99)} ms${firstError(x.latency)}`
console.log('\nraw numbers')
console.log(`  warm unpaid  GET /free      ${s(warmUnpaid)}`)
console.log(`  warm paid    GET /paid      ${s(warmPaid)}`)
console.log(`  warm unpaid  GET /health    ${s(exampleFree)}   (examples/express-basic)`)
console.log(`  warm paid    GET /weather   ${s(examplePaid)}   (examples/express-basic)`)
console.log(`  cold unpaid  GET /free      ${s(coldUnpaid)}   (new undici Agent = new TCP connection per request)`)
console.log(`  cold paid    GET /paid      ${s(coldPaid)}   (new Agent + new payer: new STREAM connection + rate probe)`)
console.log(`  cold payer.start() (BTP connect + IL-DCP, not in cold paid)  ${s(stats(payerStartTimes))}`)
console.log(`  cold sockets opened by the server: ${coldSocketsOpened} for ${coldPaid.count + coldPaid.errors} cold requests`)
console.log(`  throughput unpaid ${t(tUnpaid1)}`)
console.log(`  throughput unpaid ${t(tUnpaidMany)}`)
console.log(`  throughput paid   ${t(tPaid1)}`)
console.log(`  throughput paid   ${t(tPaidMany)}`)
console.log(`  paid total spent by warm/throughput payers: ${totalSpent} units; server sockets opened overall: ${receiver.socketsOpened}`)
if (memory) {
  const side = (name: string, m: { before: MemorySample; after: MemorySample }) => {
    const d = (k: 'heapUsed' | 'rss' | 'external' | 'arrayBuffers') =>
      `${k} ${fmt(m.before[k] / KiB / KiB, 1)} -> ${fmt(m.after[k] / KiB / KiB, 1)} MiB (+${fmt((m.after[k] - m.before[k]) / opened / KiB, 1)} KiB/socket)`
    return `  memory ${name}: ${d('heapUsed')}; ${d('rss')}; ${d('external')}; ${d('arrayBuffers')}`
  }
  console.log(
    `  memory: ${memory.opened}/${memory.sockets} sockets opened and paid (1 unit each) in ${fmt(memory.openMs / 1000)} s, ` +
      `failed=${memory.failed}${memory.firstError ? ` (${memory.firstError})` : ''}; server sockets kept: ` +
      `${memory.server.before.sockets} -> ${memory.server.after.sockets}; gc: ${memory.gc}`,
  )
  console.log(side('server (PaymentServer only, own process)', memory.server))
  console.log(side(`payers (${settings.memoryPayers} payers, own process)`, memory.payers))
  console.log(
    `  memory server+payer combined heap per socket: ${fmt(perSocket(memory.server, 'heapUsed', opened) + perSocket(memory.payers, 'heapUsed', opened), 1)} KiB`,
  )
} else {
  console.log(`  memory: failed: ${memoryError}`)
}
printMetered(await benchMetered({ durationMs: 2000 * scale, maxSteps: 20_000 }))
// Leases in a process of their own, so their heap is not blurred by what the runs above leave.
spawnSync(process.execPath, ['--expose-gc', '--import', import.meta.resolve('tsx'), fileURLToPath(new URL('./leases.ts', import.meta.url))], {
  stdio: 'inherit',
  env: { ...process.env, BENCH_LEASE_SECONDS: String(3 * scale) },
})
console.log(`\n  total run time ${fmt((now() - startedAt) / 1000, 1)} s`)
process.exit(0)
