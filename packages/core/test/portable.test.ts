import { runInNewContext } from 'node:vm'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { describe, expect, it } from 'vitest'

/**
 * @cogpay/core's main entry must run outside Node (a browser, an edge runtime), so that a client
 * for those can be added without splitting the package: it is bundled for the browser (which fails
 * on any Node module) and run in a bare V8 context that has only the Web APIs a browser has.
 */
describe('@cogpay/core runs without Node', () => {
  it('bundles for the browser with no Node module, and works in a context with only Web APIs (no Buffer, no process, no require)', async () => {
    const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url))
    const result = await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'browser',
      format: 'iife',
      globalName: 'core',
      write: false,
      logLevel: 'silent',
    })
    const code = result.outputFiles[0]!.text
    expect(code).not.toMatch(/\brequire\(|\bBuffer\.(from|alloc|concat|isBuffer|byteLength)|\bprocess\.(env|pid|on|nextTick|exit)/)
    const context: Record<string, unknown> = {
      TextEncoder,
      TextDecoder,
      atob,
      btoa,
      crypto: globalThis.crypto,
      URL,
      AbortController,
      AbortSignal,
      EventTarget,
      Event,
      setTimeout,
      clearTimeout,
      console,
    }
    runInNewContext(`${code};globalThis.core = core`, context)
    const core = context.core as typeof import('../src/index.ts')
    const secret = new Uint8Array(32).fill(7)
    const sent = core.paymentRequestHeaders({ address: 'test.hub.local.alice', secret, requestId: 'abcdefghijklmnop' })
    const parsed = core.parsePaymentHeaders((name) => Object.entries(sent).find(([key]) => key.toLowerCase() === name)?.[1])
    expect(parsed.type).toBe('valid')
    expect(parsed.type === 'valid' && [...parsed.headers.secret]).toEqual([...secret])
    const hello = core.encodeHello({ v: 1, requestId: 'abcdefghijklmnop', amount: 25n })
    expect(core.decodeHello(hello.subarray(0, -1))).toEqual({ v: 1, requestId: 'abcdefghijklmnop', amount: 25n })
    expect(core.parseAmount('18446744073709551615', 'amount')).toBe(2n ** 64n - 1n)
    const host = new core.LeaseHost({ receiver: { asset: async () => ({ code: 'XRP', scale: 9 }), openLease: async () => { throw new Error('no network here') } } })
    expect(host.leases).toEqual([])
  })
})
