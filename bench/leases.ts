/**
 * Leases at scale: many leases from one payer, each pulling `amount` every `intervalMs`, on one
 * host (a LeaseHost over a PaymentServer, in the paid server's process); the payer runs in the
 * load generator's process. This file is the host's side, and it clocks every interval.
 *
 * **"Paid on time"**, as measured here: the host asks for interval k when it is due, and it is due
 * one interval after the host asked for the one before (that is how LeaseHost schedules: never
 * while an interval is unpaid, and the next one `intervalMs` after the last ask). Interval k is paid
 * on time when the money for it arrives before interval k+1 is due, i.e. before `due(k) +
 * intervalMs`. Intervals that came due and were never asked for (the host was waiting on an unpaid
 * one for more than an interval, or the lease stopped) count as not paid on time. The percentage is
 * on-time intervals over every interval due in the measured window, across all leases asked for.
 * A payer that falls behind is charged with every interval that passed: the one paid late, and
 * those skipped while the host waited for it. Leases that failed to open count too: every interval of theirs in the
 * window is due and unpaid. The host's own timer lateness (a millisecond or so per interval) shifts
 * the schedule but is not counted against the payer.
 */
import { LeaseHost, MemoryLeaseStore, type Lease, type LeaseRecord, type LeaseStore, type PaymentHeaders } from '@cogpay/core'
import type { PaymentServer } from '@cogpay/ilp'
import { findGc } from './gc.ts'
import { errorText, now, sleep } from './stats.ts'

interface Ask {
  /** The lease's `asked` total with this interval. */
  asked: bigint
  at: number
  paidAt?: number
}

/** A LeaseStore that notes when each interval is asked for (the host writes it just before asking). */
class AskClock implements LeaseStore {
  readonly #inner = new MemoryLeaseStore(1_000_000)
  readonly asks = new Map<string, Ask[]>()
  /** Per lease, the first ask not yet paid (so a payment costs O(intervals it pays), not O(history)). */
  readonly #firstUnpaid = new Map<string, number>()

  get(id: string): Promise<LeaseRecord | undefined> {
    return this.#inner.get(id)
  }
  list(): Promise<LeaseRecord[]> {
    return this.#inner.list()
  }
  async put(record: LeaseRecord): Promise<void> {
    const list = this.asks.get(record.id) ?? []
    if (record.asked > (list.at(-1)?.asked ?? 0n)) list.push({ asked: record.asked, at: now() })
    this.asks.set(record.id, list)
    return this.#inner.put(record)
  }
  /** Money arrived on a lease: every interval it covers is paid now. */
  paid(id: string, total: bigint): void {
    const at = now()
    const asks = this.asks.get(id) ?? []
    let k = this.#firstUnpaid.get(id) ?? 0
    for (; k < asks.length && asks[k]!.asked <= total; k++) asks[k]!.paidAt = at
    this.#firstUnpaid.set(id, k)
  }
}

/** What the leases did in the measured window. */
export interface LeaseWindow {
  leases: number
  intervalMs: number
  seconds: number
  /** Intervals due in the window, over all leases. */
  due: number
  onTime: number
  /** Asked for and paid, but after the next interval was due. */
  paidLate: number
  /** Asked for and not paid by the end of the window (plus one interval). */
  unpaid: number
  /** Came due and were never asked for. */
  skipped: number
  /** Leases that were asked for and did not open: each interval of theirs in the window counts as not paid on time. */
  notOpened: number
  onTimePercent: number
  /** Median and p99 of ask → paid, for intervals that were paid. */
  payP50Ms: number
  payP99Ms: number
  packetsPerInterval: number
  stopped: number
  stopReasons: Record<string, number>
}

/** The host side of the lease bench, in the paid server's process. */
export class LeaseBench {
  readonly #clock = new AskClock()
  readonly #host: LeaseHost
  readonly #receiver: PaymentServer
  readonly #leases: Lease[] = []
  readonly #stopReasons = new Map<string, number>()
  #heapBefore = 0

  constructor(receiver: PaymentServer, graceMs: number) {
    this.#receiver = receiver
    this.#host = new LeaseHost({ receiver, store: this.#clock, graceMs })
    this.#host.on('payment', (lease, paid) => this.#clock.paid(lease.id, paid))
    this.#host.on('stop', (_lease, reason) => this.#stopReasons.set(reason.code, (this.#stopReasons.get(reason.code) ?? 0) + 1))
    const gc = findGc()
    gc.run()
    gc.run()
    this.#heapBefore = process.memoryUsage().heapUsed
  }

  /** Opens a lease for each payer's headers, `concurrency` at a time; each resolves once its first interval is paid. */
  async open(options: {
    payments: PaymentHeaders[]
    amount: bigint
    intervalMs: number
    concurrency: number
  }): Promise<{ opened: number; failed: number; firstError?: string }> {
    let next = 0
    let opened = 0
    let failed = 0
    let firstError: string | undefined
    const worker = async () => {
      while (next < options.payments.length) {
        const payment = options.payments[next++]!
        try {
          this.#leases.push(await this.#host.open(payment, { amount: options.amount, intervalMs: options.intervalMs }))
          opened++
        } catch (err) {
          failed++
          firstError ??= errorText(err)
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(options.concurrency, options.payments.length) }, worker))
    return { opened, failed, ...(firstError === undefined ? {} : { firstError }) }
  }

  /** Heap of this process per open lease (KiB), after a full collection. */
  heapPerLeaseKiB(): number {
    const gc = findGc()
    gc.run()
    gc.run()
    return (process.memoryUsage().heapUsed - this.#heapBefore) / 1024 / Math.max(1, this.#leases.length)
  }

  /**
   * Waits `settleMs`, then measures for `windowMs`; the intervals due in the window are judged one
   * interval after it ends, so that each had its full time to be paid.
   */
  async measure(options: { settleMs: number; windowMs: number; notOpened: number }): Promise<LeaseWindow> {
    await sleep(options.settleMs)
    const intervalMs = this.#leases[0]?.intervalMs ?? 1
    const packetsBefore = this.#receiver.uplink.packetsSent + this.#receiver.uplink.packetsReceived
    const start = now()
    await sleep(options.windowMs)
    const end = now()
    const packets = this.#receiver.uplink.packetsSent + this.#receiver.uplink.packetsReceived - packetsBefore
    await sleep(intervalMs + 100)

    let due = 0
    let onTime = 0
    let paidLate = 0
    let unpaid = 0
    let skipped = 0
    let paidInWindow = 0
    const payTimes: number[] = []
    const inWindow = (t: number) => t >= start && t < end
    for (const lease of this.#leases) {
      const asks = this.#clock.asks.get(lease.id) ?? []
      for (let k = 0; k < asks.length; k++) {
        const ask = asks[k]!
        const previous = asks[k - 1]
        const dueAt = previous ? previous.at + intervalMs : ask.at
        if (previous) {
          // Intervals that came due between the two asks and were never asked for.
          const slots = Math.max(1, Math.round((ask.at - previous.at) / intervalMs))
          for (let j = 2; j <= slots; j++) if (inWindow(previous.at + j * intervalMs)) (due++, skipped++)
        }
        if (ask.paidAt !== undefined && inWindow(ask.paidAt)) paidInWindow++
        if (!inWindow(dueAt)) continue
        due++
        if (ask.paidAt === undefined) unpaid++
        else if (ask.paidAt < dueAt + intervalMs) onTime++
        else paidLate++
        if (ask.paidAt !== undefined) payTimes.push(ask.paidAt - ask.at)
      }
      // After its last ask: every interval that came due in the window and was never asked for.
      const last = asks.at(-1)
      if (last) for (let t = last.at + intervalMs; t < end; t += intervalMs) if (inWindow(t)) (due++, skipped++)
    }
    // Leases that never opened were due every interval too, and none of it was paid.
    const neverOpened = options.notOpened * Math.floor((end - start) / intervalMs)
    due += neverOpened
    payTimes.sort((a, b) => a - b)
    const pick = (p: number) => payTimes[Math.min(payTimes.length - 1, Math.floor((p / 100) * payTimes.length))] ?? NaN
    return {
      leases: this.#leases.length,
      intervalMs,
      seconds: (end - start) / 1000,
      due,
      onTime,
      paidLate,
      unpaid,
      skipped: skipped + neverOpened,
      notOpened: options.notOpened,
      onTimePercent: due === 0 ? 0 : (100 * onTime) / due,
      payP50Ms: pick(50),
      payP99Ms: pick(99),
      packetsPerInterval: packets / Math.max(1, paidInWindow),
      stopped: this.#leases.filter((lease) => lease.status !== 'active').length,
      stopReasons: Object.fromEntries(this.#stopReasons),
    }
  }

  /** Ends every lease and lets go of the host. */
  async close(): Promise<void> {
    await Promise.allSettled(this.#leases.map((lease) => lease.end()))
    await this.#host.close()
  }
}
