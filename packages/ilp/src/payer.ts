import { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { LRUCache } from 'lru-cache'
import type { Connection, DataAndMoneyStream, Server } from 'ilp-protocol-stream'
import {
  CloseReasons,
  CogpayError,
  ErrorCodes,
  MAX_HELLO_BYTES,
  decodeFinal,
  decodeHello,
  type StreamFinal,
  type Asset,
  type LeaseTerms,
  type PaymentHeaders,
} from '@cogpay/core'
import type { IlpPlugin } from './plugin.js'
import { DEFAULT_UPLINK, createPlugin, parseUplinkUri, redactedMessage } from './uplink-uri.js'
import { withTimeout } from './timeout.js'
import { InDoubt } from './in-doubt.js'
import { silentLogger, type Logger } from './logger.js'
import { Budget, type BudgetView, type RateCap, type Reservation } from './budget.js'
import { closeAfterGrace, readLines, refuseStream, settled, stopPaying } from './payer-streams.js'
import { PayerLease, type LeaseView } from './payer-lease.js'
import { retryTemporaryRejects } from './stream-retries.js'

const require = createRequire(import.meta.url)
const { createServer } = require('ilp-protocol-stream') as typeof import('ilp-protocol-stream')
const Rational = (
  require('ilp-protocol-stream/dist/src/util/rational') as {
    default: { fromNumber(value: number, unsigned: boolean): unknown }
  }
).default

/** Options for {@link createPayer}. */
export interface PayerOptions {
  /** The payer's uplink: a BTP URI or a plugin. Default `COGPAY_UPLINK` or `btp+ws://127.0.0.1:7768`. */
  uplink?: string | IlpPlugin
  /** Wait at most this long for the uplink to connect (then 503 `COGPAY_UPLINK_UNAVAILABLE`). Default `5000` ms. */
  connectTimeoutMs?: number
  /** A stream must name its request within this long, or it is closed. Default `5000` ms. */
  helloTimeoutMs?: number
  /** Most servers (origins) with credentials kept. Default `1000`. */
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
}

/** One request's payment, from the payer's side. */
export interface PendingPayment {
  readonly requestId: string
  readonly origin: string
  /** The cap for this request, in the payer's units. */
  readonly maxSpend: bigint
  /** Paid so far for this request, in the payer's units (fulfilled packets only). */
  readonly spent: bigint
  /** Paid back by the server so far (refunds of a failed request), in the payer's units. */
  readonly refunded: bigint
  /** True once the payer refused or stopped because the server wanted more than `maxSpend`. */
  readonly capReached: boolean
  /** True once the host's budget was revoked while this request was under way. */
  readonly revoked: boolean
  /** The payment headers to send with the request. */
  readonly headers: PaymentHeaders
  /**
   * Ends this request's payment: waits (at most `settleTimeoutMs`) for the server to close the
   * stream and for packets in flight to be answered, then stops paying on it. Returns `spent`.
   */
  finish(settleTimeoutMs?: number): Promise<bigint>
  /** Stops paying at once and tells the server the request was aborted. Returns `spent`. */
  abort(): bigint
  /**
   * The server's final message on a metered stream (how the response ended, and its totals):
   * resolves with it, or `undefined` when none arrives within `timeoutMs` or the stream closes first.
   */
  waitFinal(timeoutMs: number): Promise<StreamFinal | undefined>
  /**
   * Waits for a refund the server announced (`Cogpay-Refund`, or `refund` in a final message):
   * resolves with `refunded` once a refund stream for this request has closed, or after
   * `timeoutMs`, whichever is first.
   */
  waitRefund(timeoutMs: number): Promise<bigint>
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

interface Origin {
  readonly name: string
  readonly address: string
  readonly secret: Buffer
}

class Pending implements PendingPayment {
  spent = 0n
  refunded = 0n
  /** The refund stream under way, if any: one at a time, so refunds never exceed what was paid. */
  refundStream: DataAndMoneyStream | undefined
  /** Refund streams that have closed. */
  refundsClosed = 0
  capReached = false
  revoked = false
  /** Its share of the host's budget, when the host has one (set when its stream is matched). */
  reservation: Reservation | undefined
  stream: DataAndMoneyStream | undefined
  /** Leases this request opened: an aborted request (its client never saw the answer) stops them. */
  readonly leases: PayerLease[] = []
  finished = false
  final: StreamFinal | undefined
  /** The final message, a refund stream closing, the stream arriving: what this request's waits wait on. */
  readonly #events = new EventEmitter()

  constructor(
    readonly requestId: string,
    readonly origin: string,
    readonly maxSpend: bigint,
    readonly headers: PaymentHeaders,
    readonly release: (pending: Pending) => void,
    readonly onSpend: ((spent: bigint, asked: bigint) => void) | undefined,
    readonly leaseMax: bigint | undefined,
  ) {}

  /** Called with each line the server writes after its hello. */
  onLine(line: Buffer): void {
    const final = decodeFinal(line)
    if (final && !this.final) {
      this.final = final
      this.#events.emit('final')
    }
  }

  waitFinal(timeoutMs: number): Promise<StreamFinal | undefined> {
    if (this.final) return Promise.resolve(this.final)
    if (this.stream?.destroyed) return Promise.resolve(undefined)
    // The stream may not have arrived yet: a body that needed no payment (a retry with a credit)
    // can end before the server's hello has. Wait for it too, within the same time.
    return new Promise((resolve) => {
      let stream: DataAndMoneyStream | undefined
      const done = () => {
        clearTimeout(timer)
        this.#events.removeListener('final', done)
        this.#events.removeListener('stream', watch)
        stream?.removeListener('close', done)
        resolve(this.final)
      }
      const watch = () => {
        stream = this.stream
        stream?.once('close', done)
      }
      const timer = setTimeout(done, timeoutMs)
      this.#events.once('final', done)
      if (this.stream) watch()
      else this.#events.once('stream', watch)
    })
  }

  /** Called when this request's payment stream is matched. */
  attached(stream: DataAndMoneyStream): void {
    this.stream = stream
    this.#events.emit('stream')
  }

  waitRefund(timeoutMs: number): Promise<bigint> {
    const done = () => this.refundsClosed > 0 && !this.refundStream
    if (done()) return Promise.resolve(this.refunded)
    return new Promise((resolve) => {
      const finish = () => {
        if (!done() && Date.now() < deadline) return
        clearTimeout(timer)
        this.#events.removeListener('refund', finish)
        resolve(this.refunded)
      }
      const deadline = Date.now() + timeoutMs
      const timer = setTimeout(finish, timeoutMs)
      this.#events.on('refund', finish)
    })
  }

  /**
   * Accepts a refund on `stream`: at most what this request paid and has not had back, in our own
   * units (STREAM's receive max). Nothing is ever sent on it.
   */
  acceptRefund(stream: DataAndMoneyStream, onRefund: (amount: bigint) => void): void {
    this.refundStream = stream
    stream.setReceiveMax((this.spent - this.refunded).toString())
    stream.on('money', (amount: string) => {
      const value = BigInt(amount)
      this.refunded += value
      onRefund(value)
    })
    stream.once('close', () => {
      this.refundStream = undefined
      this.refundsClosed++
      this.#events.emit('refund')
    })
    closeAfterGrace(stream)
  }

  abort(): bigint {
    if (!this.finished) {
      this.finished = true
      if (this.stream) refuseStream(this.stream, CloseReasons.aborted)
      for (const lease of this.leases) lease.stop(CloseReasons.aborted)
      this.reservation?.release()
      this.release(this)
    }
    return this.spent
  }

  async finish(settleTimeoutMs = 2000): Promise<bigint> {
    if (this.finished) return this.spent
    this.finished = true
    const stream = this.stream
    if (stream && !this.capReached && !this.revoked) await settled(stream, settleTimeoutMs)
    if (stream && !stream.destroyed) stopPaying(stream)
    this.reservation?.release()
    this.release(this)
    return this.spent
  }
}

/**
 * The client's payment side: a STREAM server on the payer's own uplink. It hands each server
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
  readonly #maxOrigins: number
  readonly #maxStreamsPerServer: number
  #server: Server | undefined
  #starting: Promise<Server> | undefined
  #origins = new Map<string, Origin>()
  #originsByName = new Map<string, string>()
  #pending = new Map<string, Pending>()
  /**
   * Requests that paid and have finished, kept a while so that a server can still refund them
   * (its refund stream may arrive after the response). Bounded in number and age.
   */
  #recent = new LRUCache<string, Pending>({ max: 10_000, ttl: 10 * 60_000 })
  #capChecks = new Map<Connection, Set<() => void>>()
  #budgets = new Map<string, Budget>()
  #leases = new Map<string, PayerLease>()
  readonly #maxLeases: number
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
    this.#helloTimeoutMs = options.helloTimeoutMs ?? 5000
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000
    this.#maxOrigins = options.maxOrigins ?? 1000
    this.#maxStreamsPerServer = options.maxStreamsPerServer ?? 1000
    this.#maxLeases = options.maxLeases ?? 10_000
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
   * Connects the uplink and starts the STREAM server. Safe to call repeatedly: one attempt is under
   * way at a time (ilp-plugin-btp retries a refused connection forever), and each caller waits for
   * it at most `connectTimeoutMs`.
   */
  start(): Promise<Server> {
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

  #start(): Promise<Server> {
    this.#starting ??= (async () => {
      const server = await createServer({
        plugin: this.plugin,
        // Each request is a stream opened by the server: allow many at once on one connection.
        maxRemoteStreams: this.#maxStreamsPerServer,
      })
      server.on('connection', (connection: Connection) => this.#onConnection(connection))
      this.#server = server
      this.#asset = { code: server.assetCode, scale: server.assetScale }
      return server
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
    const credentials = await this.#credentialsFor(origin)
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
        if (p.spent > p.refunded) this.#recent.set(p.requestId, p)
      },
      options.onSpend,
      options.leaseMax,
    )
    this.#pending.set(requestId, pending)
    return pending
  }

  async #credentialsFor(origin: string): Promise<Origin> {
    const server = await this.start()
    let entry = this.#origins.get(origin)
    if (entry) {
      // Refresh its place: the map's order is its LRU order.
      this.#origins.delete(origin)
      this.#origins.set(origin, entry)
      return entry
    }
    const name = randomBytes(8).toString('hex')
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret({ connectionTag: name })
    entry = { name, address: destinationAccount, secret: sharedSecret }
    this.#origins.set(origin, entry)
    this.#originsByName.set(name, origin)
    if (this.#origins.size > this.#maxOrigins) {
      // Forget the least recently used origin, but never one with a lease the host may resume.
      const leased = new Set([...this.#leases.values()].filter((l) => l.live).map((l) => l.origin))
      for (const [oldest, old] of this.#origins) {
        if (leased.has(oldest)) continue
        this.#origins.delete(oldest)
        this.#originsByName.delete(old.name)
        break
      }
    }
    return entry
  }

  #onConnection(connection: Connection): void {
    const origin = connection.connectionTag ? this.#originsByName.get(connection.connectionTag) : undefined
    if (!origin) {
      connection.destroy().catch(() => {})
      return
    }
    connection.on('error', () => {})
    retryTemporaryRejects(connection)
    connection.on('stream', (stream: DataAndMoneyStream) => this.#onStream(origin, connection, stream))
    // A server raising its receive max arrives as a frame in an incoming packet, and STREAM emits
    // no event for it. A payer already at its cap sends nothing more, so no outgoing_money event
    // fires either: check the caps after every incoming packet, or the server would wait for its
    // stall timeout instead of hearing "cap reached" at once.
    const checks = new Set<() => void>()
    this.#capChecks.set(connection, checks)
    connection.once('close', () => this.#capChecks.delete(connection))
    const handlePrepare = connection.handlePrepare.bind(connection)
    connection.handlePrepare = async (prepare) => {
      try {
        return await handlePrepare(prepare)
      } finally {
        for (const check of checks) check()
      }
    }
  }

  #onStream(origin: string, connection: Connection, stream: DataAndMoneyStream): void {
    stream.on('error', () => {})
    let buffered = Buffer.alloc(0)
    const refuse = (reason: string) => {
      cleanup()
      this.emit('refused', { origin, reason })
      refuseStream(stream, reason)
    }
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      const newline = buffered.indexOf(0x0a)
      if (newline === -1) {
        if (buffered.length >= MAX_HELLO_BYTES) refuse(CloseReasons.badHello)
        return
      }
      cleanup()
      const hello = decodeHello(buffered.subarray(0, newline))
      if (!hello) return refuse(CloseReasons.badHello)
      if (hello.lease) {
        const reason = this.#lease(origin, connection, stream, hello.requestId, hello.lease, buffered.subarray(newline + 1))
        if (reason) refuse(reason)
        return
      }
      if (hello.refund !== undefined) {
        const paid = this.#pending.get(hello.requestId) ?? this.#recent.get(hello.requestId)
        // Only a request of this origin that paid, one refund stream at a time, at most what it paid.
        if (!paid || paid.origin !== origin || paid.refundStream || paid.spent <= paid.refunded) {
          return refuse(CloseReasons.unknownRequest)
        }
        this.#log.debug({ requestId: paid.requestId, origin, refund: hello.refund.toString() }, 'payer accepts a refund')
        return paid.acceptRefund(stream, (amount) => this.#refunded(paid, amount))
      }
      const pending = this.#pending.get(hello.requestId)
      // A request pays on one stream at a time: a second one (a retry of the same request, say)
      // only once the first is over, and together they pay at most its cap, net of refunds.
      const busy = pending?.stream && !pending.stream.destroyed && !pending.stream._remoteSentEnd
      if (!pending || pending.origin !== origin || busy || pending.finished) {
        return refuse(CloseReasons.unknownRequest)
      }
      // Unbounded in number (each line is bounded in size): a metered stream's ask lines come
      // before its final message, however many steps it took.
      readLines(stream, buffered.subarray(newline + 1), (line) => pending.onLine(line), Number.POSITIVE_INFINITY)
      this.#pay(pending, connection, stream, hello.amount)
    }
    const cleanup = () => {
      clearTimeout(timer)
      stream.removeListener('data', onData)
    }
    const timer = setTimeout(() => refuse(CloseReasons.badHello), this.#helloTimeoutMs)
    stream.on('data', onData)
  }

  #pay(pending: Pending, connection: Connection, stream: DataAndMoneyStream, asked: bigint | undefined): void {
    pending.attached(stream)
    // With a host budget, this request may pay at most its own cap and what the budget has left.
    const budget = this.#budgets.get(pending.origin)
    if (budget?.revoked) {
      pending.revoked = true
      return refuseStream(stream, CloseReasons.revoked)
    }
    // The host's rate cap, if any, bounds a request too: its share is fixed when it starts.
    // What this request may still pay: its cap, less what it paid on earlier streams and did not get back.
    const net = pending.spent - pending.refunded
    const left = pending.maxSpend > net ? pending.maxSpend - net : 0n
    const rateBound = budget?.rate !== undefined && budget.available < left && budget.available < budget.left
    pending.reservation?.release()
    pending.reservation = budget?.reserve(left)
    const limit = pending.reservation?.limit ?? left
    const sameAsset =
      connection.destinationAssetCode === this.#asset?.code && connection.destinationAssetScale === this.#asset?.scale
    const stopAtCap = (spent: bigint) => {
      if (pending.capReached) return
      pending.capReached = true
      this.emit('cap', {
        requestId: pending.requestId,
        origin: pending.origin,
        spent,
        maxSpend: pending.maxSpend,
        ...(asked === undefined ? {} : { asked }),
      })
      refuseStream(stream, rateBound ? CloseReasons.rateTooHigh : CloseReasons.capTooLow)
    }
    // A fixed price in our own asset above the cap: refuse before paying anything.
    if (asked !== undefined && sameAsset && asked > limit) return stopAtCap(0n)
    // Same asset code and scale: the rate is 1, so skip STREAM's 5-packet rate probe before the
    // first payment (about 4 ms on a cold socket). The cap stays in our own units either way.
    const rated = connection as unknown as { exchangeRate?: unknown }
    if (sameAsset && rated.exchangeRate === undefined) rated.exchangeRate = Rational.fromNumber(1, true)
    // At the cap while the server still asks for more: say so now, so it answers 402 (or stops its
    // meter) at once instead of waiting for its payment timeout.
    const checkCap = () => {
      if (pending.capReached || pending.revoked || stream.destroyed) return
      if (BigInt(stream.totalSent) >= limit && stream._remoteReceiveMax.greaterThan(stream._remoteReceived)) {
        stopAtCap(pending.spent)
      }
    }
    const checks = this.#capChecks.get(connection)
    checks?.add(checkCap)
    stream.once('close', () => checks?.delete(checkCap))
    stream.on('outgoing_money', (amount: string) => {
      const value = BigInt(amount)
      pending.spent += value
      pending.reservation?.spend(value)
      this.spent += value
      this.emit('spend', {
        requestId: pending.requestId,
        origin: pending.origin,
        amount: value,
        spent: pending.spent,
        maxSpend: pending.maxSpend,
      })
      try {
        pending.onSpend?.(pending.spent, BigInt(stream._remoteReceiveMax.toString()))
      } catch {
        // a caller's hook must not break payment accounting
      }
      checkCap()
    })
    // STREAM enforces sendMax in the sender's own units: this is the cap, whatever the server asks.
    stream.setSendMax(limit.toString())
  }

  /**
   * A lease stream: a new lease must name a request of this origin in flight and fit the host's
   * authorization; a known one (the host resuming) must belong to this origin and still be live.
   * Returns a close reason when refused.
   */
  #lease(
    origin: string,
    connection: Connection,
    stream: DataAndMoneyStream,
    requestId: string,
    terms: LeaseTerms,
    rest: Buffer,
  ): string | undefined {
    const budget = this.#budgets.get(origin)
    let lease = this.#leases.get(terms.id)
    if (lease && lease.origin !== origin) return CloseReasons.leaseNotAuthorized
    if (lease && !lease.live) return lease.status === 'revoked' ? CloseReasons.revoked : CloseReasons.leaseNotAuthorized
    const pending = lease ? undefined : this.#pending.get(requestId)
    if (!lease && (terms.resume || !pending || pending.origin !== origin || pending.finished)) {
      return CloseReasons.unknownRequest
    }
    if (budget?.revoked) return CloseReasons.revoked
    const rate = budget?.rate
    if (!budget || !rate) return CloseReasons.leaseNotAuthorized
    const sameAsset =
      connection.destinationAssetCode === this.#asset?.code && connection.destinationAssetScale === this.#asset?.scale
    // Same asset: compare the host's rate with our cap before anything is paid. (Across assets the
    // token bucket still holds it to the cap, in our units.)
    if (sameAsset && terms.amount * BigInt(rate.intervalMs) > rate.amount * BigInt(terms.intervalMs)) {
      if (lease) lease.stop(CloseReasons.rateTooHigh)
      return CloseReasons.rateTooHigh
    }
    if (!lease) {
      lease = new PayerLease(terms.id, origin, terms, pending?.leaseMax)
      pending?.leases.push(lease)
      this.#remember(lease)
    }
    lease.terms = terms
    const rated = connection as unknown as { exchangeRate?: unknown }
    if (sameAsset && rated.exchangeRate === undefined) rated.exchangeRate = Rational.fromNumber(1, true)
    lease.attach(stream, rest, {
      budget,
      sameAsset,
      checks: this.#capChecks.get(connection),
      resumeCredentials: () => {
        const { destinationAccount, sharedSecret } = this.#server!.generateAddressAndSecret({
          connectionTag: connection.connectionTag!,
        })
        return { address: destinationAccount, secret: sharedSecret.toString('base64url') }
      },
      onSpend: (amount) => {
        this.spent += amount
        this.emit('leaseSpend', { lease: lease.id, origin, amount, spent: lease.spent })
      },
    })
    return undefined
  }

  /** Money came back on a refund stream: it is no longer spent, for the payer and the host's budget. */
  #refunded(pending: Pending, amount: bigint): void {
    this.refunded += amount
    this.#budgets.get(pending.origin)?.refund(amount)
    this.emit('refund', { requestId: pending.requestId, origin: pending.origin, amount, refunded: pending.refunded })
  }

  #remember(lease: PayerLease): void {
    this.#leases.set(lease.id, lease)
    if (this.#leases.size <= this.#maxLeases) return
    for (const [id, old] of this.#leases) {
      if (!old.live) {
        this.#leases.delete(id)
        return
      }
    }
  }

  /**
   * Gives a host (an origin such as `https://api.example`) a budget shared by all requests to it:
   * together they pay at most `total`, each still at most its own `maxSpend`. With `rate`, the
   * host may also open leases: pull payments over time, at most `rate.amount` per
   * `rate.intervalMs` (all its leases together never more than `total`). Replaces any budget the
   * host had (what it spent so far still counts against the new total).
   */
  authorize(origin: string, options: { total: bigint; rate?: RateCap }): BudgetView {
    const key = originOf(origin)
    if (options.total < 0n) throw new CogpayError(ErrorCodes.INVALID_AMOUNT, `total must be >= 0, got ${options.total}`)
    const rate = options.rate
    if (rate && (rate.amount <= 0n || !Number.isSafeInteger(rate.intervalMs) || rate.intervalMs <= 0)) {
      throw new CogpayError(ErrorCodes.INVALID_OPTIONS, 'rate must be { amount > 0n, intervalMs > 0 }')
    }
    const budget = this.#budgets.get(key) ?? new Budget(key, options.total)
    budget.total = options.total
    budget.revoked = false
    budget.rate = rate
    this.#budgets.set(key, budget)
    return budget.view()
  }

  /** Every lease this payer knows: what it paid on each, and where it stands. */
  leases(): LeaseView[] {
    return [...this.#leases.values()].map((lease) => lease.view())
  }

  /** Stops one lease: the host hears `COGPAY_REVOKED` at once and may not resume it. */
  revokeLease(id: string): LeaseView {
    const lease = this.#leases.get(id)
    if (!lease) throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `no lease ${id}`)
    lease.stop(CloseReasons.revoked, 'revoked')
    return lease.view()
  }

  /** Raises a host's budget by `amount`. */
  topUp(origin: string, amount: bigint): BudgetView {
    const budget = this.#budget(origin)
    if (amount < 0n) throw new CogpayError(ErrorCodes.INVALID_AMOUNT, `top-up must be >= 0, got ${amount}`)
    budget.total += amount
    return budget.view()
  }

  /**
   * Revokes a host's budget: every request to it stops paying at once (the server hears
   * `COGPAY_REVOKED`), and new ones pay nothing until `authorize` is called again.
   */
  revoke(origin: string): BudgetView {
    const budget = this.#budget(origin)
    budget.revoked = true
    for (const pending of this.#pending.values()) {
      if (pending.origin === budget.origin && pending.stream && !pending.capReached && !pending.revoked) {
        pending.revoked = true
        refuseStream(pending.stream, CloseReasons.revoked)
      }
    }
    for (const lease of this.#leases.values()) {
      if (lease.origin === budget.origin) lease.stop(CloseReasons.revoked, 'revoked')
    }
    return budget.view()
  }

  /** Every host budget: what it may pay, has paid, holds for requests under way, and has left. */
  budgets(): BudgetView[] {
    return [...this.#budgets.values()].map((budget) => budget.view())
  }

  #budget(origin: string): Budget {
    const budget = this.#budgets.get(originOf(origin))
    if (!budget) {
      throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `no budget for ${originOf(origin)}; call authorize() first`)
    }
    return budget
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
    for (const lease of this.#leases.values()) lease.destroy()
    const server = this.#server
    this.#server = undefined
    this.#starting = undefined
    if (server) {
      // ilp-protocol-stream's close ends every connection with a packet to its peer, and rejects
      // when one of those is never answered (BTP's response timeout): a peer's fault, not ours.
      await withTimeout(server.close(), closeTimeoutMs, () => new Error('close timed out')).catch(() => {})
    }
    await this.plugin.disconnect().catch(() => {})
  }
}

/** Creates a {@link Payer}. Options are checked now; it connects on first use. */
export function createPayer(options: PayerOptions = {}): Payer {
  return new Payer(options)
}

/** The origin of a URL (`https://host:port`), as budgets and credentials are keyed. */
function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch (cause) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `${JSON.stringify(url)} is not a URL or origin`, { cause })
  }
}
