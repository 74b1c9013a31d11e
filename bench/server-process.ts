/**
 * The paid HTTP server, in a process of its own: an Express app (bench/app.ts: `/free` and, through
 * @cogpay/express's paidRoute, `/paid` at 100 units) on a PaymentServer from @cogpay/ilp. The same
 * process holds the floor's ILP receiver, the server side of the metered runs (a Meter) and the
 * lease host, so that every figure crosses the same hops.
 */
import express, { type NextFunction, type Request, type Response } from 'express'
import type { PaymentHeaders } from '@cogpay/core'
import { createPaymentServer, type IlpPlugin, type PaymentServer } from '@cogpay/ilp'
import { listen } from './listen.ts'
import { createBenchApp } from './app.ts'
import { startFloorReceiver } from './floor.ts'
import { LeaseBench } from './leases.ts'
import { runMeter } from './metered.ts'
import { serve } from './serve.ts'

let receiver: PaymentServer | undefined
let http: Awaited<ReturnType<typeof listen>> | undefined
let floor: IlpPlugin | undefined
let leaseReceiver: PaymentServer | undefined
let leases: LeaseBench | undefined

const started = (): PaymentServer => {
  if (!receiver) throw new Error('server: not started')
  return receiver
}

const commands = serve(
  {
    /** Connects the payment server to the hub and listens for HTTP on 127.0.0.1:0. */
    async start(arg: { uplink: string }): Promise<{ url: string }> {
      receiver = createPaymentServer({ uplink: arg.uplink })
      await receiver.uplink.connect()
      const app = express()
      app.use(createBenchApp({ receiver }))
      // Errors (502s) are counted by the clients: answer them quietly instead of with a stack dump.
      app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
        const { status, code, message } = err as { status?: number; code?: string; message?: string }
        res.status(status ?? 500).json({ error: { code, message } })
      })
      http = await listen(app)
      return { url: http.url }
    },
    /** The floor's receiver: a BTP account on the hub that fulfills every Prepare at once. */
    async floorReceiver(arg: { uri: string }): Promise<void> {
      floor = await startFloorReceiver(arg.uri)
    },
    counters(): { socketsOpened: number; socketCount: number; paymentsCollected: number; received: bigint; packets: number } {
      const r = started()
      return {
        socketsOpened: r.socketsOpened,
        socketCount: r.socketCount,
        paymentsCollected: r.paymentsCollected,
        received: r.received,
        packets: r.uplink.packetsSent + r.uplink.packetsReceived,
      }
    },
    meter(arg: { payment: PaymentHeaders; step: bigint; ahead: bigint; durationMs: number; maxSteps: number }) {
      return runMeter(started(), arg)
    },
    /** A lease host on a payment server (and hub account) of its own. */
    async leaseHost(arg: { uplink: string; graceMs: number }): Promise<void> {
      leaseReceiver = createPaymentServer({ uplink: arg.uplink, maxOpening: 1024 })
      await leaseReceiver.uplink.connect()
      leases = new LeaseBench(leaseReceiver, arg.graceMs)
    },
    leaseOpen(arg: { payments: PaymentHeaders[]; amount: bigint; intervalMs: number; concurrency: number }) {
      if (!leases) throw new Error('server: no lease host')
      return leases.open(arg)
    },
    leaseHeapPerLeaseKiB(): number {
      if (!leases) throw new Error('server: no lease host')
      return leases.heapPerLeaseKiB()
    },
    leaseMeasure(arg: { settleMs: number; windowMs: number; notOpened: number }) {
      if (!leases) throw new Error('server: no lease host')
      return leases.measure(arg)
    },
    async leaseClose(): Promise<void> {
      await leases?.close()
      await leaseReceiver?.close()
      leases = undefined
      leaseReceiver = undefined
    },
  },
  async () => {
    await http?.close()
    await leases?.close()
    await Promise.allSettled([receiver?.close(), leaseReceiver?.close(), floor?.disconnect()])
  },
)

export type ServerCommands = typeof commands
