import { Buffer } from 'node:buffer'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const IlpPacket = require('ilp-packet') as typeof import('ilp-packet')
const ILDCP = require('ilp-protocol-ildcp') as typeof import('ilp-protocol-ildcp')

/**
 * An ILP plugin (RFC 24, v2) as cogpay's `createPayer` and `createPaymentServer` accept it, and as
 * ilp-plugin-btp implements it. Declared here so that the testnet depends on no cogpay package.
 */
export interface PluginLike {
  connect(): Promise<void>
  disconnect(): Promise<void>
  isConnected(): boolean
  sendData(data: Buffer): Promise<Buffer>
  sendMoney(amount: string): Promise<void>
  registerDataHandler(handler: (data: Buffer) => Promise<Buffer>): void
  deregisterDataHandler(): void
  registerMoneyHandler?(handler: (amount: string) => Promise<void>): void
  deregisterMoneyHandler?(): void
  on?(event: string, listener: (...args: unknown[]) => void): unknown
  removeListener?(event: string, listener: (...args: unknown[]) => void): unknown
}

/**
 * How often a fault strikes: a probability in `[0, 1]` (drawn from the plugin's seeded generator),
 * or every `every`-th eligible Prepare, at most `times` times in all. `{ every: 1, times: 1 }`
 * strikes the next eligible Prepare and no other.
 */
export type FaultRate = number | { every: number; times?: number }

/** Which packets a fault applies to, seen from the wrapped plugin. */
export type FaultDirection = 'outgoing' | 'incoming' | 'both'

/**
 * The faults a {@link FaultyPlugin} injects. Each Prepare in `direction` (and, with
 * `packets: 'money'`, carrying an amount) meets them in this order: it is delayed, then may be
 * rejected with T04, else dropped, else passed on, and then its Fulfill may be dropped.
 */
export interface Faults {
  /**
   * One-way latency, in ms: each Prepare is held this long before it is passed on, and its answer
   * as long again before it is handed back (a round trip gains twice this). Default `0`.
   */
  delayMs?: number
  /**
   * Answer the Prepare at once with a T04 (insufficient liquidity) Reject triggered by the hub,
   * instead of passing it on: no money moves, and STREAM retries it. Default: never.
   */
  rejectT04?: FaultRate
  /**
   * Lose the Prepare: the other side never sees it and its sender never hears back (see
   * {@link FaultyPluginOptions.responseTimeoutMs}). No money moves. Default: never.
   */
  drop?: FaultRate
  /**
   * Lose the Fulfill on its way back: the receiver has credited the money, the sender never hears
   * so and counts it as not sent. Its amount is added to {@link FaultStats.inDoubt}. Rejects are
   * not dropped. Default: never.
   */
  dropFulfill?: FaultRate
  /**
   * `'outgoing'`: Prepares this plugin sends (`sendData`), and their answers. `'incoming'`:
   * Prepares the hub hands to the registered data handler, and the answers going back to it.
   * Default `'both'`.
   */
  direction?: FaultDirection
  /** `'money'`: only Prepares with an amount above 0 meet a fault. Default `'all'`. */
  packets?: 'all' | 'money'
}

/** What a {@link FaultyPlugin} did in one direction, since it was made. Amounts in the plugin's asset units. */
export interface FaultStats {
  /** Prepares that passed, faulty or not (IL-DCP and other `peer.` packets are not counted). */
  prepares: number
  /** Prepares held by `delayMs`. */
  delayed: number
  /** Prepares answered with T04. */
  rejectedT04: number
  /** Prepares lost. */
  dropped: number
  /** Fulfills lost after the receiver had credited them. */
  fulfillsDropped: number
  /** Prepares fulfilled and delivered to their sender. */
  fulfilled: number
  /** The amounts of the fulfilled Prepares whose Fulfill reached the sender: money that moved, and both sides know it. */
  delivered: bigint
  /** The amounts of the fulfilled Prepares whose Fulfill was lost: money that moved, but its sender does not know. */
  inDoubt: bigint
}

/** Options for {@link faultyPlugin}. */
export interface FaultyPluginOptions {
  /** The faults to start with. Default: none (the plugin passes everything on untouched). */
  faults?: Faults
  /** Seeds the generator behind probabilistic {@link FaultRate}s, so a run can be replayed. Default `1`. */
  seed?: number
  /**
   * How long `sendData` waits for an answer before it rejects with a timeout error, as
   * ilp-plugin-btp does with its `responseTimeout` (`@cogpay/ilp`'s BTP uplink: 5 s). It applies
   * to every outgoing Prepare, faulty or not: it is what a sender whose Prepare or Fulfill was
   * lost sees. Default `5000` ms.
   */
  responseTimeoutMs?: number
  /**
   * The address that triggers the T04 Rejects (the hub's). Default: the testnet's connector
   * address, learned from the IL-DCP answer (`test.hub` for a child `test.hub.local.alice`).
   */
  hubAddress?: string
}

/** The faults of a {@link FaultyPlugin}, changeable while it runs. */
export interface FaultControl {
  /** The faults in force now. */
  readonly current: Readonly<Faults>
  /** Replaces the faults in force (and restarts the `every`/`times` counters). */
  set(faults: Faults): void
  /** No faults from now on: everything passes untouched. Packets already held stay held. */
  clear(): void
}

/** A plugin that passes packets to and from an inner one, injecting {@link Faults}. */
export interface FaultyPlugin extends PluginLike {
  /** The wrapped plugin. */
  readonly inner: PluginLike
  /** The faults in force, and how to change them. */
  readonly faults: FaultControl
  /** What it did to outgoing Prepares (and their answers) and to incoming ones. */
  readonly stats: { readonly outgoing: Readonly<FaultStats>; readonly incoming: Readonly<FaultStats> }
}

type Fault = 'rejectT04' | 'drop' | 'dropFulfill'
/** The faults in force, with the counters of their `every`/`times` rates. */
interface Rules {
  readonly faults: Faults
  readonly counters: Map<Fault, { seen: number; struck: number }>
}
type Direction = 'outgoing' | 'incoming'

/**
 * Wraps an ILP plugin and injects faults at the uplink: latency, T04 rejects and lost packets, in
 * either direction, changeable at run time, reproducible (seeded, or every N-th), and counted.
 * Everything else (connect, money, events) goes straight to the inner plugin. IL-DCP and other
 * `peer.` packets are never faulted, so the plugin always learns its address.
 *
 * A lost packet behaves as on a real network: nobody answers. An outgoing one's `sendData`
 * rejects after `responseTimeoutMs`, as ilp-plugin-btp's does; an incoming one is held until its
 * expiry (the hub has given up by then) and only then answered, with R00.
 */
export function faultyPlugin(inner: PluginLike, options: FaultyPluginOptions = {}): FaultyPlugin {
  const responseTimeoutMs = options.responseTimeoutMs ?? 5000
  if (!Number.isSafeInteger(responseTimeoutMs) || responseTimeoutMs <= 0) {
    throw new RangeError(`faultyPlugin: responseTimeoutMs must be a positive integer, got ${responseTimeoutMs}`)
  }
  let rules: Rules = { faults: {}, counters: new Map() }
  let random = mulberry32(options.seed ?? 1)
  let hubAddress = options.hubAddress ?? ''
  const stats = { outgoing: emptyStats(), incoming: emptyStats() }
  // Everything waiting on a timer, so that disconnect() can end it at once.
  const timers = new Set<{ timer: NodeJS.Timeout; end: () => void }>()
  let closing = false

  const set = (next: Faults) => {
    validate(next)
    rules = { faults: { ...next }, counters: new Map() }
    random = mulberry32(options.seed ?? 1)
  }
  if (options.faults) set(options.faults)

  /** Whether `fault` strikes this Prepare, under the faults (and their counters) in force when it arrived. */
  const strikes = (fault: Fault, active: Rules): boolean => {
    const rate = active.faults[fault]
    if (rate === undefined) return false
    if (typeof rate === 'number') return rate > 0 && random() < rate
    const counter = active.counters.get(fault) ?? { seen: 0, struck: 0 }
    active.counters.set(fault, counter)
    counter.seen++
    if (rate.times !== undefined && counter.struck >= rate.times) return false
    if (counter.seen % rate.every !== 0) return false
    counter.struck++
    return true
  }

  /** Calls `then` after `ms`, or at once when the plugin disconnects. */
  const after = (ms: number, then: () => void): (() => void) => {
    if (closing) {
      then()
      return () => {}
    }
    const entry = {
      timer: setTimeout(() => entry.end(), Math.max(0, ms)),
      end: () => {
        clearTimeout(entry.timer)
        if (timers.delete(entry)) then()
      },
    }
    timers.add(entry)
    return () => {
      clearTimeout(entry.timer)
      timers.delete(entry)
    }
  }
  const wait = (ms: number) => new Promise<void>((resolve) => (ms > 0 ? after(ms, resolve) : resolve()))

  const applies = ({ faults }: Rules, direction: Direction, prepare: PrepareInfo): boolean => {
    const where = faults.direction ?? 'both'
    if (where !== 'both' && where !== direction) return false
    return faults.packets !== 'money' || prepare.amount > 0n
  }

  /**
   * One Prepare through the faults. `pass` hands it to the other side and resolves with its
   * answer; `lost` is what its sender sees when nobody answers.
   */
  const through = async (
    direction: Direction,
    data: Buffer,
    pass: (data: Buffer) => Promise<Buffer>,
    lost: (prepare: PrepareInfo) => Promise<Buffer>,
  ): Promise<Buffer> => {
    const prepare = readPrepare(data)
    if (!prepare || prepare.control) return pass(data)
    const counted = stats[direction]
    counted.prepares++
    // A packet meets the faults in force when it arrived, whatever is set while it is under way.
    const active = rules
    if (!applies(active, direction, prepare)) return delivered(counted, prepare, await pass(data))
    const delayMs = active.faults.delayMs ?? 0
    if (delayMs > 0) {
      counted.delayed++
      await wait(delayMs)
    }
    if (strikes('rejectT04', active)) {
      counted.rejectedT04++
      return IlpPacket.serializeIlpReject({
        code: 'T04',
        triggeredBy: hubAddress,
        message: 'insufficient liquidity (injected by faultyPlugin)',
        data: Buffer.alloc(0),
      })
    }
    if (strikes('drop', active)) {
      counted.dropped++
      return lost(prepare)
    }
    const answer = await pass(data)
    if (answer[0] === IlpPacket.Type.TYPE_ILP_FULFILL && strikes('dropFulfill', active)) {
      counted.fulfillsDropped++
      counted.inDoubt += prepare.amount
      return lost(prepare)
    }
    await wait(delayMs)
    return delivered(counted, prepare, answer)
  }

  // An outgoing Prepare lost: nothing ever answers; the response timeout in sendData ends the wait.
  const unanswered = () => new Promise<Buffer>(() => {})
  // An incoming Prepare lost: the hub expires it itself; answer it, too late, at its expiry.
  const expired = async (prepare: PrepareInfo): Promise<Buffer> => {
    await wait(prepare.expiresAt - Date.now())
    return IlpPacket.serializeIlpReject({
      code: 'R00',
      triggeredBy: hubAddress,
      message: 'packet expired (lost by faultyPlugin)',
      data: Buffer.alloc(0),
    })
  }

  const send = async (data: Buffer): Promise<Buffer> => {
    const answer = await inner.sendData(data)
    if (!hubAddress) hubAddress = learnHubAddress(data, answer)
    return answer
  }

  /** `sendData` as ilp-plugin-btp does it: an answer, or a timeout error after `responseTimeoutMs`. */
  const sendData = (data: Buffer): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const cancel = after(responseTimeoutMs, () =>
        reject(new Error(`faultyPlugin: no response within ${responseTimeoutMs} ms`)),
      )
      through('outgoing', data, send, unanswered).then(
        (answer) => {
          cancel()
          resolve(answer)
        },
        (err: unknown) => {
          cancel()
          reject(err)
        },
      )
    })

  const plugin: FaultyPlugin = {
    inner,
    faults: {
      get current() {
        return rules.faults
      },
      set,
      clear: () => set({}),
    },
    stats,
    async connect() {
      closing = false
      await inner.connect()
    },
    async disconnect() {
      closing = true
      for (const entry of [...timers]) entry.end()
      await inner.disconnect()
    },
    isConnected: () => inner.isConnected(),
    sendData,
    sendMoney: (amount) => inner.sendMoney(amount),
    registerDataHandler(handler) {
      inner.registerDataHandler((data) => through('incoming', data, handler, expired))
    },
    deregisterDataHandler: () => inner.deregisterDataHandler(),
    registerMoneyHandler(handler) {
      inner.registerMoneyHandler?.(handler)
    },
    deregisterMoneyHandler() {
      inner.deregisterMoneyHandler?.()
    },
    on(event, listener) {
      inner.on?.(event, listener)
      return plugin
    },
    removeListener(event, listener) {
      inner.removeListener?.(event, listener)
      return plugin
    },
  }
  return plugin
}

function delivered(counted: FaultStats, prepare: PrepareInfo, answer: Buffer): Buffer {
  if (answer[0] === IlpPacket.Type.TYPE_ILP_FULFILL) {
    counted.fulfilled++
    counted.delivered += prepare.amount
  }
  return answer
}

interface PrepareInfo {
  amount: bigint
  expiresAt: number
  /** A `peer.` packet (IL-DCP, routing): never faulted. */
  control: boolean
}

function readPrepare(data: Buffer): PrepareInfo | undefined {
  if (data[0] !== IlpPacket.Type.TYPE_ILP_PREPARE) return undefined
  try {
    const prepare = IlpPacket.deserializeIlpPrepare(data)
    return {
      amount: BigInt(prepare.amount),
      expiresAt: prepare.expiresAt.getTime(),
      control: prepare.destination.startsWith('peer.'),
    }
  } catch {
    return undefined
  }
}

/** The testnet's connector address from an IL-DCP answer: a child `test.hub.local.alice` is under `test.hub`. */
function learnHubAddress(request: Buffer, answer: Buffer): string {
  try {
    if (IlpPacket.deserializeIlpPrepare(request).destination !== 'peer.config') return ''
    const segments = ILDCP.deserializeIldcpResponse(answer).clientAddress.split('.')
    return segments.slice(0, segments.length > 3 ? -2 : -1).join('.')
  } catch {
    return ''
  }
}

function emptyStats(): FaultStats {
  return {
    prepares: 0,
    delayed: 0,
    rejectedT04: 0,
    dropped: 0,
    fulfillsDropped: 0,
    fulfilled: 0,
    delivered: 0n,
    inDoubt: 0n,
  }
}

function validate(faults: Faults): void {
  const delayMs = faults.delayMs ?? 0
  if (!Number.isSafeInteger(delayMs) || delayMs < 0) {
    throw new RangeError(`faultyPlugin: delayMs must be an integer >= 0, got ${delayMs}`)
  }
  for (const fault of ['rejectT04', 'drop', 'dropFulfill'] as const) {
    const rate = faults[fault]
    if (rate === undefined) continue
    if (typeof rate === 'number') {
      if (!(rate >= 0 && rate <= 1)) throw new RangeError(`faultyPlugin: ${fault} must be in [0, 1], got ${rate}`)
      continue
    }
    if (!Number.isSafeInteger(rate.every) || rate.every < 1) {
      throw new RangeError(`faultyPlugin: ${fault}.every must be an integer >= 1, got ${rate.every}`)
    }
    if (rate.times !== undefined && (!Number.isSafeInteger(rate.times) || rate.times < 0)) {
      throw new RangeError(`faultyPlugin: ${fault}.times must be an integer >= 0, got ${rate.times}`)
    }
  }
  const direction = faults.direction ?? 'both'
  if (direction !== 'both' && direction !== 'outgoing' && direction !== 'incoming') {
    throw new RangeError(`faultyPlugin: direction must be 'outgoing', 'incoming' or 'both', got ${String(direction)}`)
  }
  const packets = faults.packets ?? 'all'
  if (packets !== 'all' && packets !== 'money') {
    throw new RangeError(`faultyPlugin: packets must be 'all' or 'money', got ${String(packets)}`)
  }
}

/** A small seeded generator (mulberry32): the same seed gives the same faults. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
