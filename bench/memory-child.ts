/**
 * One side of the memory benchmark, in a process of its own so that its heap holds only that
 * side: `server` (one PaymentServer, no HTTP) or `payers` (a few payers). bench/run.ts forks both
 * and relays the payment headers between them; the hub is the bench's hub process.
 *
 * The method: open `count` sockets (the payers issue headers for that many distinct origins, and
 * the server collects 1 unit on each, so each opens one reverse socket and keeps it), then compare
 * each side's heap after a full collection against a baseline taken after a warm-up of 8 sockets.
 *
 *   node --expose-gc --import tsx bench/memory-child.ts server|payers
 */
import { createPaymentServer, createPayer, type PaymentServer, type Payer, type PendingPayment } from '@cogpay/ilp'
import type { PaymentHeaders } from '@cogpay/core'
import { serve } from './serve.ts'
import { errorText, now } from './stats.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

let receiver: PaymentServer | undefined
let payers: Payer[] = []
let pending: PendingPayment[] = []

const serverCommands = {
  async start(arg: { uri: string }): Promise<void> {
    receiver = createPaymentServer({
      uplink: arg.uri,
      // Nothing may be evicted or time out while we count.
      maxSockets: 100_000,
      maxOpening: 512,
      socketIdleMs: 600_000,
      connectTimeoutMs: 30_000,
      paymentTimeoutMs: 30_000,
    })
    await receiver.uplink.connect()
  },
  /** Collects 1 unit on each payment, `concurrency` at a time: one new socket each. */
  async collect(arg: { list: PaymentHeaders[]; concurrency: number }): Promise<{ ok: number; failed: number; ms: number; firstError?: string }> {
    const server = receiver
    if (!server) throw new Error('memory server: not started')
    const started = now()
    let ok = 0
    let failed = 0
    let firstError: string | undefined
    let next = 0
    const worker = async () => {
      while (next < arg.list.length) {
        const payment = arg.list[next++]!
        try {
          await server.collect({ payment, amount: 1n })
          ok++
        } catch (err) {
          failed++
          firstError ??= errorText(err)
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(arg.concurrency, arg.list.length) }, worker))
    return { ok, failed, ms: now() - started, ...(firstError ? { firstError } : {}) }
  },
  sockets: (): number => receiver?.socketCount ?? 0,
}

const payerCommands = {
  async start(arg: { uris: string[] }): Promise<void> {
    payers = arg.uris.map((uri) => createPayer({ uplink: uri, maxOrigins: 100_000 }))
    await Promise.all(payers.map((p) => p.start()))
  },
  /** Payment headers for `count` distinct origins (distinct credentials: one socket each). */
  async issue(arg: { prefix: string; count: number }): Promise<PaymentHeaders[]> {
    const issued: PendingPayment[] = []
    for (let i = 0; i < arg.count; i++) issued.push(await payers[i % payers.length]!.expect(`http://${arg.prefix}${i}`, 10n))
    pending.push(...issued)
    return issued.map((p) => p.headers)
  },
  async finish(): Promise<bigint> {
    await Promise.all(pending.map((p) => p.finish(2000)))
    pending = []
    return payers.reduce((sum, p) => sum + p.spent, 0n)
  },
}

if (process.argv[2] === 'server') {
  serve(serverCommands, async () => {
    await Promise.race([receiver?.close(), sleep(2000)])
  })
} else {
  serve(payerCommands, async () => {
    await Promise.race([Promise.allSettled(payers.map((p) => p.close())), sleep(2000)])
  })
}

export type MemoryServerCommands = typeof serverCommands
export type MemoryPayersCommands = typeof payerCommands
