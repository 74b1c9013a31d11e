/**
 * One side of the memory benchmark, in a process of its own so that its heap holds only that
 * side: `server` (one PaymentServer) or `payers` (a few payers). bench/run.ts forks both with
 * --expose-gc and relays between them over IPC; the testnet stays in the parent.
 *
 *   node --expose-gc --import tsx bench/memory-child.ts server|payers <btp uri>...
 */
import { Buffer } from 'node:buffer'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { createPaymentServer, createPayer, type Payer, type PendingPayment } from '@cogpay/ilp'

export interface WireHeaders {
  address: string
  secret: string
  requestId: string
}

export type ToChild =
  | { cmd: 'issue'; prefix: string; count: number }
  | { cmd: 'collect'; list: WireHeaders[]; concurrency: number }
  | { cmd: 'finish' }
  | { cmd: 'measure' }
  | { cmd: 'exit' }

export type FromChild =
  | { type: 'ready' }
  | { type: 'headers'; list: WireHeaders[] }
  | { type: 'collected'; ok: number; failed: number; ms: number; firstError?: string }
  | { type: 'finished'; spent: string }
  | { type: 'memory'; heapUsed: number; rss: number; external: number; arrayBuffers: number; gc: string; sockets?: number }
  | { type: 'error'; message: string }

/** A full garbage collection, by whatever means this process has. */
export function findGc(): { run: () => void; how: string } {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed) return { run: exposed, how: '--expose-gc' }
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    return { run: gc, how: 'v8.setFlagsFromString' }
  } catch {
    return { run: () => {}, how: 'none (no gc: figures include garbage)' }
  }
}

const send = (message: FromChild) => process.send?.(message)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function measure(sockets?: number): Promise<FromChild> {
  const gc = findGc()
  // Let the close timers of ended streams run, then collect twice (weak refs, finalizers).
  await sleep(300)
  gc.run()
  await sleep(50)
  gc.run()
  const usage = process.memoryUsage()
  return {
    type: 'memory',
    heapUsed: usage.heapUsed,
    rss: usage.rss,
    external: usage.external,
    arrayBuffers: usage.arrayBuffers,
    gc: gc.how,
    ...(sockets === undefined ? {} : { sockets }),
  }
}

async function server(uri: string): Promise<void> {
  const receiver = createPaymentServer({
    uplink: uri,
    // Nothing may be evicted or time out while we count.
    maxSockets: 100_000,
    maxOpening: 512,
    socketIdleMs: 600_000,
    connectTimeoutMs: 30_000,
    paymentTimeoutMs: 30_000,
  })
  await receiver.uplink.connect()
  process.on('message', async (message: ToChild) => {
    try {
      if (message.cmd === 'collect') {
        const started = performance.now()
        let ok = 0
        let failed = 0
        let firstError: string | undefined
        let next = 0
        const worker = async () => {
          while (next < message.list.length) {
            const h = message.list[next++]!
            try {
              await receiver.collect({
                payment: { address: h.address, secret: Buffer.from(h.secret, 'base64'), requestId: h.requestId },
                amount: 1n,
              })
              ok++
            } catch (err) {
              failed++
              firstError ??= (err as Error).message
            }
          }
        }
        await Promise.all(Array.from({ length: Math.min(message.concurrency, message.list.length) }, worker))
        send({ type: 'collected', ok, failed, ms: performance.now() - started, ...(firstError ? { firstError } : {}) })
      } else if (message.cmd === 'measure') {
        send(await measure(receiver.socketCount))
      } else if (message.cmd === 'exit') {
        await Promise.race([receiver.close(), sleep(2000)])
        process.exit(0)
      }
    } catch (err) {
      send({ type: 'error', message: (err as Error).message })
    }
  })
  send({ type: 'ready' })
}

async function payers(uris: string[]): Promise<void> {
  const list: Payer[] = uris.map((uri) => createPayer({ uplink: uri, maxOrigins: 100_000 }))
  await Promise.all(list.map((p) => p.start()))
  let pending: PendingPayment[] = []
  process.on('message', async (message: ToChild) => {
    try {
      if (message.cmd === 'issue') {
        const issued: PendingPayment[] = []
        for (let i = 0; i < message.count; i++) {
          // Distinct origins get distinct credentials, so the server opens one socket for each.
          issued.push(await list[i % list.length]!.expect(`http://${message.prefix}${i}`, 10n))
        }
        pending.push(...issued)
        send({
          type: 'headers',
          list: issued.map((p) => ({
            address: p.headers.address,
            secret: Buffer.from(p.headers.secret).toString('base64'),
            requestId: p.headers.requestId,
          })),
        })
      } else if (message.cmd === 'finish') {
        await Promise.all(pending.map((p) => p.finish(2000)))
        pending = []
        send({ type: 'finished', spent: list.reduce((sum, p) => sum + p.spent, 0n).toString() })
      } else if (message.cmd === 'measure') {
        send(await measure())
      } else if (message.cmd === 'exit') {
        await Promise.race([Promise.allSettled(list.map((p) => p.close())), sleep(2000)])
        process.exit(0)
      }
    } catch (err) {
      send({ type: 'error', message: (err as Error).message })
    }
  })
  send({ type: 'ready' })
}

const [role, ...uris] = process.argv.slice(2)
if (role === 'server') await server(uris[0]!)
else if (role === 'payers') await payers(uris)
