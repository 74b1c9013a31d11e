/**
 * A load generator, in a process of its own: HTTP clients (undici, the very copy @cogpay/fetch
 * uses), paying ones through payFetch with a payer from @cogpay/ilp, the floor's ILP sender, and
 * the payer side of the metered and lease runs.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http'
import { createRequire } from 'node:module'
import type { PaymentHeaders } from '@cogpay/core'
import { createPayer, type Payer, type PendingPayment } from '@cogpay/ilp'
import { createPayFetch, getPayment, type FetchFunction, type PayFetch } from '@cogpay/fetch'
import { FloorSender } from './floor.ts'
import { serve } from './serve.ts'
import { concurrently, errorText, now, sequential, stats, type Bounds, type Stats, type Throughput } from './stats.ts'

interface UndiciAgent {
  close(): Promise<void>
}
interface Undici {
  Agent: new (options?: { connections?: number; pipelining?: number }) => UndiciAgent
  fetch(input: string | URL, init?: RequestInit & { dispatcher?: UndiciAgent }): Promise<Response>
}
// undici is @cogpay/fetch's dependency, not the root's: load that very copy.
const undici = createRequire(new URL('../packages/fetch/package.json', import.meta.url))('undici') as Undici

/** A fetch bound to one undici Agent (one keep-alive connection pool). */
const fetchVia =
  (agent: UndiciAgent): FetchFunction =>
  (input, init) =>
    undici.fetch(input, { ...init, dispatcher: agent })

/** The price of `/paid` (bench/app.ts), and each paid client's cap. */
const PRICE = 100n
const MAX_SPEND = 1000n

function unpaidRequest(url: string, agent: UndiciAgent): () => Promise<void> {
  const fetch = fetchVia(agent)
  return async () => {
    const response = await fetch(`${url}/free`)
    const body = await response.text()
    if (response.status !== 200) throw new Error(`unpaid: ${response.status} ${body}`)
  }
}

function paidRequest(url: string, payFetch: PayFetch): () => Promise<void> {
  return async () => {
    const response = await payFetch(`${url}/paid`)
    const body = await response.text()
    if (response.status !== 200) throw new Error(`paid: ${response.status} ${body}`)
    const spent = getPayment(response)?.spent
    if (spent !== PRICE) throw new Error(`paid: spent ${spent}, expected ${PRICE}`)
  }
}

/** What this process opened, closed when it exits or a phase ends. */
const payers = new Set<Payer>()
const agents = new Set<UndiciAgent>()
const newAgent = () => {
  const agent = new undici.Agent()
  agents.add(agent)
  return agent
}
const startPayer = async (uri: string, options: { maxStreamsPerServer?: number } = {}) => {
  const payer = createPayer({ uplink: uri, ...options })
  payers.add(payer)
  await payer.start()
  return payer
}
async function closeAll(): Promise<void> {
  const closing = [...payers].map((payer) => payer.close())
  const closingAgents = [...agents].map((agent) => agent.close())
  payers.clear()
  agents.clear()
  await Promise.race([Promise.allSettled([...closing, ...closingAgents]), new Promise((resolve) => setTimeout(resolve, 10_000))])
}

let floor: FloorSender | undefined
let warmPaid: (() => Promise<void>) | undefined
let warmPayer: Payer | undefined
let throughputClients: Array<() => Promise<void>> = []
let meteredPayer: Payer | undefined
let metered: PendingPayment | undefined
let leasePayer: Payer | undefined
let leasePending: PendingPayment[] = []
const LEASE_ORIGIN = 'http://leases.bench'

const commands = serve(
  {
    async floorConnect(arg: { uri: string; destination: string }): Promise<void> {
      floor = await FloorSender.connect(arg.uri, arg.destination)
    },
    floorSequential(arg: { bounds: Bounds }): Promise<Stats> {
      if (!floor) throw new Error('loadgen: floorConnect first')
      return floor.sequential(arg.bounds)
    },
    floorInFlight(arg: { inFlight: number; durationMs: number }) {
      if (!floor) throw new Error('loadgen: floorConnect first')
      return floor.inFlight(arg)
    },
    async floorClose(): Promise<void> {
      await floor?.close()
      floor = undefined
    },

    /** Unpaid HTTP with the cheapest client there is: node:http on one keep-alive socket. */
    async httpFloor(arg: { url: string; bounds: Bounds }): Promise<Stats> {
      const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 })
      try {
        return await sequential(
          () =>
            new Promise<void>((resolve, reject) => {
              httpRequest(`${arg.url}/free`, { agent }, (res) => {
                res.resume()
                res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`floor http: ${res.statusCode}`))))
                res.on('error', reject)
              })
                .on('error', reject)
                .end()
            }),
          arg.bounds,
        )
      } finally {
        agent.destroy()
      }
    },

    /** Warm unpaid: one client, one keep-alive connection (undici, as payFetch uses). */
    async warmUnpaid(arg: { url: string; bounds: Bounds }): Promise<Stats> {
      const agent = newAgent()
      try {
        return await sequential(unpaidRequest(arg.url, agent), arg.bounds)
      } finally {
        agents.delete(agent)
        await agent.close()
      }
    },

    /** Warm paid, part 1: one payer and one keep-alive connection, warmed by `warmup` paid requests. */
    async warmPaidStart(arg: { url: string; uri: string; warmup: number }): Promise<Stats> {
      warmPayer = await startPayer(arg.uri)
      warmPaid = paidRequest(arg.url, createPayFetch({ payer: warmPayer, maxSpend: MAX_SPEND, fetch: fetchVia(newAgent()) }))
      return sequential(warmPaid, { count: arg.warmup, warmup: 0, maxMs: 60_000 })
    },
    /** Warm paid, part 2: `count` sequential paid requests on that socket. */
    warmPaidRun(arg: { count: number; maxMs: number }): Promise<Stats> {
      if (!warmPaid) throw new Error('loadgen: warmPaidStart first')
      return sequential(warmPaid, { count: arg.count, warmup: 0, maxMs: arg.maxMs })
    },
    async warmPaidStop(): Promise<{ spent: bigint }> {
      const spent = warmPayer?.spent ?? 0n
      if (warmPayer) {
        payers.delete(warmPayer)
        await warmPayer.close()
      }
      warmPayer = undefined
      warmPaid = undefined
      return { spent }
    },

    /**
     * Cold: a new HTTP connection per request; paid also a new payer (its own hub account, a new
     * STREAM connection with its rate probes). The payer's uplink is connected (BTP + IL-DCP) before
     * the clock starts; that time is reported apart.
     */
    async cold(arg: { url: string; unpaid: number; uris: string[]; maxMs: number }): Promise<{
      unpaid: Stats
      paid: Stats
      payerStart: Stats
    }> {
      const unpaidTimes: number[] = []
      let unpaidErrors = 0
      let unpaidError: string | undefined
      let deadline = now() + arg.maxMs
      for (let i = 0; i < arg.unpaid && now() < deadline; i++) {
        const agent = new undici.Agent()
        const start = now()
        try {
          await unpaidRequest(arg.url, agent)()
          unpaidTimes.push(now() - start)
        } catch (err) {
          unpaidErrors++
          unpaidError ??= errorText(err)
        }
        await agent.close()
      }
      const paidTimes: number[] = []
      const startTimes: number[] = []
      let paidErrors = 0
      let paidError: string | undefined
      const coldPayers: Payer[] = []
      deadline = now() + arg.maxMs
      for (const uri of arg.uris) {
        if (now() >= deadline) break
        const agent = new undici.Agent()
        const started = now()
        try {
          const payer = createPayer({ uplink: uri })
          coldPayers.push(payer)
          await payer.start()
          startTimes.push(now() - started)
          const request = paidRequest(arg.url, createPayFetch({ payer, maxSpend: MAX_SPEND, fetch: fetchVia(agent) }))
          const start = now()
          await request()
          paidTimes.push(now() - start)
        } catch (err) {
          paidErrors++
          paidError ??= errorText(err)
        }
        await agent.close()
      }
      // Closed after the loop: each close waits ~100 ms (ilp-protocol-stream's disconnect delay).
      await Promise.race([Promise.allSettled(coldPayers.map((p) => p.close())), new Promise((r) => setTimeout(r, 10_000))])
      return {
        unpaid: stats(unpaidTimes, unpaidErrors, unpaidError),
        paid: stats(paidTimes, paidErrors, paidError),
        payerStart: stats(startTimes),
      }
    },

    /**
     * Throughput, part 1: `clients` clients, each with its own keep-alive connection, paid ones each
     * with its own payer (one hub account per URI). Each makes one request before the clock.
     */
    async throughputStart(arg: { url: string; clients: number; paidUris?: string[] }): Promise<void> {
      const uris = arg.paidUris
      throughputClients = uris
        ? await Promise.all(
            uris.map(async (uri) =>
              paidRequest(arg.url, createPayFetch({ payer: await startPayer(uri), maxSpend: MAX_SPEND, fetch: fetchVia(newAgent()) })),
            ),
          )
        : Array.from({ length: arg.clients }, () => unpaidRequest(arg.url, newAgent()))
      await Promise.all(throughputClients.map((client) => client().catch(() => {})))
    },
    /** Throughput, part 2: every client loops for `durationMs`. */
    throughputRun(arg: { durationMs: number }): Promise<Throughput> {
      return concurrently(throughputClients, arg.durationMs)
    },
    async throughputStop(): Promise<void> {
      throughputClients = []
      await closeAll()
    },

    /** Metered: one payer; each run gets a request of its own with an unreachable cap. */
    async meteredStart(arg: { uri: string }): Promise<void> {
      meteredPayer = await startPayer(arg.uri)
    },
    async meteredExpect(): Promise<PaymentHeaders> {
      if (!meteredPayer) throw new Error('loadgen: meteredStart first')
      metered = await meteredPayer.expect('http://metered.bench', 10n ** 15n)
      return metered.headers
    },
    async meteredFinish(): Promise<bigint> {
      const spent = (await metered?.finish()) ?? 0n
      metered = undefined
      return spent
    },

    /**
     * Leases: one payer, authorized for `count` leases of `amount` every `intervalMs` (with twice
     * that as its rate cap, so that what is measured is the transport, not the token bucket's
     * burst size), and room for 4 streams per lease.
     */
    async leasePayerStart(arg: { uri: string; count: number; amount: bigint; intervalMs: number }): Promise<void> {
      leasePayer = await startPayer(arg.uri, { maxStreamsPerServer: 4 * arg.count })
      leasePayer.authorize(LEASE_ORIGIN, {
        total: 10n ** 15n,
        rate: { amount: 2n * arg.amount * BigInt(arg.count), intervalMs: arg.intervalMs },
      })
    },
    /** The payment headers of `count` requests that each open a lease. */
    async leaseExpect(arg: { count: number }): Promise<PaymentHeaders[]> {
      if (!leasePayer) throw new Error('loadgen: leasePayerStart first')
      const payer = leasePayer
      const pending = await Promise.all(Array.from({ length: arg.count }, () => payer.expect(LEASE_ORIGIN, 0n)))
      leasePending.push(...pending)
      return pending.map((p: PendingPayment) => p.headers)
    },
    /** The requests that opened leases are done (the leases go on). */
    async leaseRequestsDone(): Promise<void> {
      await Promise.all(leasePending.map((p) => p.finish(0)))
      leasePending = []
    },
    async leasePayerStop(): Promise<{ spent: bigint }> {
      const spent = leasePayer?.spent ?? 0n
      if (leasePayer) {
        payers.delete(leasePayer)
        await leasePayer.close()
      }
      leasePayer = undefined
      return { spent }
    },
  },
  closeAll,
)

export type LoadgenCommands = typeof commands
