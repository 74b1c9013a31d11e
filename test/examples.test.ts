import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { startHost } from '@cogpay/example-hosting'
import { createPayFetch } from '@cogpay/fetch'
import { startTestnet } from '@cogpay/testnet'
import { sleep } from './support/wait.ts'
import { runDemo } from '@cogpay/example-demo'
import { runTranscodeDemo } from '@cogpay/example-demo/transcode'
import { runHostingDemo } from '@cogpay/example-demo/hosting'

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

describe('the transcode demo (npm run demo -- transcode)', () => {
  it('pays per second of output within budget, and stops at a small budget', async () => {
    const lines: string[] = []
    const { full, capped } = await runTranscodeDemo((line) => lines.push(line))
    expect(full).toBeGreaterThanOrEqual(2800n)
    expect(full).toBeLessThanOrEqual(3200n)
    expect(capped).toBeLessThanOrEqual(1000n)
    expect(lines.some((line) => /^budget 5000: 200, \d+ bytes of H\.264 MP4/.test(line))).toBe(true)
    expect(lines.some((line) => line.startsWith('budget 1000: stopped (COGPAY_CAP_TOO_LOW)'))).toBe(true)
    // Spend was reported as it happened, not only at the end.
    expect(lines.filter((line) => line.startsWith('  budget 5000: paid')).length).toBeGreaterThan(5)
  })
})

describe('the hosting demo (npm run demo -- hosting)', () => {
  it('bills a running script, kills it on revoke and at a per-run cap; both sides agree on what moved', async () => {
    const lines: string[] = []
    const { first, capped, hostPaid, killed } = await runHostingDemo((line) => lines.push(line))
    // About 1.2 s at 5 per 250 ms, paid at the start of each interval.
    expect(first).toBeGreaterThanOrEqual(20n)
    expect(first).toBeLessThanOrEqual(40n)
    expect(capped).toBe(15n)
    expect(hostPaid).toBe(first + capped)
    expect(killed).toBe(2)
    expect(lines).toContain('its app says: hello from a paid process')
    expect(lines.some((line) => /^revoked: the host stopped the run \(COGPAY_AUTHORIZATION_REVOKED\)/.test(line))).toBe(true)
    expect(lines.at(-1)).toBe(`moved: client paid ${first + capped}, host received ${hostPaid} (XRP, scale 9)`)
  })
})

/** The script's answer through the host's proxy, once it listens (polled, at most 5 s). */
async function appAnswer(url: string): Promise<string | undefined> {
  for (let i = 0; i < 100; i++) {
    const answer = await fetch(url).catch(() => undefined)
    if (answer?.ok) return answer.text()
    await sleep(50)
  }
  return undefined
}

describe('the hosting example (examples/hosting)', () => {
  it('starts a host that bills a deployed script and answers through its proxy, and resumes it after a restart', async () => {
    const testnet = await startTestnet()
    const dir = await mkdtemp(join(tmpdir(), 'cogpay-example-host-'))
    const payFetch = createPayFetch({ uplink: testnet.uri('client'), maxSpend: 0n })
    let host = await startHost({ uplink: testnet.uri('host'), dir, ratePerSecond: 10n })
    try {
      payFetch.payer.authorize(host.url, { total: 1000n, rate: { amount: 10n, intervalMs: 1000 } })
      const script = `require('node:http').createServer((req, res) => res.end('up')).listen(process.env.PORT)`
      const deployed = await payFetch(`${host.url}/run`, { method: 'POST', body: script })
      expect(deployed.status).toBe(201)
      const { id } = (await deployed.json()) as { id: string }
      expect(await appAnswer(`${host.url}/run/${id}/app/`)).toBe('up')
      expect(payFetch.payer.leases()[0]).toMatchObject({ id, spent: 10n, status: 'active' })
      // Same folder, new process: the run is found again and its script restarted.
      const port = Number(new URL(host.url).port)
      await host.close()
      host = await startHost({ uplink: testnet.uri('host'), dir, port, ratePerSecond: 10n })
      expect([...host.hosting.runs.keys()]).toEqual([id])
      expect(await appAnswer(`${host.url}/run/${id}/app/`)).toBe('up')
    } finally {
      await host.close()
      await payFetch.payer.close()
      await testnet.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
