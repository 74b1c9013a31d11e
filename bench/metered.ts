/**
 * Metered work: charge steps on one request, as fast as they are paid. The server's side (this
 * file, in the paid server's process) is a Meter on a PaymentServer stream, exactly what
 * meteredRoute gives a handler, without HTTP; the payer is a real payer in the load generator's
 * process, whose headers reach here over IPC.
 */
import { Meter, type PaymentHeaders } from '@cogpay/core'
import type { PaymentServer } from '@cogpay/ilp'
import { now } from './stats.ts'

/** One run: `step` units charged again and again, with a prepay window of `ahead` units. */
export interface MeteredRun {
  step: bigint
  ahead: bigint
  steps: number
  seconds: number
  stepsPerSecond: number
  /** ILP packets through the server's uplink (both directions) per step. */
  packetsPerStep: number
  meanStepMs: number
}

/** The runs the bench makes: three step sizes, each with no window and with a window of 10 steps. */
export const METERED_CONFIGS: ReadonlyArray<{ step: bigint; ahead: bigint }> = [
  { step: 1n, ahead: 0n },
  { step: 10n, ahead: 0n },
  { step: 1000n, ahead: 0n },
  { step: 1n, ahead: 10n },
  { step: 10n, ahead: 100n },
  { step: 1000n, ahead: 10_000n },
]

/** The run results.json reports as "no window" and "window": 1-unit steps, none ahead and 10 ahead. */
export const NO_WINDOW = { step: 1n, ahead: 0n }
export const WINDOW = { step: 1n, ahead: 10n }

/** Charges on the stream `payment` names until `durationMs` or `maxSteps`. */
export async function runMeter(
  receiver: PaymentServer,
  options: { payment: PaymentHeaders; step: bigint; ahead: bigint; durationMs: number; maxSteps: number },
): Promise<MeteredRun> {
  const stream = await receiver.open({ payment: options.payment })
  const meter = new Meter(stream, { ahead: options.ahead })
  try {
    await meter.charge(options.step) // warm: the first step includes the hello round trip
    const packetsBefore = receiver.uplink.packetsSent + receiver.uplink.packetsReceived
    const started = now()
    let steps = 0
    while (steps < options.maxSteps && now() - started < options.durationMs) {
      await meter.charge(options.step)
      steps++
    }
    const seconds = (now() - started) / 1000
    const packets = receiver.uplink.packetsSent + receiver.uplink.packetsReceived - packetsBefore
    return {
      step: options.step,
      ahead: options.ahead,
      steps,
      seconds,
      stepsPerSecond: steps / seconds,
      packetsPerStep: packets / Math.max(1, steps),
      meanStepMs: (seconds * 1000) / Math.max(1, steps),
    }
  } finally {
    meter.finish()
  }
}

/** Prints the metered table. */
export function printMetered(transport: string, runs: readonly MeteredRun[]): void {
  console.log(`\nmetered work (${transport}): charge steps on one request (server Meter in the server process, payer in the load generator)`)
  console.log('| step (units) | ahead (units) | steps | steps/s | packets/step | mean ms/step |')
  console.log('|--------------|---------------|-------|---------|--------------|--------------|')
  for (const r of runs) {
    console.log(
      `| ${String(r.step).padStart(12)} | ${String(r.ahead).padStart(13)} | ${String(r.steps).padStart(5)} | ${r.stepsPerSecond.toFixed(0).padStart(7)} | ${r.packetsPerStep.toFixed(2).padStart(12)} | ${r.meanStepMs.toFixed(3).padStart(12)} |`,
    )
  }
}
