import { Meter } from '@cogpay/core'
import { createPayer, createPaymentServer } from '@cogpay/ilp'
import { startTestnet } from '@cogpay/testnet'

/** One metered run: charge `step` units repeatedly on one request for `durationMs` (or `maxSteps`). */
interface MeteredRun {
  step: bigint
  ahead: bigint
  steps: number
  seconds: number
  stepsPerSecond: number
  packetsPerStep: number
  meanStepMs: number
}

/**
 * Charge steps per second on one request, over the real testnet and a real payer: the server's
 * side is a Meter on a PaymentServer stream, exactly what meteredRoute gives a handler (without
 * HTTP). Packets are counted at the server's uplink, both directions.
 */
export async function benchMetered(options: { durationMs: number; maxSteps: number }): Promise<MeteredRun[]> {
  const testnet = await startTestnet()
  const receiver = createPaymentServer({ uplink: testnet.uri('metered') })
  const payer = createPayer({ uplink: testnet.uri('payer') })
  await Promise.all([receiver.uplink.connect(), payer.start()])
  const configs: [bigint, bigint][] = [
    [1n, 0n],
    [10n, 0n],
    [1000n, 0n],
    [1n, 10n],
    [10n, 100n],
    [1000n, 10_000n],
  ]
  const runs: MeteredRun[] = []
  try {
    for (const [step, ahead] of configs) {
      const pending = await payer.expect('http://metered.bench', 10n ** 15n)
      const stream = await receiver.open({ payment: pending.headers })
      const meter = new Meter(stream, { ahead })
      await meter.charge(step) // warm: the first step includes the hello round trip
      const packetsBefore = receiver.uplink.packetsSent + receiver.uplink.packetsReceived
      const started = performance.now()
      let steps = 0
      while (steps < options.maxSteps && performance.now() - started < options.durationMs) {
        await meter.charge(step)
        steps++
      }
      const seconds = (performance.now() - started) / 1000
      const packets = receiver.uplink.packetsSent + receiver.uplink.packetsReceived - packetsBefore
      meter.finish()
      await pending.finish()
      runs.push({
        step,
        ahead,
        steps,
        seconds,
        stepsPerSecond: steps / seconds,
        packetsPerStep: packets / steps,
        meanStepMs: (seconds * 1000) / steps,
      })
    }
  } finally {
    await payer.close()
    await receiver.close()
    await testnet.close()
  }
  return runs
}

/** Prints the metered table. */
export function printMetered(runs: MeteredRun[]): void {
  console.log('\nmetered work: charge steps on one request (server Meter, real payer, real testnet)')
  console.log('| step (units) | ahead (units) | steps | steps/s | packets/step | mean ms/step |')
  console.log('|--------------|---------------|-------|---------|--------------|--------------|')
  for (const r of runs) {
    console.log(
      `| ${String(r.step).padStart(12)} | ${String(r.ahead).padStart(13)} | ${String(r.steps).padStart(5)} | ${r.stepsPerSecond.toFixed(0).padStart(7)} | ${r.packetsPerStep.toFixed(2).padStart(12)} | ${r.meanStepMs.toFixed(3).padStart(12)} |`,
    )
  }
  const at = (step: bigint, ahead: bigint) => runs.find((r) => r.step === step && r.ahead === ahead)
  const strict = at(1n, 0n)
  const windowed = at(1n, 10n)
  if (strict && windowed) {
    console.log(
      `added latency per step, ahead=0 vs ahead=10 steps (step 1): ${strict.meanStepMs.toFixed(3)} ms vs ${windowed.meanStepMs.toFixed(3)} ms (${(strict.meanStepMs - windowed.meanStepMs).toFixed(3)} ms per step)`,
    )
    const best = Math.max(...runs.filter((r) => r.ahead > 0n).map((r) => r.stepsPerSecond))
    console.log(`target: >= 2,000 steps/s on one request with a prepay window: best ${best.toFixed(0)} steps/s, ${best >= 2000 ? 'met' : 'NOT met'}`)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printMetered(await benchMetered({ durationMs: 2000, maxSteps: 20_000 }))
}
