import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { LRUCache } from 'lru-cache'
import { StreamListener, exchangeRate, type Connection, type MoneyStream } from '@cogpay/stream'
import { CogpayError, ErrorCodes, type Asset, type LeaseTerms, type PaymentHeaders } from '@cogpay/core'
import type { IlpPlugin } from '../plugin.js'
import { DEFAULT_UPLINK, createPlugin, parseUplinkUri, redactedMessage } from '../uplink-uri.js'
import { withTimeout } from '../timeout.js'
import { InDoubt } from '../in-doubt.js'
import { silentLogger, type Logger } from '../logger.js'
import { positiveInteger } from '../positive-integer.js'
import { Authorizations } from './authorizations.js'
import type { BudgetView, RateCap } from './budget.js'
import { admitLease } from './lease-admission.js'
import { OriginCredentials } from './origin-credentials.js'
import { payUnderCap } from './pay-under-cap.js'
import type { LeaseView } from './payer-lease.js'
import { Pending, type PendingPayment } from './pending.js'
import { admitStream, type Admission } from './stream-admission.js'

const require = createRequire(import.meta.url)
const ILDCP = require('ilp-protocol-ildcp') as typeof import('ilp-protocol-ildcp')

/** Options for {@link createPayer}. */
export interface PayerOptions {
  /** The payer's uplink: a BTP URI or a plugin. Default `COGPAY_UPLINK` or `btp+ws://127.0.0.1:7768`. */
  uplink?: string | IlpPlugin
  /** Wait at most this long for the uplink to connect (then 503 `COGPAY_UPLINK_UNAVAILABLE`). Default `5000` ms. */
  connectTimeoutMs?: number
  /** A stream must name its request within this long, or it is closed. Default `5000` ms. */
  helloTimeoutMs?: number
  /**
   * Most servers (origins) with credentials kept, the least recently used forgotten first. An
   * origin with a live lease is kept besides (its host may resume the lease). Default `1000`.
   */
  maxOrigins?: number
  /**
   * Streams one server may have open on its socket to this payer at once (STREAM's
   * `maxRemoteStreams`): the most concurrent paid requests to one server. Default `1000`.
   */
  maxStreamsPerServer?: number
  /** Most leases remembered; past this, the oldest that has ended is forgotten. Default `10000`. */
  maxLeases?: number
  /** Where to log (pino, or any {@link Logger}): refusals, caps, payments, failures. Default: nothing. */
  logger?: Logger
  /**
   * Paying a server in another asset: the least exchange rate accepted, as a decimal string of
   * the server's smallest units per one of the payer's (`'0.0039'`). A rate below it (learned
   * before the first payment, or falling mid-payment) stops the payment with
   * `COGPAY_EXCHANGE_RATE_TOO_LOW`. Default: the rate learned on each connection, less `slippage`.
   * The cap is always in the payer's own units, whatever the rate.
   */
  minExchangeRate?: string
  /** Without `minExchangeRate`: how far below the rate it learned a connection may still pay, as a decimal fraction. Default `'0.01'`. */
  slippage?: string
}

/** Options of {@link Payer.expect}. */
export interface ExpectOptions {
  /**
   * Called after every payment packet of this request with the running total, and what the server
   * asks for in total so far on the stream (its progress, in the server's units).
   */
  onSpend?: (spent: bigint, asked: bigint) => void
  /**
   * If this request opens a lease (the host pulls over time under the host's authorization, which
   * must have a rate cap), the most that lease may be paid in all, in the payer's units. Default:
   * only the host's budget bounds it.
   */
  leaseMax?: bigint
  /**
   * Tell the server this request's cap (`Cogpay-Max-Spend`), so a server whose price is higher
   * refuses before opening a socket. Off by default: it also tells the server your budget.
   */
  announceMaxSpend?: boolean
}

/** Events of a {@link Payer}. */
export interface PayerEvents {
  /** Money left for a request (one event per fulfilled packet). */
  spend: [{ requestId: string; origin: string; amount: bigint; spent: bigint; maxSpend: bigint }]
  /** The server asked a request for more than its cap; the payer refused or stopped. */
  cap: [{ requestId: string; origin: string; spent: bigint; maxSpend: bigint; asked?: bigint }]
  /** A stream was closed without payment because it named no request in flight. */
  refused: [{ origin: string; reason: string }]
  /** Money came back for a request (a refund; one event per packet). */
  refund: [{ requestId: string; origin: string; amount: bigint; refunded: bigint }]
  /** Money left on a lease (one event per fulfilled packet). */
  leaseSpend: [{ lease: string; origin: string; amount: bigint; spent: bigint }]
}

/** A server's connection to the payer, and the origin whose credentials it used. */
interface Peer {
  readonly origin: string
  readonly connection: Connection
}

/**
 * The client's payment side: a STREAM listener (@cogpay/stream) on the payer's own uplink. It hands each server
 * origin one address and secret (so the server can keep one socket for it), and pays only on a
 * stream whose hello names a request of that origin that is still in flight, at most that
 * request's `maxSpend`, judged in the payer's own units.
 */
export class Payer extends EventEmitter<PayerEvents> {
  readonly plugin: IlpPlugin
  /** Total paid by this payer, in its own units. */
  spent = 0n
  /** Total paid back to this payer (refunds), in its own units. */
  refunded = 0n
  readonly #inDoubt = new InDoubt()
  readonly #helloTimeoutMs: number
  readonly #connectTimeoutMs: number
  readonly #maxStreamsPerServer: number
  #listener: StreamListener | undefined
  #starting: Promise<StreamListener> | undefined
  readonly #rates: { minExchangeRate?: string; slippage?: string }
  readonly #origins: OriginCredentials
  #pending = new Map<string, Pending>()
  /**
   * Requests that paid and have finished, kept a while so that a server can still refund them
   * (its refund stream may arrive after the response). Bounded in number and age: at most
   * 10,000 entries of size 1 (with `max`, lru-cache would preallocate 375 KiB for them).
   */
  #recent = new LRUCache<string, Pending>({ maxSize: 10_000, sizeCalculation: () => 1, ttl: 10 * 60_000 })
  readonly #authorizations: Authorizations
  readonly #log: Logger
  #asset: Asset | undefined

  constructor(options: PayerOptions = {}) {
    super()
    const uplink = options.uplink ?? process.env.COGPAY_UPLINK ?? DEFAULT_UPLINK
    if (typeof uplink === 'string') parseUplinkUri(uplink)
    this.plugin = typeof uplink === 'string' ? createPlugin(uplink) : uplink
    // Every payment Prepare goes through here: count those whose outcome is never learned.
    const send = this.plugin.sendData.bind(this.plugin)
    this.plugin.sendData = (data) => this.#inDoubt.send(data, send)
    // Checked now: a bad rate throws here, not on the first payment.
    if (options.minExchangeRate !== undefined) checkRate(options.minExchangeRate, 'minExchangeRate')
    if (options.slippage !== undefined && checkRate(options.slippage, 'slippage').numerator >= checkRate(options.slippage, 'slippage').denominator) {
      throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `slippage must be below 1, got ${options.slippage}`)
    }
    this.#rates = {
      ...(options.minExchangeRate === undefined ? {} : { minExchangeRate: options.minExchangeRate }),
      ...(options.slippage === undefined ? {} : { slippage: options.slippage }),
    }
    this.#helloTimeoutMs = options.helloTimeoutMs ?? 5000
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000
    this.#maxStreamsPerServer = options.maxStreamsPerServer ?? 1000
    this.#authorizations = new Authorizations(options.maxLeases ?? 10_000)
    this.#origins = new OriginCredentials(positiveInteger(options.maxOrigins, 1000, 'maxOrigins'), () =>
      this.#authorizations.leasedOrigins(),
    )
    const log = options.logger ?? silentLogger
    this.on('refused', ({ origin, reason }) => log.warn({ origin, reason }, 'payer refused a stream'))
    this.on('cap', ({ requestId, origin, spent, maxSpend }) =>
      log.info({ requestId, origin, spent: spent.toString(), maxSpend: maxSpend.toString() }, 'payer reached a request cap'),
    )
    this.on('spend', ({ requestId, origin, amount, spent }) =>
      log.debug({ requestId, origin, amount: amount.toString(), spent: spent.toString() }, 'payer paid'),
    )
    this.#log = log
  }

  /**
   * Money in doubt, in the payer's own units: payment packets whose outcome it never learned (no
   * answer within the uplink's response timeout, or lost when the connection to the hub dropped).
   * Not counted in `spent`; a server may have received it. So what servers received is at most
   * `spent + inDoubt`, and at least `spent`.
   */
  get inDoubt(): bigint {
    return this.#inDoubt.amount
  }

  /** The payer's asset, once started. */
  get asset(): Asset | undefined {
    return this.#asset
  }

  /** Requests whose payment is under way. */
  get pendingCount(): number {
    return this.#pending.size
  }

  /**
   * Connects the uplink, learns its address and asset (IL-DCP) and starts answering STREAM
   * connections on it. Safe to call repeatedly: one attempt is under way at a time (the BTP client
   * retries a refused connection forever), and each caller waits for it at most `connectTimeoutMs`.
   */
  async start(): Promise<void> {
    await this.#started()
  }

  #started(): Promise<StreamListener> {
    return withTimeout(
      this.#start(),
      this.#connectTimeoutMs,
      () => {
        this.#log.error({ code: ErrorCodes.UPLINK_UNAVAILABLE, timeoutMs: this.#connectTimeoutMs }, 'payer uplink did not connect')
        return new CogpayError(
          ErrorCodes.UPLINK_UNAVAILABLE,
          `payer uplink did not connect within ${this.#connectTimeoutMs} ms; still trying`,
          { status: 503 },
        )
      },
    )
  }

  #start(): Promise<StreamListener> {
    this.#starting ??= (async () => {
      await this.plugin.connect()
      const { clientAddress, assetCode, assetScale } = await ILDCP.fetch((data) => this.plugin.sendData(data))
      const listener = new StreamListener({
        plugin: this.plugin,
        address: clientAddress,
        asset: { code: assetCode, scale: assetScale },
        // Each request is a stream opened by the server: allow many at once on one connection.
        maxRemoteStreams: this.#maxStreamsPerServer,
        ...this.#rates,
        // Only tokens this payer handed out (and still knows) open a connection: no state for others.
        accept: (token) => this.#origins.originOf(token) !== undefined,
      })
      listener.on('connection', (connection, token) => this.#onConnection(connection, token))
      this.plugin.registerDataHandler((data) => listener.handleDataLater(data))
      this.#listener = listener
      this.#asset = { code: assetCode, scale: assetScale }
      return listener
    })().catch((cause: unknown) => {
      this.#starting = undefined
      this.#log.error({ code: ErrorCodes.UPLINK_UNAVAILABLE, error: redactedMessage(cause) }, 'payer uplink did not connect')
      throw new CogpayError(
        ErrorCodes.UPLINK_UNAVAILABLE,
        `payer uplink did not connect: ${redactedMessage(cause)}`,
        { status: 503, cause },
      )
    })
    return this.#starting
  }

  /**
   * Registers a request about to be sent to `origin` with a cap of `maxSpend`, and returns its
   * payment headers. Call `finish()` on the result when the response has arrived.
   */
  async expect(origin: string, maxSpend: bigint, options: ExpectOptions = {}): Promise<PendingPayment> {
    if (maxSpend < 0n) throw new CogpayError(ErrorCodes.INVALID_AMOUNT, `maxSpend must be >= 0, got ${maxSpend}`)
    const credentials = this.#origins.get(origin, await this.#started())
    const requestId = randomBytes(16).toString('base64url')
    const asset = this.#asset
    const headers: PaymentHeaders = {
      address: credentials.address,
      secret: credentials.secret,
      requestId,
      ...(options.announceMaxSpend && asset ? { maxSpend: { amount: maxSpend, asset } } : {}),
    }
    const pending = new Pending(
      requestId,
      origin,
      maxSpend,
      headers,
      (p) => {
        this.#pending.delete(p.requestId)
        if (p.refundable > 0n) this.#recent.set(p.requestId, p)
      },
      options.onSpend,
      options.leaseMax,
    )
    this.#pending.set(requestId, pending)
    return pending
  }

  #onConnection(connection: Connection, token: string): void {
    const origin = this.#origins.originOf(token)
    if (!origin) return connection.destroy()
    const peer: Peer = { origin, connection }
    const admission: Admission = {
      origin,
      helloTimeoutMs: this.#helloTimeoutMs,
      log: this.#log,
      inFlight: (requestId) => this.#pending.get(requestId),
      paid: (requestId) => this.#pending.get(requestId) ?? this.#recent.get(requestId),
      refused: (reason) => this.emit('refused', { origin, reason }),
      pay: (pending, stream, asked) => this.#pay(peer, pending, stream, asked),
      refunded: (paid, amount) => this.#refunded(paid, amount),
      lease: (stream, requestId, terms, rest) => this.#lease(peer, stream, requestId, terms, rest),
    }
    connection.on('stream', (stream: MoneyStream) => admitStream(stream, admission))
  }

  #pay({ connection }: Peer, pending: Pending, stream: MoneyStream, asked: bigint | undefined): void {
    payUnderCap(pending, stream, asked, {
      connection,
      asset: this.#asset,
      budget: this.#authorizations.budget(pending.origin),
      onSpend: (amount) => {
        this.spent += amount
        this.emit('spend', {
          requestId: pending.requestId,
          origin: pending.origin,
          amount,
          spent: pending.spent,
          maxSpend: pending.maxSpend,
        })
      },
      onCap: (spent) =>
        this.emit('cap', {
          requestId: pending.requestId,
          origin: pending.origin,
          spent,
          maxSpend: pending.maxSpend,
          ...(asked === undefined ? {} : { asked }),
        }),
    })
  }

  #lease(peer: Peer, stream: MoneyStream, requestId: string, terms: LeaseTerms, rest: Uint8Array): string | undefined {
    const { origin } = peer
    return admitLease(stream, requestId, terms, rest, {
      ...peer,
      asset: this.#asset,
      authorizations: this.#authorizations,
      inFlight: (id) => this.#pending.get(id),
      resumeCredentials: () => {
        const { address, secret } = this.#origins.alias(origin, this.#listener!)
        return { address, secret: secret.toString('base64url') }
      },
      onSpend: (lease, amount) => {
        this.spent += amount
        this.emit('leaseSpend', { lease: lease.id, origin, amount, spent: lease.spent })
      },
    })
  }

  /** Money came back on a refund stream: it is no longer spent, for the payer and the host's budget. */
  #refunded(pending: Pending, amount: bigint): void {
    this.refunded += amount
    this.#authorizations.budget(pending.origin)?.refund(amount)
    this.emit('refund', { requestId: pending.requestId, origin: pending.origin, amount, refunded: pending.refunded })
  }

  /**
   * Gives a host (an origin such as `https://api.example`) a budget shared by all requests to it:
   * together they pay at most `total`, each still at most its own `maxSpend`. With `rate`, the
   * host may also open leases: pull payments over time, at most `rate.amount` per
   * `rate.intervalMs` (all its leases together never more than `total`). Replaces any budget the
   * host had (what it spent so far still counts against the new total).
   */
  authorize(origin: string, options: { total: bigint; rate?: RateCap }): BudgetView {
    return this.#authorizations.authorize(origin, options)
  }

  /** Every lease this payer knows: what it paid on each, and where it stands. */
  leases(): LeaseView[] {
    return this.#authorizations.leases()
  }

  /** Stops one lease: the host hears `COGPAY_REVOKED` at once and may not resume it. */
  revokeLease(id: string): LeaseView {
    return this.#authorizations.revokeLease(id)
  }

  /** Raises a host's budget by `amount`. */
  topUp(origin: string, amount: bigint): BudgetView {
    return this.#authorizations.topUp(origin, amount)
  }

  /**
   * Revokes a host's budget: every request to it stops paying at once (the server hears
   * `COGPAY_REVOKED`), and new ones pay nothing until `authorize` is called again.
   */
  revoke(origin: string): BudgetView {
    return this.#authorizations.revoke(origin, this.#pending.values())
  }

  /** Every host budget: what it may pay, has paid, holds for requests under way, and has left. */
  budgets(): BudgetView[] {
    return this.#authorizations.budgets()
  }

  /**
   * Stops the STREAM server and disconnects the uplink. Requests under way stop paying. Servers
   * are told the connection closes, but a server that has gone away (or stopped answering) is
   * waited for at most `closeTimeoutMs` (default 1000): closing never hangs, and never rejects
   * because a peer is gone.
   */
  async close(closeTimeoutMs = 1000): Promise<void> {
    for (const pending of this.#pending.values()) pending.stream?.destroy()
    this.#pending.clear()
    this.#authorizations.destroyLeases()
    const listener = this.#listener
    this.#listener = undefined
    this.#starting = undefined
    // Each connection tells its server in one packet, not waited for: closing never hangs on a
    // server that has gone away. The uplink then gets a moment to send them.
    listener?.close()
    if (listener) await new Promise((resolve) => setTimeout(resolve, Math.min(closeTimeoutMs, 20)))
    try {
      this.plugin.deregisterDataHandler()
    } catch {
      // never registered: the payer never started
    }
    await withTimeout(this.plugin.disconnect(), closeTimeoutMs, () => new Error('close timed out')).catch(() => {})
  }
}

function checkRate(value: string, name: string) {
  try {
    return exchangeRate(value)
  } catch (cause) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `${name} must be a plain decimal such as "0.99", got ${JSON.stringify(value)}`, { cause })
  }
}

/** Creates a {@link Payer}. Options are checked now; it connects on first use. */
export function createPayer(options: PayerOptions = {}): Payer {
  return new Payer(options)
}
