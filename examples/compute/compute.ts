import { createHash } from 'node:crypto'
import type { Meter } from '@cogpay/core'

/** Price of one step of work, in the server's units. */
export const STEP_PRICE = 7n

/** What a metered run reports, for logs and tests. */
export interface ComputeObserver {
  /** After each step of work, before it is charged. */
  onStep?(state: { step: number; charged: bigint; paid: bigint }): void
  /** When the meter stops (the payer stopped paying); `at` is `performance.now()`. */
  onStop?(state: { code: string; stepsDone: number; charged: bigint; paid: bigint; at: number }): void
}

/**
 * Metered work, the way a transcoder or a job runner does it: do a step, charge for it, go on.
 * With the meter's default `ahead` of 0, each step is paid before the next starts, so at most one
 * step is ever done unpaid. Stops as soon as the meter's signal fires.
 */
/** Steps a request asks for, bounded (1 to 10,000). */
export function stepsFor(requested: number): number {
  return Number.isInteger(requested) && requested > 0 ? Math.min(requested, 10_000) : 1
}

/** The most `requested` steps can cost: a metered route's `maxPrice`. */
export function maxPriceFor(requested: number): bigint {
  return BigInt(stepsFor(requested)) * STEP_PRICE
}

export async function compute(meter: Meter, requested: number, observer: ComputeObserver = {}) {
  const steps = stepsFor(requested)
  let stepsDone = 0
  let digest = createHash('sha256').update('cogpay').digest()
  meter.signal.addEventListener('abort', () => {
    observer.onStop?.({
      code: (meter.signal.reason as { code?: string })?.code ?? 'unknown',
      stepsDone,
      charged: meter.charged,
      paid: meter.paid,
      at: performance.now(),
    })
  })
  try {
    while (stepsDone < steps && !meter.signal.aborted) {
      // One step of work (a few thousand hashes), then yield so the payment can move.
      for (let i = 0; i < 2000; i++) digest = createHash('sha256').update(digest).digest()
      await new Promise((resolve) => setImmediate(resolve))
      stepsDone++
      observer.onStep?.({ step: stepsDone, charged: meter.charged, paid: meter.paid })
      await meter.charge(STEP_PRICE)
    }
  } catch {
    // The meter stopped: its signal says why.
  }
  return {
    stopped: meter.signal.aborted,
    body: {
      steps: stepsDone,
      digest: digest.toString('hex'),
      charged: meter.charged.toString(),
      paid: meter.paid.toString(),
    },
  }
}

/**
 * A paid streaming body: each chunk is charged, and written only once paid, so the server never
 * serves a chunk it was not paid for. Stops writing as soon as the meter's signal fires; the
 * client learns from the payment stream's final message that the body was cut.
 */
export async function streamChunks(
  meter: Meter,
  requested: number,
  write: (chunk: string) => Promise<void>,
  observer: ComputeObserver = {},
): Promise<number> {
  const chunks = Number.isInteger(requested) && requested > 0 ? Math.min(requested, 10_000) : 1
  let written = 0
  meter.signal.addEventListener('abort', () => {
    observer.onStop?.({
      code: (meter.signal.reason as { code?: string })?.code ?? 'unknown',
      stepsDone: written,
      charged: meter.charged,
      paid: meter.paid,
      at: performance.now(),
    })
  })
  try {
    while (written < chunks && !meter.signal.aborted) {
      await meter.charge(STEP_PRICE)
      await write(`chunk ${written + 1} of ${chunks}: ${'x'.repeat(64)}\n`)
      written++
      observer.onStep?.({ step: written, charged: meter.charged, paid: meter.paid })
      // Pace the stream a little, as real work would.
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
  } catch {
    // The meter stopped: its signal says why.
  }
  return written
}
