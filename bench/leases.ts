import { LeaseHost, type Lease } from '@cogpay/core'
import { createPayer, createPaymentServer } from '@cogpay/ilp'
import { startTestnet } from '@cogpay/testnet'

/** One run: `leases` concurrent leases pulling `amount` every `intervalMs` for `seconds`. */
interface LeaseRun {
  leases: number
  intervalMs: number
  openSeconds: number
  seconds: number
  /** Intervals paid in the measured window, against what the clock allowed. */
  paidIntervals: number
  expectedIntervals: number
  packetsPerInterval: number
  /** CPU of the whole process (hub, host and payer together) per lease-interval. */
  cpuMsPerInterval: number
  heapKiBPerLease: number
  stopped: number
  /** Leases that did not open. */
  failed: number
}

const gc = (globalThis as { gc?: () => void }).gc

/**
 * Leases at scale on one host: open many leases from one payer (its host budget has a rate cap
 * that covers them all), then count what is paid per interval, packets, CPU and heap. Everything
 * runs in this process (hub, host, payer), so CPU is everyone's.
 */
export async function benchLeases(options: { configs: [count: number, intervalMs: number][]; seconds: number }): Promise<LeaseRun[]> {
  const runs: LeaseRun[] = []
  for (const [count, intervalMs] of options.configs) {
    const testnet = await startTestnet()
    const server = createPaymentServer({ uplink: testnet.uri('host'), maxOpening: 1024 })
    const payer = createPayer({ uplink: testnet.uri('payer'), maxStreamsPerServer: 4 * count })
    const host = new LeaseHost({ receiver: server, graceMs: 5000 })
    await Promise.all([server.uplink.connect(), payer.start()])
    const origin = 'http://host.bench'
    const amount = 10n
    payer.authorize(origin, { total: 10n ** 15n, rate: { amount: amount * BigInt(count), intervalMs: intervalMs } })
    try {
      // Settle what earlier runs left behind (closed sockets, timers) before the baseline.
      await new Promise((resolve) => setTimeout(resolve, 500))
      gc?.()
      gc?.()
      const heapBefore = process.memoryUsage().heapUsed
      const opening = performance.now()
      const leases: Lease[] = []
      let failed = 0
      for (let i = 0; i < count; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(50, count - i) }, async () => {
            const pending = await payer.expect(origin, 0n)
            const lease = await host.open(pending.headers, { amount, intervalMs }).catch(() => undefined)
            await pending.finish(0)
            return lease
          }),
        )
        for (const lease of batch) if (lease) leases.push(lease)
        failed += batch.filter((lease) => !lease).length
      }
      const openSeconds = (performance.now() - opening) / 1000
      gc?.()
      gc?.()
      const heapKiBPerLease = (process.memoryUsage().heapUsed - heapBefore) / 1024 / Math.max(1, leases.length)
      await new Promise((resolve) => setTimeout(resolve, 2 * intervalMs))
      const paidBefore = leases.reduce((sum, l) => sum + l.paid, 0n)
      const packetsBefore = server.uplink.packetsSent + server.uplink.packetsReceived
      const cpuBefore = process.cpuUsage()
      const started = performance.now()
      await new Promise((resolve) => setTimeout(resolve, options.seconds * 1000))
      const seconds = (performance.now() - started) / 1000
      const cpu = process.cpuUsage(cpuBefore)
      const paidIntervals = Number((leases.reduce((sum, l) => sum + l.paid, 0n) - paidBefore) / amount)
      const packets = server.uplink.packetsSent + server.uplink.packetsReceived - packetsBefore
      runs.push({
        leases: count,
        intervalMs,
        openSeconds,
        seconds,
        paidIntervals,
        expectedIntervals: Math.floor((leases.length * seconds * 1000) / intervalMs),
        packetsPerInterval: packets / Math.max(1, paidIntervals),
        cpuMsPerInterval: (cpu.user + cpu.system) / 1000 / Math.max(1, paidIntervals),
        heapKiBPerLease,
        stopped: leases.filter((l) => l.status !== 'active').length,
        failed,
      })
      await Promise.all(leases.map((l) => l.end()))
    } finally {
      await host.close()
      await payer.close()
      await server.close()
      await testnet.close()
    }
  }
  return runs
}

export function printLeases(runs: LeaseRun[]): void {
  console.log('\nleases: many leases on one host, one payer (real testnet; hub, host and payer in this process)')
  console.log('| leases | interval (ms) | open all (s) | paid / expected intervals | packets/interval | CPU ms/interval | heap KiB/lease | stopped | failed to open |')
  console.log('|--------|---------------|--------------|---------------------------|------------------|-----------------|----------------|---------|----------------|')
  for (const r of runs) {
    console.log(
      `| ${String(r.leases).padStart(6)} | ${String(r.intervalMs).padStart(13)} | ${r.openSeconds.toFixed(2).padStart(12)} | ${`${r.paidIntervals} / ${r.expectedIntervals} (${((100 * r.paidIntervals) / r.expectedIntervals).toFixed(1)}%)`.padStart(25)} | ${r.packetsPerInterval.toFixed(2).padStart(16)} | ${r.cpuMsPerInterval.toFixed(3).padStart(15)} | ${r.heapKiBPerLease.toFixed(1).padStart(14)} | ${String(r.stopped).padStart(7)} | ${String(r.failed).padStart(14)} |`,
    )
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printLeases(
    await benchLeases({ configs: [[10, 100], [100, 100], [500, 100], [1000, 1000]], seconds: Number(process.env.BENCH_LEASE_SECONDS ?? 3) }),
  )
  process.exit(0)
}
