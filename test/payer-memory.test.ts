import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'
import { createPayer, type Payer } from '@cogpay/ilp'

// What a payer costs before it pays anything. A program may make many (an agent per task, a CLI
// run per request), and each one connects nothing until it is started.

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
function heapUsed(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

describe('a payer that has paid nothing', () => {
  it('holds a few KiB, not 375 KiB (its table of finished requests, kept for refunds, was preallocated for 10,000 entries)', async () => {
    const count = 40
    const before = heapUsed()
    const payers: Payer[] = []
    for (let i = 0; i < count; i++) payers.push(createPayer({ uplink: 'btp+ws://payer:secret@127.0.0.1:9' }))
    const perPayerKiB = (heapUsed() - before) / count / 1024
    expect(payers).toHaveLength(count)
    console.log(`heap per payer that paid nothing: ${perPayerKiB.toFixed(1)} KiB`)
    expect(perPayerKiB).toBeLessThan(64)
    await Promise.all(payers.map((payer) => payer.close()))
  })
})
