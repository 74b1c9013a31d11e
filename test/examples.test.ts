import { describe, expect, it } from 'vitest'
import { runDemo } from '@cogpay/example-demo'

describe('the README demo', () => {
  it('pays for several requests on the embedded network and the totals agree on both sides', async () => {
    const lines: string[] = []
    const result = await runDemo((line) => lines.push(line))
    expect(result.requests.map((r) => [r.path, r.status, r.spent])).toEqual([
      ['/weather', 200, 100n],
      ['/report/3', 200, 75n],
      ['/report/10', 200, 250n],
      ['/weather', 200, 100n],
      ['/report/4', 'COGPAY_SPEND_LIMIT', 0n],
    ])
    expect(result.spent).toBe(525n)
    expect(result.received).toBe(525n)
    expect(lines.at(-2)).toMatch(/^client spent {4}525 units/)
    expect(lines.at(-1)).toMatch(/^server received 525 units .* in 4 payments over 1 socket\(s\)$/)
  })
})
