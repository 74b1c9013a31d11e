/**
 * cogpay benchmark (issue 10): paid against unpaid requests on the same Express server, and both
 * against the floor (raw ILP Prepare→Fulfill round trips through the same hub, and unpaid HTTP),
 * all from one run, on the real embedded testnet (ilp-connector + mini-accounts) over loopback.
 *
 *   npm run bench                     (node --import tsx bench/run.ts)
 *   BENCH_QUICK=1 npm run bench       a smoke run of a few seconds' worth of each phase
 *
 * Each transport's children run the packages it names (bench/transports.ts): the working tree's, or
 * an older commit's, materialized once under bench/.transports/ (bench/transport-tree.ts). Every
 * transport is set up before any is measured, so that no install runs under a measurement.
 *
 * The hub, the paid server and the load generator run in separate processes (bench/hub-process.ts,
 * bench/server-process.ts, bench/loadgen-process.ts), forked by this one, which only coordinates
 * them over IPC (bench/child-handle.ts, bench/serve.ts), so no party's latency includes another's
 * work on the same event loop, and CPU is counted per process. The
 * memory figure forks two more (bench/memory-child.ts): a PaymentServer alone and payers alone.
 * Every loop is bounded in count and time; every child is killed at the end, however it ends.
 *
 * It prints a table with issue 10's targets, and the raw numbers, and writes bench/results.json
 * (git-ignored: figures belong to a machine and a day). It exits 0 when it measured everything,
 * whatever the figures: it is a benchmark, not a test; 1 when a phase failed.
 *
 * Knobs (environment):
 *   BENCH_SCALE        multiplies every count and duration (default 1; 0.1 with BENCH_QUICK=1)
 *   BENCH_QUICK=1      a smoke run: BENCH_SCALE 0.1, 100 sockets, 100 leases for 1 s
 *   BENCH_SOCKETS      sockets opened for the memory figure (default 1000)
 *   BENCH_LEASES       leases for the lease figure (default 1000, every 100 ms)
 *   BENCH_LEASE_SECONDS  the lease figure's measured window (default 10 x BENCH_SCALE, at least 1)
 *   BENCH_LOADGENS     load generator processes sharing the 32 throughput clients (default 1)
 *   BENCH_TRANSPORTS   comma-separated STREAM transports to measure, one after the other with
 *                      fresh processes (default ilp-protocol-stream,cogpay-stream: the packages at
 *                      the commit bench/transports.ts names, then the working tree's); each child
 *                      gets its name as COGPAY_TRANSPORT
 *   BENCH_SETUP_TIMEOUT_MS  bound on setting up a commit's packages (default 600000; the first
 *                      run extracts and installs them offline into bench/.transports/, later
 *                      runs reuse them: bench/transport-tree.ts)
 *   BENCH_PHASES       comma-separated phases to run (default all: floor, warm, cold, throughput,
 *                      metered, leases, memory); the figures of the others are null
 *   BENCH_FROM_SOURCE=1  the children run the workspace packages' TypeScript through tsx (as the
 *                      tests do) instead of their tsc build in dist/ (what npm users run)
 *   BENCH_PROFILE=1    after the measured warm paid and cold phases and the measured lease window,
 *                      one more pass of each under V8's profiler in every process (not measured):
 *                      bench/profiles/<transport>.<warm|cold|leases>.<process>.cpuprofile (git-ignored;
 *                      bench/cpu-summary.ts summarises them)
 */
import { mkdirSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { HubCommands } from './hub-process.ts'
import type { LoadgenCommands } from './loadgen-process.ts'
import type { MemoryPayersCommands, MemoryServerCommands } from './memory-child.ts'
import type { ServerCommands } from './server-process.ts'
import { METERED_CONFIGS, type MeteredRun } from './metered.ts'
import { printDetails, printReport, writeResults, type CpuSplit, type LeaseResult, type MemoryResult, type TransportRun } from './report.ts'
import { ChildHandle, stopAll } from './child-handle.ts'
import { now, type Bounds, type Throughput } from './stats.ts'
import { prepareTree, type TransportTree } from './transport-tree.ts'
import { DEFAULT_TRANSPORT, transportsFrom, type TransportName } from './transports.ts'

// ---------------------------------------------------------------------------------------------
// Settings

const quick = process.env.BENCH_QUICK === '1'
const PHASES = ['floor', 'warm', 'cold', 'throughput', 'metered', 'leases', 'memory'] as const
type Phase = (typeof PHASES)[number]
const positive = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback)
  return Number.isFinite(value) && value > 0 ? value : fallback
}
const scale = positive('BENCH_SCALE', quick ? 0.1 : 1)
const n = (count: number) => Math.max(1, Math.round(count * scale))
const ms = (duration: number, atLeast = 250) => Math.max(atLeast, Math.round(duration * scale))
const bounds = (count: number, maxMs: number, warmup = n(50)): Bounds => ({ count: n(count), warmup, maxMs: ms(maxMs, 5000) })
const settings = {
  floor: bounds(2000, 20_000),
  floorInFlight: 32,
  floorInFlightMs: ms(2000),
  httpFloor: bounds(2000, 20_000),
  warmUnpaid: bounds(2000, 20_000),
  // More than the payer's 1000 concurrent streams: one socket must keep serving past it.
  warmPaid: bounds(2000, 30_000),
  profileRequests: n(1000),
  coldUnpaid: n(200),
  coldPaid: n(100),
  coldMaxMs: ms(30_000, 5000),
  clients: 32,
  throughputMs: ms(5000),
  loadgens: Math.min(32, Math.round(positive('BENCH_LOADGENS', 1))),
  sockets: Math.round(positive('BENCH_SOCKETS', quick ? 100 : 1000)),
  memoryPayers: 4,
  meteredMs: ms(2000),
  meteredMaxSteps: 100_000,
  leases: Math.round(positive('BENCH_LEASES', quick ? 100 : 1000)),
  leaseIntervalMs: 100,
  leaseAmount: 10n,
  leaseWindowMs: Math.round(1000 * positive('BENCH_LEASE_SECONDS', Math.max(1, 10 * scale))),
  leaseGraceMs: 5000,
  profile: process.env.BENCH_PROFILE === '1',
  transports: transportsFrom(process.env.BENCH_TRANSPORTS),
  phases: phasesFrom(process.env.BENCH_PHASES),
}

/** BENCH_PHASES: which phases to run (comma-separated; default all). */
function phasesFrom(value: string | undefined): Set<Phase> {
  if (!value?.trim()) return new Set(PHASES)
  const names = value.split(',').map((name) => name.trim())
  for (const name of names) {
    if (!(PHASES as readonly string[]).includes(name)) throw new Error(`BENCH_PHASES: unknown phase ${JSON.stringify(name)}; known: ${PHASES.join(', ')}`)
  }
  return new Set(names as Phase[])
}

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`)
const resultsFile = fileURLToPath(new URL('./results.json', import.meta.url))
const profileDir = fileURLToPath(new URL('./profiles/', import.meta.url))
/** How long an IPC call may take beyond its phase's own bound. */
const slack = 60_000

// ---------------------------------------------------------------------------------------------
// CPU over a phase, summed over every process that takes part

async function cpuAround<T>(
  processes: ReadonlyArray<{ name: string; handle: { cpuUsage(): Promise<NodeJS.CpuUsage> } }>,
  phase: () => Promise<T>,
  requests: (result: T) => number,
): Promise<{ result: T; cpu: CpuSplit }> {
  const sample = () =>
    Promise.all([process.cpuUsage(), ...processes.map((p) => p.handle.cpuUsage())])
  const before = await sample()
  const result = await phase()
  const after = await sample()
  const names = ['orchestrator', ...processes.map((p) => p.name)]
  const msByProcess: Record<string, number> = {}
  names.forEach((name, i) => {
    const a = after[i]!
    const b = before[i]!
    msByProcess[name] = (a.user - b.user + a.system - b.system) / 1000
  })
  return {
    result,
    cpu: { requests: requests(result), msByProcess, totalMs: Object.values(msByProcess).reduce((x, y) => x + y, 0) },
  }
}

/** Several throughput runs (one per load generator) as one. */
function merge(parts: Throughput[]): Throughput {
  const firstError = parts.find((p) => p.firstError)?.firstError
  return {
    clients: parts.reduce((x, p) => x + p.clients, 0),
    requests: parts.reduce((x, p) => x + p.requests, 0),
    errors: parts.reduce((x, p) => x + p.errors, 0),
    seconds: Math.max(...parts.map((p) => p.seconds)),
    times: parts.flatMap((p) => p.times),
    ...(firstError === undefined ? {} : { firstError }),
  }
}

// ---------------------------------------------------------------------------------------------
// One transport, from fresh processes

async function measure(transport: TransportName, tree: TransportTree): Promise<TransportRun> {
  const run: TransportRun = { transport, source: tree.source, errors: [] }
  const env = { COGPAY_TRANSPORT: transport }
  const from = { benchDir: tree.benchDir, root: tree.root }
  /** Runs a phase; a failure is recorded and the next phase runs. */
  const phase = async (key: Phase, name: string, fn: () => Promise<void>) => {
    if (!settings.phases.has(key)) return
    log(`${transport}: ${name}...`)
    try {
      await fn()
    } catch (err) {
      const message = `${name}: ${(err as Error)?.message ?? err}`
      run.errors.push(message.split('\n').slice(0, 3).join(' | '))
      log(`${transport}: FAILED ${message}`)
    }
  }

  // The hub is not a transport: it is the working tree's (@cogpay/testnet: the same connector and
  // mini-accounts) for every transport, so that only the payer and server code differ.
  const hub = await ChildHandle.start<HubCommands>('hub', './hub-process.ts', { env })
  let server: ChildHandle<ServerCommands> | undefined
  let loadgens: Array<ChildHandle<LoadgenCommands>> = []
  try {
    const { childPrefix } = await hub.call('start', undefined, 30_000)
    const uris = (name: string, count: number) => hub.call('uris', { name, count }, 10_000)
    ;[server, ...loadgens] = await Promise.all([
      ChildHandle.start<ServerCommands>('server', './server-process.ts', { env, from }),
      ...Array.from({ length: settings.loadgens }, (_, i) =>
        ChildHandle.start<LoadgenCommands>(`loadgen${settings.loadgens > 1 ? i + 1 : ''}`, './loadgen-process.ts', { env, from }),
      ),
    ])
    const paidServer = server
    const loadgen = loadgens[0]!
    const { url } = await paidServer.call('start', { uplink: (await uris('server', 1))[0]! }, 30_000)
    const everyone = [
      { name: 'hub', handle: hub },
      { name: 'server', handle: paidServer },
      ...loadgens.map((handle) => ({ name: handle.name, handle })),
    ]
    /** Runs one more, unmeasured pass under V8's profiler in every process; returns the files. */
    const profiled = async (name: string, pass: () => Promise<unknown>): Promise<string[]> => {
      mkdirSync(profileDir, { recursive: true })
      await Promise.all(everyone.map((p) => p.handle.profileStart()))
      await pass()
      return Promise.all(
        everyone.map(async (p) => {
          const file = `${profileDir}${transport}.${name}.${p.name}.cpuprofile`
          await p.handle.profileStop(file)
          return file
        }),
      )
    }

    await phase('floor', 'floor (raw ILP round trips, unpaid HTTP)', async () => {
      const [receiverUri, senderUri] = await uris('floor', 2)
      await paidServer.call('floorReceiver', { uri: receiverUri! }, 30_000)
      await loadgen.call('floorConnect', { uri: senderUri!, destination: `${childPrefix}.${new URL(receiverUri!).username}` }, 30_000)
      await loadgen.call('floorSequential', { bounds: { ...settings.floor, count: 1 } }, slack)
      const { result: roundTrip, cpu } = await cpuAround(
        everyone,
        () => loadgen.call('floorSequential', { bounds: { ...settings.floor, warmup: 0 } }, settings.floor.maxMs + slack),
        (stats) => stats.count + stats.errors,
      )
      const inFlight = await loadgen.call(
        'floorInFlight',
        { inFlight: settings.floorInFlight, durationMs: settings.floorInFlightMs },
        settings.floorInFlightMs + slack,
      )
      await loadgen.call('floorClose', undefined, 10_000)
      run.floor = { roundTrip, cpu, inFlight: inFlight.inFlight, packetsPerSecond: inFlight.packetsPerSecond, inFlightErrors: inFlight.errors }
      run.httpFloor = await loadgen.call('httpFloor', { url, bounds: settings.httpFloor }, settings.httpFloor.maxMs + slack)
    })

    await phase('warm', 'warm unpaid', async () => {
      // The warm-up is its own call, so that the CPU figure covers only the timed requests.
      await loadgen.call('warmUnpaid', { url, bounds: { ...settings.warmUnpaid, count: 1 } }, slack)
      const { result, cpu } = await cpuAround(
        everyone,
        () => loadgen.call('warmUnpaid', { url, bounds: { ...settings.warmUnpaid, warmup: 0 } }, settings.warmUnpaid.maxMs + slack),
        (stats) => stats.count + stats.errors,
      )
      run.warmUnpaid = result
      run.cpuUnpaid = cpu
    })

    await phase('warm', 'warm paid', async () => {
      const [uri] = await uris('payer', 1)
      await loadgen.call('warmPaidStart', { url, uri: uri!, warmup: settings.warmPaid.warmup }, settings.warmPaid.maxMs + slack)
      const before = await paidServer.call('counters', undefined, 10_000)
      const { result, cpu } = await cpuAround(
        everyone,
        () => loadgen.call('warmPaidRun', { count: settings.warmPaid.count, maxMs: settings.warmPaid.maxMs }, settings.warmPaid.maxMs + slack),
        (stats) => stats.count + stats.errors,
      )
      const after = await paidServer.call('counters', undefined, 10_000)
      run.warmPaid = result
      run.cpuPaid = cpu
      run.packetsPerPaidRequest = (after.packets - before.packets) / Math.max(1, result.count + result.errors)
      if (settings.profile) {
        run.profiles = await profiled('warm', () =>
          loadgen.call('warmPaidRun', { count: settings.profileRequests, maxMs: settings.warmPaid.maxMs }, settings.warmPaid.maxMs + slack),
        )
      }
      await loadgen.call('warmPaidStop', undefined, 30_000)
    })

    await phase('cold', 'cold', async () => {
      const before = await paidServer.call('counters', undefined, 10_000)
      const cold = await loadgen.call(
        'cold',
        { url, unpaid: settings.coldUnpaid, uris: await uris('cold', settings.coldPaid), maxMs: settings.coldMaxMs },
        2 * settings.coldMaxMs + slack,
      )
      const after = await paidServer.call('counters', undefined, 10_000)
      run.cold = { ...cold, socketsOpened: after.socketsOpened - before.socketsOpened }
      if (settings.profile) {
        const files = await profiled('cold', async () =>
          loadgen.call(
            'cold',
            { url, unpaid: settings.coldUnpaid, uris: await uris('cold-profile', settings.coldPaid), maxMs: settings.coldMaxMs },
            2 * settings.coldMaxMs + slack,
          ),
        )
        run.profiles = [...(run.profiles ?? []), ...files]
      }
    })

    await phase('throughput', `throughput, ${settings.clients} clients`, async () => {
      const share = (i: number) => Math.floor(settings.clients / loadgens.length) + (i < settings.clients % loadgens.length ? 1 : 0)
      const throughput: { unpaid?: Throughput; paid?: Throughput } = {}
      run.throughput = throughput
      for (const kind of ['unpaid', 'paid'] as const) {
        await Promise.all(
          loadgens.map(async (lg, i) =>
            lg.call(
              'throughputStart',
              { url, clients: share(i), ...(kind === 'paid' ? { paidUris: await uris('tput', share(i)) } : {}) },
              slack,
            ),
          ),
        )
        const parts = await Promise.all(
          loadgens.map((lg) => lg.call('throughputRun', { durationMs: settings.throughputMs }, settings.throughputMs + slack)),
        )
        throughput[kind] = merge(parts)
        await Promise.all(loadgens.map((lg) => lg.call('throughputStop', undefined, 30_000)))
      }
    })

    await phase('metered', 'metered', async () => {
      const [uri] = await uris('metered', 1)
      await loadgen.call('meteredStart', { uri: uri! }, 30_000)
      const runs: MeteredRun[] = []
      run.metered = runs
      // A warm-up run first, not recorded: whichever configuration ran first was measured with
      // the meter's code paths cold in both processes (1-unit steps, no window: 328 steps/s
      // first, 719 third, in one run).
      const warmUp = { ...METERED_CONFIGS[0]!, durationMs: settings.meteredMs, recorded: false }
      for (const config of [warmUp, ...METERED_CONFIGS.map((c) => ({ ...c, durationMs: settings.meteredMs, recorded: true }))]) {
        const payment = await loadgen.call('meteredExpect', undefined, 30_000)
        try {
          const measured = await paidServer.call(
            'meter',
            { payment, step: config.step, ahead: config.ahead, durationMs: config.durationMs, maxSteps: settings.meteredMaxSteps },
            config.durationMs + slack,
          )
          if (config.recorded) runs.push(measured)
        } finally {
          await loadgen.call('meteredFinish', undefined, 30_000)
        }
      }
    })

    await phase('leases', `leases (${settings.leases} every ${settings.leaseIntervalMs} ms)`, async () => {
      const [hostUri, payerUri] = await uris('lease', 2)
      await paidServer.call('leaseHost', { uplink: hostUri!, graceMs: settings.leaseGraceMs }, 30_000)
      await loadgen.call(
        'leasePayerStart',
        { uri: payerUri!, count: settings.leases, amount: settings.leaseAmount, intervalMs: settings.leaseIntervalMs },
        30_000,
      )
      try {
        const opening = now()
        const deadline = opening + 120_000
        let opened = 0
        let failed = 0
        let firstError: string | undefined
        for (let i = 0; i < settings.leases && now() < deadline; i += 50) {
          const payments = await loadgen.call('leaseExpect', { count: Math.min(50, settings.leases - i) }, 30_000)
          const batch = await paidServer.call(
            'leaseOpen',
            { payments, amount: settings.leaseAmount, intervalMs: settings.leaseIntervalMs, concurrency: 50 },
            settings.leaseGraceMs + slack,
          )
          await loadgen.call('leaseRequestsDone', undefined, 30_000)
          opened += batch.opened
          failed += batch.failed
          firstError ??= batch.firstError
        }
        const openSeconds = (now() - opening) / 1000
        const heapKiBPerLease = await paidServer.call('leaseHeapPerLeaseKiB', undefined, 30_000)
        const { result: window, cpu } = await cpuAround(
          everyone,
          () =>
            paidServer.call(
              'leaseMeasure',
              { settleMs: 2 * settings.leaseIntervalMs, windowMs: settings.leaseWindowMs, notOpened: settings.leases - opened },
              settings.leaseWindowMs + slack,
            ),
          (w) => w.onTime + w.paidLate,
        )
        if (settings.profile) {
          // A second window, not measured: the profiler slows every process down.
          const files = await profiled('leases', () =>
            paidServer.call(
              'leaseMeasure',
              { settleMs: 0, windowMs: settings.leaseWindowMs, notOpened: settings.leases - opened },
              settings.leaseWindowMs + slack,
            ),
          )
          run.profiles = [...(run.profiles ?? []), ...files]
        }
        const lease: LeaseResult = { opened, failed, openSeconds, heapKiBPerLease, window, cpu }
        if (firstError !== undefined) lease.firstError = firstError
        run.leases = lease
      } finally {
        await paidServer.call('leaseClose', undefined, 60_000).catch(() => {})
        await loadgen.call('leasePayerStop', undefined, 30_000).catch(() => {})
      }
    })

    // The memory figure runs in processes of its own: let these two go first.
    await stopAll([paidServer, ...loadgens])

    await phase('memory', `memory (${settings.sockets} sockets)`, async () => {
      run.memory = await measureMemory(env, from, uris)
    })
  } finally {
    await stopAll([server, ...loadgens, hub])
  }
  return run
}

/** Heap per open socket: a PaymentServer alone and payers alone, each in a process of its own. */
async function measureMemory(
  env: Record<string, string>,
  from: { benchDir: string; root: string },
  uris: (name: string, count: number) => Promise<string[]>,
): Promise<MemoryResult> {
  const [server, payers] = await Promise.all([
    ChildHandle.start<MemoryServerCommands>('memory-server', './memory-child.ts', { env, from, args: ['server'] }),
    ChildHandle.start<MemoryPayersCommands>('memory-payers', './memory-child.ts', { env, from, args: ['payers'] }),
  ])
  try {
    await Promise.all([
      server.call('start', { uri: (await uris('memserver', 1))[0]! }, 30_000),
      payers.call('start', { uris: await uris('mempayer', settings.memoryPayers) }, 30_000),
    ])
    // Warm-up: a few sockets, so that code paths, caches and lazy state exist before the baseline.
    const warm = await payers.call('issue', { prefix: 'w', count: 8 }, 30_000)
    const warmed = await server.call('collect', { list: warm, concurrency: 8 }, 30_000)
    if (warmed.ok !== 8) throw new Error(`warm-up collect failed: ${warmed.firstError}`)
    await payers.call('finish', undefined, 30_000)
    const serverBefore = await server.memory()
    const payersBefore = await payers.memory()

    const issued = await payers.call('issue', { prefix: 'o', count: settings.sockets }, 60_000)
    const collected = await server.call('collect', { list: issued, concurrency: 64 }, 120_000)
    await payers.call('finish', undefined, 60_000)
    const serverAfter = await server.memory()
    const payersAfter = await payers.memory()
    const memory: MemoryResult = {
      sockets: settings.sockets,
      opened: collected.ok,
      failed: collected.failed,
      openMs: collected.ms,
      socketsKept: await server.call('sockets', undefined, 10_000),
      server: { before: serverBefore, after: serverAfter },
      payers: { before: payersBefore, after: payersAfter },
      payersInProcess: settings.memoryPayers,
    }
    if (collected.firstError) memory.firstError = collected.firstError
    return memory
  } finally {
    await stopAll([server, payers])
  }
}

// ---------------------------------------------------------------------------------------------
// Main

const startedAt = now()
const date = new Date().toISOString()
log(
  `node ${process.version}, ${cpus().length} CPUs, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}, scale ${scale}${quick ? ' (quick)' : ''}, ` +
    `transports ${settings.transports.join(', ')}`,
)
// Every transport's code first (an install must not run under a measurement), then each measured.
const trees = new Map<TransportName, TransportTree>()
const failedSetups = new Map<TransportName, string>()
for (const transport of settings.transports) {
  try {
    const tree = await prepareTree(transport, log)
    trees.set(transport, tree)
    log(`${transport}: ${tree.source}`)
  } catch (err) {
    const message = (err as Error)?.message ?? String(err)
    log(`${transport}: FAILED to set up, not measured: ${message}`)
    failedSetups.set(transport, message)
  }
}
const runs: TransportRun[] = []
for (const transport of settings.transports) {
  const tree = trees.get(transport)
  if (!tree) {
    runs.push({ transport, errors: [`setup: ${failedSetups.get(transport)}`] })
    continue
  }
  try {
    runs.push(await measure(transport, tree))
  } catch (err) {
    log(`${transport}: FAILED to start: ${(err as Error)?.stack ?? err}`)
    runs.push({ transport, source: tree.source, errors: [`start: ${(err as Error)?.message ?? err}`] })
  }
}

printReport(runs)
for (const run of runs) printDetails(run)
const seconds = (now() - startedAt) / 1000
writeResults(resultsFile, runs, DEFAULT_TRANSPORT, {
  date,
  seconds: Number(seconds.toFixed(1)),
  node: process.version,
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  loadAverageAtEnd: loadavg(),
  quick,
  scale,
  processes: 'hub, server and load generator(s) in separate processes; memory sides in two more',
  settings: { ...settings, leaseAmount: settings.leaseAmount.toString(), phases: [...settings.phases] },
})
console.log(`\n  wrote ${resultsFile}; total run time ${seconds.toFixed(1)} s`)
process.exit(runs.some((run) => run.errors.length > 0) ? 1 : 0)
