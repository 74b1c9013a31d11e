import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeFile } from 'node:fs/promises'
import { createApp } from '@cogpay/example-express-basic'
import { createHosting } from '@cogpay/hosting'
import { createLeaseHost } from '@cogpay/ilp'
import { listen, startNetwork, type Network } from './support/network.ts'

const cli = fileURLToPath(new URL('../packages/cli/src/bin.ts', import.meta.url))

/** Runs the CLI; resolves with its exit code and output. Killed after `timeoutMs`. */
function run(args: string[], options: { timeoutMs?: number; until?: RegExp } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000)
    let interrupted = false
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk
      // Once: a second Ctrl-C is a forced exit, as in any CLI.
      if (!interrupted && options.until?.test(stdout)) {
        interrupted = true
        child.kill('SIGINT')
      }
    })
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

describe('cogpay CLI', () => {
  let net: Network
  let app: Awaited<ReturnType<typeof listen>>
  beforeAll(async () => {
    net = await startNetwork()
    app = await listen(createApp({ receiver: net.receiver }))
  })
  afterAll(async () => {
    await app.close()
    await net.close()
  })

  it('cogpay fetch pays for a URL and prints what it spent', async () => {
    const before = net.receiver.received
    const { code, stdout, stderr } = await run(['fetch', `${app.url}/weather`, '--max', '200', '--uplink', net.testnet.uri('cli')])
    expect(stderr).toContain('spent 100 of max 200')
    expect(code).toBe(0)
    expect(JSON.parse(stdout)).toEqual({ forecast: 'sunny', paid: '100' })
    expect(net.receiver.received - before).toBe(100n)
  })

  it('cogpay fetch --progress reports spend as the metered work proceeds, and saves the body with -o', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'cogpay-cli-')), 'body.txt')
    const { code, stderr } = await run([
      'fetch', `${app.url}/stream/5`, '--max', '100', '--uplink', net.testnet.uri('cli'), '--progress', '-o', out,
    ])
    expect(code, stderr).toBe(0)
    const lines = stderr.split('\n').filter((line) => line.startsWith('cogpay: spent '))
    const reports = lines.map((line) => /^cogpay: spent (\d+) of 100; server asks (\d+)$/.exec(line))
    expect(reports.map((r) => Number(r?.[1]))).toEqual([7, 14, 21, 28, 35])
    // The server's progress: what it asks is what it charged, at most one chunk ahead of the spend.
    for (const r of reports) expect(Number(r?.[2]) - Number(r?.[1])).toBeGreaterThanOrEqual(0)
    for (const r of reports) expect(Number(r?.[2]) - Number(r?.[1])).toBeLessThanOrEqual(7)
    expect(stderr).toContain('spent 35 of max 100')
    expect((await readFile(out, 'utf8')).trim().split('\n')).toHaveLength(5)
  })

  it('cogpay fetch refuses a price above --max with exit code 3', async () => {
    const { code, stderr } = await run(['fetch', `${app.url}/weather`, '--max', '50', '--uplink', net.testnet.uri('cli')])
    expect(code).toBe(3)
    expect(stderr).toContain('costs 100, above --max 50; spent 0')
  })

  it('cogpay fetch says why a request failed: the cause (ECONNREFUSED), not just "fetch failed"', async () => {
    // A port that was free a moment ago: nothing listens there.
    const closed = await listen(createApp({ receiver: net.receiver }))
    const port = new URL(closed.url).port
    await closed.close()
    const { code, stderr } = await run(['fetch', `http://127.0.0.1:${port}/x`, '--max', '10', '--uplink', net.testnet.uri('cli')])
    expect(code).toBe(1)
    expect(stderr).toContain(`cogpay: fetch failed: connect ECONNREFUSED 127.0.0.1:${port}`)
  })

  it('cogpay fetch without --max is a usage error', async () => {
    const { code, stderr } = await run(['fetch', `${app.url}/weather`])
    expect(code).toBe(2)
    expect(stderr).toContain('--max is required')
  })

  it('cogpay hub runs a network until interrupted', async () => {
    const { code, stdout } = await run(['hub', '--port', '0'], { until: /Ctrl-C to stop/ })
    expect(stdout).toMatch(/ILP connector on btp\+ws:\/\/127\.0\.0\.1:\d+ \(XRP, scale 9\)/)
    expect(code).toBe(0)
  })

  it('cogpay host run deploys a script, shows live spend, and stops it cleanly on Ctrl-C', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cogpay-cli-host-'))
    const script = join(dir, 'worker.js')
    await writeFile(script, "setInterval(() => console.log('working'), 50)\n")
    const pids: number[] = []
    const hosting = createHosting({
      host: createLeaseHost({ paymentServer: net.receiver, graceMs: 500 }),
      ratePerSecond: 100n,
      intervalMs: 100,
      runsDir: dir,
      observer: { onSpawn: (run) => pids.push(run.pid!) },
    })
    const server = await listen(hosting.app)
    try {
      const { code, stdout } = await run(
        ['host', 'run', script, '--url', server.url, '--max-rate', '100/s', '--max', '5000', '--uplink', net.testnet.uri('cli')],
        { until: /paid 30 of 5000/ },
      )
      expect(stdout).toMatch(/running .*worker\.js at http:\/\/127\.0\.0\.1:\d+\/run\/[\w-]{22}/)
      expect(stdout).toContain('paid 20 of 5000')
      expect(stdout).toContain('stopped the run (host answered 200)')
      const paid = /lease ended; paid (\d+) of max 5000 \(XRP, scale 9\)/.exec(stdout)
      expect(paid).not.toBeNull()
      expect(code).toBe(0)
      const [hosted] = [...hosting.runs.values()]
      expect(hosted?.status).toBe('stopped')
      expect(hosted?.lease.paid).toBe(BigInt(paid![1]!))
      expect(pids).toHaveLength(1)
      // Gone (killed at the DELETE, and reaped), within a bounded wait.
      const gone = () => {
        try {
          process.kill(pids[0]!, 0)
          return false
        } catch {
          return true
        }
      }
      for (let i = 0; i < 100 && !gone(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
      expect(gone()).toBe(true)
    } finally {
      await hosting.close()
      await server.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('cogpay host serve + host run: a host restarted in between resumes the run, and Ctrl-C ends it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cogpay-cli-serve-'))
    const script = join(dir, 'worker.js')
    await writeFile(script, "setInterval(() => console.log('working'), 50)\n")
    /** Starts a long-running CLI command; resolves once its output matches `ready`. */
    const start = (args: string[], ready: RegExp) => {
      const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      const out = { text: '' }
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
      const started = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not ready: ${out.text}`)), 20_000)
        const onData = (chunk: Buffer) => {
          out.text += chunk
          if (ready.test(out.text)) {
            clearTimeout(timer)
            resolve()
          }
        }
        child.stdout.on('data', onData)
        child.stderr.on('data', onData)
      })
      return { child, out, exited, started }
    }
    const serve = (port: string) =>
      start(['host', 'serve', '--port', port, '--dir', join(dir, 'host'), '--rate', '10/100ms', '--grace-ms', '1000', '--uplink', net.testnet.uri('host')], /Ctrl-C to stop/)
    const first = serve('0')
    const children = [first.child]
    try {
      await first.started
      const url = /hosting API on (http:\/\/127\.0\.0\.1:\d+)/.exec(first.out.text)![1]!
      const port = new URL(url).port
      const client = start(['host', 'run', script, '--url', url, '--max-rate', '100/s', '--max', '5000', '--uplink', net.testnet.uri('cli')], /paid 30 of 5000/)
      children.push(client.child)
      await client.started
      first.child.kill('SIGINT')
      expect(await first.exited).toBe(0)
      const paidWhileDown = /paid (\d+) of 5000\n$/.exec(client.out.text)?.[1]
      // The same port and directory: the run resumes where it was.
      const second = serve(port)
      children.push(second.child)
      await second.started
      expect(second.out.text).toContain('1 run(s) resumed')
      const before = client.out.text.length
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no payment after the restart: ${client.out.text}`)), 10_000)
        const check = setInterval(() => {
          if (/paid \d+ of 5000/.test(client.out.text.slice(before))) {
            clearTimeout(timer)
            clearInterval(check)
            resolve()
          }
        }, 20)
      })
      client.child.kill('SIGINT')
      expect(await client.exited).toBe(0)
      expect(client.out.text).toContain('stopped the run (host answered 200)')
      const final = /lease ended; paid (\d+) of max 5000/.exec(client.out.text)
      expect(final).not.toBeNull()
      expect(BigInt(final![1]!) > BigInt(paidWhileDown ?? '0')).toBe(true)
      second.child.kill('SIGINT')
      expect(await second.exited).toBe(0)
    } finally {
      for (const child of children) child.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('cogpay host run with a rate the host exceeds is refused with exit code 3', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cogpay-cli-host-'))
    const script = join(dir, 'worker.js')
    await writeFile(script, "console.log('hi')\n")
    const hosting = createHosting({ host: createLeaseHost({ paymentServer: net.receiver }), ratePerSecond: 100n, intervalMs: 100, runsDir: dir })
    const server = await listen(hosting.app)
    try {
      const { code, stderr } = await run([
        'host', 'run', script, '--url', server.url, '--max-rate', '5/s', '--max', '5000', '--uplink', net.testnet.uri('cli'),
      ])
      expect(stderr).toContain('COGPAY_RATE_TOO_HIGH')
      expect(code).toBe(3)
      expect(hosting.runs.size).toBe(0)
    } finally {
      await hosting.close()
      await server.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('cogpay host run with a malformed --max-rate is a usage error', async () => {
    const { code, stderr } = await run(['host', 'run', 'x.js', '--url', 'http://127.0.0.1:1', '--max-rate', 'ten', '--max', '5'])
    expect(code).toBe(2)
    expect(stderr).toContain('is not <amount>/<interval>')
  })
})

describe('cogpay host run --max-rate', () => {
  it('parses <amount>/<interval> with s, ms, min and an optional count', async () => {
    const { parseRate } = await import('../packages/cli/src/main.ts')
    expect(parseRate('10/s')).toEqual({ amount: 10n, intervalMs: 1000 })
    expect(parseRate('5/500ms')).toEqual({ amount: 5n, intervalMs: 500 })
    expect(parseRate('60/min')).toEqual({ amount: 60n, intervalMs: 60_000 })
    expect(parseRate('18446744073709551615/2s')).toEqual({ amount: 18446744073709551615n, intervalMs: 2000 })
    for (const bad of ['10', '10/', '/s', '0/s', '10/0s', '-1/s', '1.5/s', '10/h', '10/s/s']) {
      expect(() => parseRate(bad), bad).toThrow()
    }
  })
})
