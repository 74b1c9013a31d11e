/**
 * What one bench run found, per transport: the figures results.json promises (issue 10's keys),
 * the targets they are judged against, the table, and the raw numbers behind it.
 */
import { writeFileSync } from 'node:fs'
import type { LeaseWindow } from './leases.ts'
import { NO_WINDOW, WINDOW, printMetered, type MeteredRun } from './metered.ts'
import type { MemorySample } from './serve.ts'
import { stats, type Stats, type Throughput } from './stats.ts'
import type { TransportName } from './transports.ts'

/** CPU used by each process (ms) over a phase of `requests` requests. */
export interface CpuSplit {
  requests: number
  msByProcess: Record<string, number>
  totalMs: number
}

export interface MemoryResult {
  sockets: number
  opened: number
  failed: number
  firstError?: string
  openMs: number
  socketsKept: number
  server: { before: MemorySample; after: MemorySample }
  payers: { before: MemorySample; after: MemorySample }
  payersInProcess: number
}

export interface LeaseResult {
  opened: number
  failed: number
  firstError?: string
  openSeconds: number
  heapKiBPerLease: number
  window: LeaseWindow
  cpu: CpuSplit
}

/** The floor's ILP figures. */
export interface FloorRun {
  roundTrip: Stats
  /** CPU over the sequential round trips, per process. */
  cpu: CpuSplit
  inFlight: number
  packetsPerSecond: number
  inFlightErrors: number
}

/** Everything measured for one transport (a phase that failed leaves its field out and an error). */
export interface TransportRun {
  transport: TransportName
  /** Whose packages were measured (bench/transport-tree.ts); absent when they could not be set up. */
  source?: string
  floor?: FloorRun
  httpFloor?: Stats
  warmUnpaid?: Stats
  warmPaid?: Stats
  cpuUnpaid?: CpuSplit
  cpuPaid?: CpuSplit
  /** ILP packets through the paid server's uplink (both directions) per warm paid request. */
  packetsPerPaidRequest?: number
  cold?: { unpaid: Stats; paid: Stats; payerStart: Stats; socketsOpened: number }
  throughput?: { unpaid?: Throughput; paid?: Throughput }
  metered?: MeteredRun[]
  leases?: LeaseResult
  memory?: MemoryResult
  profiles?: string[]
  errors: string[]
}

/** The figures of issue 10's results.json, for one transport (ms, req/s, KiB; null when not measured). */
export interface Figures {
  floor: {
    ilpRoundTripP50Ms: number | null
    unpaidP50Ms: number | null
    ilpPacketsPerSecond32InFlight: number | null
    /** CPU per sequential round trip, all processes (ms). */
    cpuMsPerIlpRoundTrip: number | null
  }
  warm: { unpaidP50Ms: number | null; paidP50Ms: number | null; paidP99Ms: number | null }
  cold: { unpaidP50Ms: number | null; paidP50Ms: number | null }
  throughput32: { unpaidRps: number | null; paidRps: number | null }
  memoryPerSocketKiB: { serverHeap: number | null; payerHeap: number | null }
  cpuMsPerPaidRequest: number | null
  cpuMsPerUnpaidRequest: number | null
  metered: { stepsPerSecondNoWindow: number | null; stepsPerSecondWindow: number | null }
  leases: { count: number | null; intervalMs: number | null; onTimePercent: number | null }
}

/** One target of issue 10, judged on one run. */
export interface Target {
  target: string
  value: number | null
  /** The bound `value` is held to (in the same unit), from this run's floor where the target says so. */
  limit: number | null
  met: boolean | null
}
export type Targets = Record<
  | 'warmPaidOverUnpaid'
  | 'coldPaidOverUnpaid'
  | 'throughput32PaidOverUnpaid'
  | 'serverHeapPerSocket'
  | 'payerHeapPerSocket'
  | 'cpuPerPaidRequest'
  | 'meteredNoWindow'
  | 'meteredWindow'
  | 'leasesOnTime',
  Target
>

const KiB = 1024
const finite = (x: number | undefined): number | null => (x === undefined || !Number.isFinite(x) ? null : x)
const round = (x: number | null, digits = 3): number | null => (x === null ? null : Number(x.toFixed(digits)))
const minus = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b)
const over = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : a / b)

function rps(t: Throughput | undefined): number | null {
  return t && t.seconds > 0 ? t.requests / t.seconds : null
}
function perSocket(side: { before: MemorySample; after: MemorySample } | undefined, opened: number): number | null {
  return side && opened > 0 ? (side.after.heapUsed - side.before.heapUsed) / opened / KiB : null
}

export function figuresOf(run: TransportRun): Figures {
  const opened = run.memory?.opened ?? 0
  const meteredAt = (config: { step: bigint; ahead: bigint }) =>
    finite(run.metered?.find((r) => r.step === config.step && r.ahead === config.ahead)?.stepsPerSecond)
  const perRequest = (cpu: CpuSplit | undefined) => (cpu && cpu.requests > 0 ? cpu.totalMs / cpu.requests : null)
  return {
    floor: {
      ilpRoundTripP50Ms: round(finite(run.floor?.roundTrip.p50)),
      unpaidP50Ms: round(finite(run.httpFloor?.p50)),
      ilpPacketsPerSecond32InFlight: round(finite(run.floor?.packetsPerSecond), 0),
      cpuMsPerIlpRoundTrip: round(perRequest(run.floor?.cpu)),
    },
    warm: {
      unpaidP50Ms: round(finite(run.warmUnpaid?.p50)),
      paidP50Ms: round(finite(run.warmPaid?.p50)),
      paidP99Ms: round(finite(run.warmPaid?.p99)),
    },
    cold: { unpaidP50Ms: round(finite(run.cold?.unpaid.p50)), paidP50Ms: round(finite(run.cold?.paid.p50)) },
    throughput32: { unpaidRps: round(rps(run.throughput?.unpaid), 0), paidRps: round(rps(run.throughput?.paid), 0) },
    memoryPerSocketKiB: {
      serverHeap: round(perSocket(run.memory?.server, opened), 2),
      payerHeap: round(perSocket(run.memory?.payers, opened), 2),
    },
    cpuMsPerPaidRequest: round(perRequest(run.cpuPaid)),
    cpuMsPerUnpaidRequest: round(perRequest(run.cpuUnpaid)),
    metered: { stepsPerSecondNoWindow: round(meteredAt(NO_WINDOW), 0), stepsPerSecondWindow: round(meteredAt(WINDOW), 0) },
    leases: {
      // Leases asked for: those that failed to open count against the on-time figure too.
      count: run.leases ? run.leases.window.leases + run.leases.window.notOpened : null,
      intervalMs: run.leases?.window.intervalMs ?? null,
      onTimePercent: round(finite(run.leases?.window.onTimePercent), 2),
    },
  }
}

const WARM_TARGET = 'warm paid p50 - unpaid p50 <= 1.2 x (2 x ILP round trip p50), and <= 1.0 ms'

/** Issue 10's targets, each judged on figures from the same run. */
export function targetsOf(f: Figures): Targets {
  const judge = (target: string, value: number | null, limit: number, atMost: boolean): Target => ({
    target,
    value: round(value),
    limit,
    met: value === null ? null : atMost ? value <= limit : value >= limit,
  })
  const warmExtra = minus(f.warm.paidP50Ms, f.warm.unpaidP50Ms)
  const twoHops = f.floor.ilpRoundTripP50Ms === null ? null : 2 * f.floor.ilpRoundTripP50Ms
  return {
    warmPaidOverUnpaid:
      twoHops === null
        ? { target: WARM_TARGET, value: round(warmExtra), limit: null, met: null }
        : judge(WARM_TARGET, warmExtra, round(Math.min(1.2 * twoHops, 1.0))!, true),
    coldPaidOverUnpaid: judge('cold paid p50 - cold unpaid p50 <= 2.5 ms', minus(f.cold.paidP50Ms, f.cold.unpaidP50Ms), 2.5, true),
    throughput32PaidOverUnpaid: judge(
      '32 concurrent clients: paid >= 0.5 x unpaid req/s',
      over(f.throughput32.paidRps, f.throughput32.unpaidRps),
      0.5,
      false,
    ),
    serverHeapPerSocket: judge('heap per open socket, server <= 8 KiB', f.memoryPerSocketKiB.serverHeap, 8, true),
    payerHeapPerSocket: judge('heap per open socket, payer <= 8 KiB', f.memoryPerSocketKiB.payerHeap, 8, true),
    cpuPerPaidRequest: judge('CPU per paid request, all processes <= 1.0 ms', f.cpuMsPerPaidRequest, 1.0, true),
    meteredNoWindow: judge('metered steps/s with no window >= 1,000', f.metered.stepsPerSecondNoWindow, 1000, false),
    meteredWindow: judge('metered steps/s with a window >= 20,000', f.metered.stepsPerSecondWindow, 20_000, false),
    leasesOnTime: judge(
      '1,000 leases every 100 ms from one payer: >= 99 % of intervals paid on time',
      // Judged only at the issue's scale: fewer leases (BENCH_QUICK) is a smoke run, not the target.
      f.leases.count === 1000 && f.leases.intervalMs === 100 ? f.leases.onTimePercent : null,
      99,
      false,
    ),
  }
}

// ---------------------------------------------------------------------------------------------
// The table

const fmt = (x: number | null | undefined, digits = 2): string => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits))
const int = (x: number | null | undefined): string =>
  x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : Math.round(x).toLocaleString('en-US')
const verdict = (t: Target) => (t.met === null ? '' : t.met ? ' (met)' : ' (MISSED)')

export function printReport(runs: readonly TransportRun[]): void {
  const all = runs.map((run) => ({ run, f: figuresOf(run) }))
  const withTargets = all.map(({ run, f }) => ({ run, f, t: targetsOf(f) }))
  type Row = { label: string; cell: (x: (typeof withTargets)[number]) => string; target: string }
  const rows: Row[] = [
    { label: 'floor: ILP Prepare->Fulfill p50 (ms)', cell: ({ f }) => fmt(f.floor.ilpRoundTripP50Ms, 3), target: '' },
    { label: 'floor: ILP packets/s, 32 in flight', cell: ({ f }) => int(f.floor.ilpPacketsPerSecond32InFlight), target: '' },
    { label: 'floor: CPU per ILP round trip, all (ms)', cell: ({ f }) => fmt(f.floor.cpuMsPerIlpRoundTrip, 3), target: '' },
    { label: 'floor: unpaid HTTP p50, node:http (ms)', cell: ({ f }) => fmt(f.floor.unpaidP50Ms, 3), target: '' },
    { label: 'warm unpaid p50 (ms)', cell: ({ f }) => fmt(f.warm.unpaidP50Ms, 3), target: '' },
    { label: 'warm paid p50 (ms)', cell: ({ f }) => fmt(f.warm.paidP50Ms, 3), target: '' },
    { label: 'warm paid p99 (ms)', cell: ({ f }) => fmt(f.warm.paidP99Ms, 3), target: '' },
    {
      label: 'warm paid - unpaid p50 (ms)',
      cell: ({ t }) => `${fmt(t.warmPaidOverUnpaid.value, 3)}${verdict(t.warmPaidOverUnpaid)}`,
      target: '<= 1.2 x 2 x ILP RTT, <= 1.0',
    },
    { label: 'cold unpaid p50 (ms)', cell: ({ f }) => fmt(f.cold.unpaidP50Ms, 3), target: '' },
    { label: 'cold paid p50 (ms)', cell: ({ f }) => fmt(f.cold.paidP50Ms, 3), target: '' },
    {
      label: 'cold paid - unpaid p50 (ms)',
      cell: ({ t }) => `${fmt(t.coldPaidOverUnpaid.value, 3)}${verdict(t.coldPaidOverUnpaid)}`,
      target: '<= 2.5',
    },
    { label: '32 clients, unpaid (req/s)', cell: ({ f }) => int(f.throughput32.unpaidRps), target: '' },
    { label: '32 clients, paid (req/s)', cell: ({ f }) => int(f.throughput32.paidRps), target: '' },
    {
      label: '32 clients, paid / unpaid',
      cell: ({ t }) => `${fmt(t.throughput32PaidOverUnpaid.value)}x${verdict(t.throughput32PaidOverUnpaid)}`,
      target: '>= 0.5x',
    },
    {
      label: 'heap per open socket, server (KiB)',
      cell: ({ t }) => `${fmt(t.serverHeapPerSocket.value, 1)}${verdict(t.serverHeapPerSocket)}`,
      target: '<= 8',
    },
    {
      label: 'heap per open socket, payer (KiB)',
      cell: ({ t }) => `${fmt(t.payerHeapPerSocket.value, 1)}${verdict(t.payerHeapPerSocket)}`,
      target: '<= 8',
    },
    {
      label: 'CPU per paid request, all processes (ms)',
      cell: ({ t }) => `${fmt(t.cpuPerPaidRequest.value, 3)}${verdict(t.cpuPerPaidRequest)}`,
      target: '<= 1.0',
    },
    { label: 'CPU per unpaid request, all processes (ms)', cell: ({ f }) => fmt(f.cpuMsPerUnpaidRequest, 3), target: '' },
    {
      label: 'metered steps/s, no window',
      cell: ({ t }) => `${int(t.meteredNoWindow.value)}${verdict(t.meteredNoWindow)}`,
      target: '>= 1,000',
    },
    {
      label: 'metered steps/s, window of 10 steps',
      cell: ({ t }) => `${int(t.meteredWindow.value)}${verdict(t.meteredWindow)}`,
      target: '>= 20,000',
    },
    {
      label: 'leases paid on time (%)',
      cell: ({ f, t }) =>
        `${f.leases.count ?? 'n/a'} x ${f.leases.intervalMs ?? 'n/a'} ms: ${fmt(f.leases.onTimePercent, 1)}${verdict(t.leasesOnTime)}`,
      target: '>= 99 (1,000 x 100 ms)',
    },
  ]
  const header = ['figure', ...runs.map((r) => r.transport), 'target']
  const body = rows.map((row) => [row.label, ...withTargets.map((x) => row.cell(x)), row.target])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)))
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  console.log()
  for (const run of runs) console.log(`  ${run.transport}: ${run.source ?? 'not set up'}`)
  console.log()
  console.log(line(header))
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
  for (const r of body) console.log(line(r))

  for (const { run, f } of withTargets) {
    const rtt = f.floor.ilpRoundTripP50Ms
    const warmExtra = minus(f.warm.paidP50Ms, f.warm.unpaidP50Ms)
    const coldExtra = minus(f.cold.paidP50Ms, f.cold.unpaidP50Ms)
    console.log(`\n${run.transport}, against the unpaid baseline and the floor of the same run:`)
    console.log(
      `  warm paid - unpaid = ${fmt(warmExtra, 3)} ms = ${fmt(over(warmExtra, rtt === null ? null : 2 * rtt))} x (2 x ILP round trip of ${fmt(rtt, 3)} ms)`,
    )
    console.log(`  cold paid - unpaid = ${fmt(coldExtra, 3)} ms = ${fmt(over(coldExtra, rtt === null ? null : 2 * rtt))} x (2 x ILP round trip)`)
    console.log(
      `  warm unpaid (undici) - HTTP floor (node:http) = ${fmt(minus(f.warm.unpaidP50Ms, f.floor.unpaidP50Ms), 3)} ms; warm paid = ${fmt(over(f.warm.paidP50Ms, f.warm.unpaidP50Ms))} x warm unpaid`,
    )
    console.log(
      `  32 clients: paid ${int(f.throughput32.paidRps)} req/s = ${fmt(over(f.throughput32.paidRps, f.throughput32.unpaidRps))} x unpaid ${int(f.throughput32.unpaidRps)} req/s`,
    )
    console.log(
      `  CPU per request, all processes: paid ${fmt(f.cpuMsPerPaidRequest, 3)} ms = ${fmt(over(f.cpuMsPerPaidRequest, f.cpuMsPerUnpaidRequest))} x unpaid ${fmt(f.cpuMsPerUnpaidRequest, 3)} ms`,
    )
  }
}

/** The raw numbers behind the table. */
export function printDetails(run: TransportRun): void {
  const firstError = (x: { firstError?: string }) => (x.firstError ? ` first error: ${x.firstError}` : '')
  const s = (x: Stats | undefined) =>
    x
      ? `n=${x.count} err=${x.errors} p50=${fmt(x.p50, 3)} p90=${fmt(x.p90, 3)} p99=${fmt(x.p99, 3)} mean=${fmt(x.mean, 3)} min=${fmt(x.min, 3)} max=${fmt(x.max, 3)} ms${firstError(x)}`
      : 'not measured'
  const t = (x: Throughput | undefined) => {
    if (!x) return 'not measured'
    const latency = stats(x.times)
    return `${x.clients} clients: ${x.requests} req in ${fmt(x.seconds)} s = ${fmt(x.requests / x.seconds, 1)} req/s, err=${x.errors}; latency p50=${fmt(latency.p50)} p99=${fmt(latency.p99)} ms${firstError(x)}`
  }
  const cpu = (c: CpuSplit | undefined) =>
    c
      ? `${fmt(c.totalMs, 0)} ms over ${c.requests} requests: ${Object.entries(c.msByProcess)
          .map(([name, ms]) => `${name} ${fmt(ms / Math.max(1, c.requests), 3)}`)
          .join(', ')} ms/request`
      : 'not measured'
  console.log(`\nraw numbers (${run.transport}; hub, server and load generator in separate processes)`)
  console.log(`  packages: ${run.source ?? 'not set up'}`)
  console.log(`  floor ILP Prepare->Fulfill (load generator -> hub -> server process)  ${s(run.floor?.roundTrip)}`)
  if (run.floor) {
    console.log(`  floor ILP with ${run.floor.inFlight} in flight: ${fmt(run.floor.packetsPerSecond, 0)} packets/s, err=${run.floor.inFlightErrors}`)
  }
  console.log(`  floor HTTP  GET /free (node:http, keep-alive)  ${s(run.httpFloor)}`)
  console.log(`  warm unpaid GET /free (undici, keep-alive)     ${s(run.warmUnpaid)}`)
  console.log(`  warm paid   GET /paid (payFetch, one payer)    ${s(run.warmPaid)}`)
  console.log(`  CPU, warm unpaid: ${cpu(run.cpuUnpaid)}`)
  console.log(`  CPU, warm paid:   ${cpu(run.cpuPaid)}`)
  console.log(`  CPU, ILP floor:   ${cpu(run.floor?.cpu)} (per round trip)`)
  console.log(`  ILP packets per warm paid request at the server's uplink (both directions): ${fmt(run.packetsPerPaidRequest)}`)
  console.log(`  cold unpaid GET /free (new TCP connection per request)  ${s(run.cold?.unpaid)}`)
  console.log(`  cold paid   GET /paid (new connection + new payer: new STREAM connection)  ${s(run.cold?.paid)}`)
  console.log(`  cold payer.start() (BTP connect + IL-DCP, not in cold paid)  ${s(run.cold?.payerStart)}`)
  if (run.cold) console.log(`  cold sockets opened by the server: ${run.cold.socketsOpened} for ${run.cold.paid.count + run.cold.paid.errors} cold requests`)
  console.log(`  throughput unpaid ${t(run.throughput?.unpaid)}`)
  console.log(`  throughput paid   ${t(run.throughput?.paid)}`)
  const m = run.memory
  if (m) {
    const side = (name: string, x: { before: MemorySample; after: MemorySample }) => {
      const d = (k: 'heapUsed' | 'rss' | 'external' | 'arrayBuffers') =>
        `${k} ${fmt(x.before[k] / KiB / KiB, 1)} -> ${fmt(x.after[k] / KiB / KiB, 1)} MiB (+${fmt((x.after[k] - x.before[k]) / Math.max(1, m.opened) / KiB, 1)} KiB/socket)`
      return `  memory ${name}: ${d('heapUsed')}; ${d('rss')}; ${d('external')}; ${d('arrayBuffers')}`
    }
    console.log(
      `  memory: ${m.opened}/${m.sockets} sockets opened and paid (1 unit each) in ${fmt(m.openMs / 1000)} s, failed=${m.failed}` +
        `${m.firstError ? ` (${m.firstError})` : ''}; server sockets kept: ${m.socketsKept}; gc: ${m.server.after.gc}`,
    )
    console.log(side('server (PaymentServer only, own process)', m.server))
    console.log(side(`payers (${m.payersInProcess} payers, own process)`, m.payers))
  } else {
    console.log('  memory: not measured')
  }
  if (run.metered) printMetered(run.transport, run.metered)
  const l = run.leases
  if (l) {
    const w = l.window
    console.log(`\nleases (${run.transport}): ${w.leases} leases of one payer (load generator) on one host (server process), every ${w.intervalMs} ms`)
    console.log(
      `  opened ${l.opened} (failed ${l.failed}${l.firstError ? `: ${l.firstError}` : ''}) in ${fmt(l.openSeconds)} s; host heap ${fmt(l.heapKiBPerLease, 1)} KiB/lease`,
    )
    console.log(
      `  window ${fmt(w.seconds, 1)} s: ${w.due} intervals due, ${w.onTime} paid on time (${fmt(w.onTimePercent, 1)}%), ${w.paidLate} paid late, ` +
        `${w.unpaid} asked and unpaid, ${w.skipped} never asked (host waiting, lease stopped, or ${w.notOpened} leases not opened)`,
    )
    console.log(
      `  ask -> paid p50 ${fmt(w.payP50Ms)} ms, p99 ${fmt(w.payP99Ms)} ms; ${fmt(w.packetsPerInterval, 3)} packets/interval at the host's uplink; ` +
        `CPU ${fmt(l.cpu.totalMs / Math.max(1, l.cpu.requests), 3)} ms/paid interval (all processes); stopped ${w.stopped}` +
        `${Object.keys(w.stopReasons).length ? ` ${JSON.stringify(w.stopReasons)}` : ''}`,
    )
  }
  if (run.profiles?.length) {
    console.log(`\n  CPU profiles of a further, unmeasured pass (warm paid, cold, lease window; one per process): ${run.profiles.join(', ')}`)
    console.log(`  summarise: node --import tsx bench/cpu-summary.ts ${run.profiles.join(' ')}`)
  }
  for (const error of run.errors) console.log(`  PHASE FAILED: ${error}`)
}

/** The raw run for results.json: each throughput's latencies as percentiles, not every sample. */
function detailsOf(run: TransportRun): unknown {
  const compact = (x: Throughput | undefined) => {
    if (!x) return undefined
    const { times, ...rest } = x
    return { ...rest, rps: x.requests / x.seconds, latency: stats(times) }
  }
  return { ...run, throughput: { unpaid: compact(run.throughput?.unpaid), paid: compact(run.throughput?.paid) } }
}

/**
 * Writes results.json: the figures of `top` (or, when it was not asked for, the first transport)
 * at the top, every transport's under `transports`.
 */
export function writeResults(file: string, runs: readonly TransportRun[], top: TransportName, run: Record<string, unknown>): void {
  const transports: Record<string, unknown> = {}
  for (const r of runs) {
    const f = figuresOf(r)
    transports[r.transport] = { ...f, targets: targetsOf(f), details: detailsOf(r) }
  }
  const main = runs.find((r) => r.transport === top) ?? runs[0]
  const f = main ? figuresOf(main) : undefined
  const json = {
    transport: main?.transport ?? top,
    source: main?.source ?? null,
    ...f,
    targets: f ? targetsOf(f) : {},
    transports,
    run,
  }
  const replacer = (_key: string, value: unknown) =>
    typeof value === 'bigint' ? value.toString() : typeof value === 'number' && !Number.isFinite(value) ? null : value
  writeFileSync(file, `${JSON.stringify(json, replacer, 2)}\n`)
}
