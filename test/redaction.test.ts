import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { createPayer, createPaymentServer, parseUplinkUri } from '@cogpay/ilp'

const SECRET = 'hunter2-uplink-secret'
const cli = fileURLToPath(new URL('../packages/cli/src/bin.ts', import.meta.url))

/** Every string an error carries, its causes included, as a user or a log would see them. */
function everything(err: unknown): string {
  const parts: string[] = []
  for (let e = err as { message?: unknown; stack?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    parts.push(String(e.message), String(e.stack), JSON.stringify(e))
  }
  return parts.join('\n')
}

function runCli(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    child.stdout.on('data', (chunk: Buffer) => (output += chunk))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk))
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

describe('uplink secrets never appear in errors or output', () => {
  it.each([
    ['no host', `btp+ws://alice:${SECRET}@`],
    ['not a URL', `btp+ws://alice:${SECRET}@[::1`],
    ['a scheme that is not BTP', `https://alice:${SECRET}@127.0.0.1:7768`],
  ])('an uplink with %s: the COGPAY_INVALID_OPTIONS error names the problem, not the secret', (_name, uri) => {
    for (const make of [() => parseUplinkUri(uri), () => createPayer({ uplink: uri }), () => createPaymentServer({ uplink: uri })]) {
      let error: unknown
      try {
        make()
      } catch (err) {
        error = err
      }
      expect(error).toMatchObject({ code: 'COGPAY_INVALID_OPTIONS' })
      expect(everything(error)).not.toContain(SECRET)
      expect((error as Error).message).toContain('alice')
    }
  })

  it('an uplink that does not answer: the payer and the payment server fail with 503 and no secret', async () => {
    const uri = `btp+ws://alice:${SECRET}@127.0.0.1:1`
    const payer = createPayer({ uplink: uri, connectTimeoutMs: 300 })
    const server = createPaymentServer({ uplink: uri, connectTimeoutMs: 300 })
    try {
      const errors = await Promise.all([payer.start().catch((err: unknown) => err), server.uplink.connect().catch((err: unknown) => err)])
      for (const error of errors) {
        expect(error).toMatchObject({ code: 'COGPAY_UPLINK_UNAVAILABLE' })
        expect(everything(error)).not.toContain(SECRET)
      }
    } finally {
      await payer.close()
      await server.close()
    }
  })

  it('the CLI prints no uplink secret, whatever fails', async () => {
    for (const uplink of [`btp+ws://alice:${SECRET}@`, `btp+ws://alice:${SECRET}@127.0.0.1:1`]) {
      const { code, output } = await runCli(['fetch', 'http://127.0.0.1:1/x', '--max', '10', '--uplink', uplink])
      expect(code).not.toBe(0)
      expect(output).toContain('cogpay:')
      expect(output).not.toContain(SECRET)
    }
  }, 30_000)
})
