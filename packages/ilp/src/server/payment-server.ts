import { EventEmitter } from 'node:events'
import { LRUCache } from 'lru-cache'
import {
  CogpayError,
  ErrorCodes,
  isUnderAddress,
  type Asset,
  type CollectRequest,
  type Collection,
  type LeaseReceiver,
  type LeaseStream,
  type OpenLeaseRequest,
  type OpenRequest,
  type PaymentHeaders,
  type PaymentReceiver,
  type PaymentStream,
  type RefundRequest,
} from '@cogpay/core'
import { ClientLimits, payerAccount } from './client-limits.js'
import { PaymentSocket, SocketFullError, waitForTotal, type SocketStream } from './payment-socket.js'
import type { IlpPlugin } from '../plugin.js'
import { DEFAULT_UPLINK, parseUplinkUri, redactedMessage } from '../uplink-uri.js'
import { silentLogger, type Logger } from '../logger.js'
import { positiveInteger } from '../positive-integer.js'
import { Uplink } from './uplink.js'

/** Options for {@link createPaymentServer}. */
export interface PaymentServerOptions {
  /** The server's uplink: a BTP URI, a plugin, or an {@link Uplink}. Default `btp+ws://127.0.0.1:7768`. */
  uplink?: string | IlpPlugin | Uplink
  /** Most payment sockets kept open; the least recently used is closed past this. Default `10000`. */
  maxSockets?: number
  /** Most sockets being opened at once, over all clients; past this, requests get 503 `COGPAY_SERVER_BUSY`. Default `256`. */
  maxOpening?: number
  /**
   * Most payments one client may have unsettled at once: a fixed price until it has arrived, a
   * metered stream until it closes, a lease until its stream is open. Counted per remote IP and
   * per payer account (the payer's address less its last segment); past it, 429
   * `COGPAY_TOO_MANY_REQUESTS` with `Retry-After`, before any socket is opened. So one client's
   * slow or never-answering requests cannot use up `maxOpening` for everyone. Default `64`.
   */
  maxPendingPerClient?: number
  /** Where to log (pino, or any {@link Logger}): sockets, refused and failed payments. Default: nothing. */
  logger?: Logger
  /** A kept socket unused for this long is closed. Default `60000` ms. */
  socketIdleMs?: number
  /** Give up opening a socket (502), or waiting for the uplink to connect (503), after this long. Default `5000` ms. */
  connectTimeoutMs?: number
  /** Give up waiting for payment after this long (402). Default `10000` ms. */
  paymentTimeoutMs?: number
  /**
   * Streams one socket opens before it is replaced by a new one. STREAM keeps a record of every
   * closed stream for the life of a connection, so a socket that lives forever grows forever.
   * Default `10000`.
   */
  maxStreamsPerSocket?: number
}

/** Events of a {@link PaymentServer}. */
export interface PaymentServerEvents {
  /** A new payment socket was opened (not emitted when one is reused). */
  socket: [{ address: string }]
}

/**
 * The server's payment side over STREAM: implements core's `PaymentReceiver`. It keeps one reverse
 * payment socket per payer (address + secret) in a bounded LRU with idle eviction, all multiplexed
 * over one uplink, and opens a new stream on it per request.
 */
export class PaymentServer extends EventEmitter<PaymentServerEvents> implements PaymentReceiver, LeaseReceiver {
  readonly uplink: Uplink
  /** Sockets opened since start (a reused socket is not counted again). */
  socketsOpened = 0
  /** Total received since start, in the server's units. */
  received = 0n
  /** Payments collected in full since start. */
  paymentsCollected = 0
  /** Total paid back since start (refunds of failed requests), in the server's units. */
  refunded = 0n

  /**
   * Refund money in doubt, in the server's units: refund packets whose outcome it never learned
   * (see `Payer.inDoubt`). Payments *to* the server are in doubt on the payer's side: the server
   * counts only what arrived.
   */
  get inDoubt(): bigint {
    return this.uplink.inDoubt.amount
  }
  readonly #options: Required<Omit<PaymentServerOptions, 'uplink' | 'logger'>>
  readonly #sockets: LRUCache<string, Promise<PaymentSocket>>
  #opening = 0
  readonly #limits: ClientLimits
  readonly #log: Logger
  /** Sockets being closed, by key: a new socket to the same payer waits for the old one. */
  readonly #retiring = new Map<string, Promise<void>>()
  /**
   * Sockets the LRU let go of while a lease stream was still on them: kept, however idle, until
   * their last lease ends. Bounded by the leases running.
   */
  readonly #pinned = new Map<string, PaymentSocket>()
  #closing = false

  constructor(options: PaymentServerOptions = {}) {
    super()
    const uplink = options.uplink ?? process.env.COGPAY_UPLINK ?? DEFAULT_UPLINK
    if (typeof uplink === 'string') parseUplinkUri(uplink)
    const connectTimeoutMs = positiveInteger(options.connectTimeoutMs, 5_000, 'connectTimeoutMs')
    this.uplink = uplink instanceof Uplink ? uplink : new Uplink(uplink, { connectTimeoutMs })
    this.#options = {
      maxSockets: positiveInteger(options.maxSockets, 10_000, 'maxSockets'),
      maxOpening: positiveInteger(options.maxOpening, 256, 'maxOpening'),
      socketIdleMs: positiveInteger(options.socketIdleMs, 60_000, 'socketIdleMs'),
      connectTimeoutMs,
      paymentTimeoutMs: positiveInteger(options.paymentTimeoutMs, 10_000, 'paymentTimeoutMs'),
      maxStreamsPerSocket: positiveInteger(options.maxStreamsPerSocket, 10_000, 'maxStreamsPerSocket'),
      maxPendingPerClient: positiveInteger(options.maxPendingPerClient, 64, 'maxPendingPerClient'),
    }
    this.#limits = new ClientLimits(this.#options.maxPendingPerClient)
    this.#log = options.logger ?? silentLogger
    this.#sockets = new LRUCache({
      max: this.#options.maxSockets,
      ttl: this.#options.socketIdleMs,
      updateAgeOnGet: true,
      dispose: (socket, key) => {
        const closed = socket
          .then((s) => {
            if (this.#closing) return s.close()
            if (s.leases > 0 && !s.closed) return void this.#pinned.set(key, s)
            return s.retire(this.#options.paymentTimeoutMs + this.#options.connectTimeoutMs)
          })
          .catch(() => {})
          .finally(() => {
            if (this.#retiring.get(key) === closed) this.#retiring.delete(key)
          })
        this.#retiring.set(key, closed)
      },
    })
  }

  /** Number of payment sockets kept (open or opening). */
  get socketCount(): number {
    return this.#sockets.size
  }

  async asset(): Promise<Asset> {
    await this.uplink.connect()
    const asset = this.uplink.asset
    if (!asset) throw new CogpayError(ErrorCodes.UPLINK_UNAVAILABLE, 'uplink has no asset', { status: 503 })
    return asset
  }

  async collect(request: CollectRequest): Promise<Collection> {
    const release = this.#admit(request.payment, request.client)
    try {
      const collection = await this.#collect(request)
      this.#log.debug({ requestId: request.payment.requestId, paid: collection.paid.toString() }, 'payment collected')
      return collection
    } catch (err) {
      this.#failed(err, request.payment, request.client)
      throw err
    } finally {
      release()
    }
  }

  /** Logs a payment that failed or was refused: codes, addresses and amounts, never a secret. */
  #failed(err: unknown, payment: PaymentHeaders, client: string | undefined): void {
    const code = (err as { code?: unknown })?.code
    const fields = { code, requestId: payment.requestId, payer: payment.address, client, message: redactedMessage(err) }
    if (code === ErrorCodes.TOO_MANY_REQUESTS || code === ErrorCodes.SERVER_BUSY) this.#log.warn(fields, 'payment refused: limit')
    else this.#log.info(fields, 'payment failed')
  }

  /** Takes a slot of this client's share (its IP, its payer's account), or logs and throws 429. */
  #admit(payment: PaymentHeaders, client: string | undefined): () => void {
    try {
      return this.#limits.take([
        ['client', client],
        ['payer account', payerAccount(payment.address)],
      ])
    } catch (err) {
      this.#failed(err, payment, client)
      throw err
    }
  }

  async #collect(request: CollectRequest, retried = false): Promise<Collection> {
    const paying = await this.#openStream(request.payment, request.amount)
    const options = {
      requestId: request.payment.requestId,
      amount: request.amount,
      timeoutMs: this.#options.paymentTimeoutMs,
      signal: request.signal,
    }
    paying.ask(request.amount)
    let again = false
    const paid = await waitForTotal(paying, options).catch((err: unknown) => {
      paying.close()
      // The payer no longer had this socket's connection (its end closed, and the close was
      // lost): it read nothing of this request, so the request goes once more on a new socket.
      if (!retried && paying.received === 0n && paying.socket?.stale) {
        again = true
        return 0n
      }
      // What arrived before it failed: the paywall pays it back (refund: 'on-error').
      if (paying.received > 0n && typeof err === 'object' && err !== null) {
        Object.defineProperty(err, 'received', { value: paying.received, enumerable: false })
      }
      const silent = paying.received === 0n && (err as { code?: unknown })?.code === ErrorCodes.PAYMENT_TIMEOUT
      this.#dropIfNeverPaid(request.payment, paying, silent)
      throw err
    })
    if (again) return this.#collect(request, true)
    // A fixed price is complete: end the stream now, so the payer settles before the response.
    paying.close()
    this.received += paid
    this.paymentsCollected++
    return { paid, asset: paying.asset, close: () => paying.close() }
  }

  /** Drops the kept socket to a payer (its dispose retires it): the next request opens a new one. */
  #forgetSocket(address: string, secret: Uint8Array): void {
    this.#sockets.delete(socketKey(address, secret))
  }

  /**
   * A socket on which nothing was ever paid, after a payment on it failed: closed now rather than
   * kept for its idle timeout. Payers that never pay (a flood of them) then hold no memory once
   * their requests are answered; an honest payer whose request failed opens a new one next time.
   * With `silentPayer` (a payment timed out, or a meter stalled, with nothing paid or refused),
   * also a socket paid on before: the payer may have lost its end, and the close that said so was
   * lost too; its new end does not know this socket's address, so every later request on it would
   * time out (`test/uplink-faults.test.ts`).
   */
  #dropIfNeverPaid(payment: PaymentHeaders, paying: SocketStream, silentPayer = false): void {
    const socket = paying.socket
    if (!socket || (socket.paidOnce && !silentPayer) || socket.leases > 0) return
    const key = socketKey(payment.address, payment.secret)
    const kept = this.#sockets.peek(key, { allowStale: true })
    if (!kept) return
    void kept.then((s) => {
      if (s === socket && (silentPayer || !socket.paidOnce) && this.#sockets.peek(key, { allowStale: true }) === kept) {
        this.#sockets.delete(key)
      }
    }, () => {})
  }

  async open(request: OpenRequest): Promise<PaymentStream> {
    const release = this.#admit(request.payment, request.client)
    let paying: SocketStream
    try {
      paying = await this.#openStream(request.payment)
    } catch (err) {
      release()
      this.#failed(err, request.payment, request.client)
      throw err
    }
    void paying.closed.then(release)
    // Count what a metered stream received once it has closed, however it closed.
    void paying.closed.then((received) => {
      this.received += received
      this.paymentsCollected++
      if (received === 0n) this.#dropIfNeverPaid(request.payment, paying, paying.stopCode === ErrorCodes.PAYMENT_STALLED)
    })
    return paying
  }

  /**
   * Pays back up to `request.amount` of what a request paid, on a refund stream to its payer (on
   * its socket, reused or new). Resolves with what was sent; never rejects: a payer that is gone,
   * or refuses, gets nothing (logged).
   */
  async refund(request: RefundRequest): Promise<bigint> {
    const { address, secret, requestId } = request.payment
    if (request.amount <= 0n || this.#closing) return 0n
    try {
      await this.#checkPayer(address)
      let sent = 0n
      // A refund right after a failed payment can reach the payer's end of the failed connection
      // while it is still being torn down, and nothing moves. So: a few attempts, each on a new
      // socket once the last one moved nothing, a second apart, each given at most 3 s to move.
      for (let attempt = 0; attempt < REFUND_ATTEMPTS && sent < request.amount && !this.#closing; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 1000).unref())
        const left = request.amount - sent
        const timeoutMs = Math.min(this.#options.paymentTimeoutMs, 3000)
        const outcome = await this.#onSocket(address, secret, (socket) => socket.refund(requestId, left, timeoutMs))
        sent += outcome.sent
        // The payer said no (an unknown request, nothing left to refund), or took what it accepts:
        // trying again changes nothing. Only a refund that moved nothing is tried again.
        if (outcome.refused || outcome.sent > 0n) break
        this.#forgetSocket(address, secret)
      }
      this.refunded += sent
      const fields = { requestId, payer: address, amount: request.amount.toString(), refunded: sent.toString() }
      if (sent < request.amount) this.#log.warn(fields, 'refund incomplete')
      else this.#log.info(fields, 'refunded')
      return sent
    } catch (err) {
      this.#log.warn({ requestId, payer: address, amount: request.amount.toString(), message: redactedMessage(err) }, 'refund failed')
      return 0n
    }
  }

  /**
   * Opens a lease's stream to the payer (on its socket, reused or new) and writes the lease's
   * hello. The socket is kept open while a lease is on it, however idle.
   */
  async openLease(request: OpenLeaseRequest): Promise<LeaseStream> {
    const { address, secret, requestId } = request.payment
    await this.#checkPayer(address)
    const release = this.#admit(request.payment, undefined)
    let paying
    try {
      paying = await this.#onSocket(address, secret, (socket) => socket.openLeaseStream(requestId, request.lease))
    } finally {
      release()
    }
    const key = socketKey(address, secret)
    const socket = paying.socket
    void paying.closed.then((received) => {
      this.received += received
      if (socket.leases === 0 && this.#pinned.get(key) === socket) {
        this.#pinned.delete(key)
        this.#retiring.set(key, socket.retire(this.#options.paymentTimeoutMs))
      }
    })
    return paying
  }

  /** Validates the payer's address, then opens a stream on its socket (reused or new). */
  async #openStream(payment: PaymentHeaders, amount?: bigint): Promise<SocketStream> {
    const { address, secret, requestId } = payment
    await this.#checkPayer(address)
    return this.#onSocket(address, secret, (socket) => socket.openStream(requestId, amount))
  }

  /**
   * Runs `use` on the payer's socket (reused or new). When the socket has no room for another
   * stream (`SocketFullError`): on one still opening, once the payer's first answer has raised its
   * limit; else, or if still full, once more on the socket kept then (a new one if need be).
   */
  async #onSocket<T>(address: string, secret: Uint8Array, use: (socket: PaymentSocket) => T | Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const socket = await this.#socketFor(address, secret)
      try {
        return await use(socket)
      } catch (err) {
        if (!(err instanceof SocketFullError)) throw err
        // Until the payer's first answer brings its own limit, a socket may open only the streams
        // STREAM allows by default (10): the rest wait for that answer, on the same socket.
        if (!socket.connected && !socket.closed) {
          await socket.opened
          try {
            if (socket.hasRoom) return await use(socket)
          } catch (again) {
            if (!(again instanceof SocketFullError)) throw again
          }
        }
        // Full: once more, on whatever socket is kept for the payer now (a new one if need be).
        if (attempt === 2) throw err
      }
    }
  }

  async #checkPayer(address: string): Promise<void> {
    await this.uplink.connect()
    // Never connect to ourselves or to the hub above us: only to an address a payer could own.
    const own = this.uplink.address
    const parent = own.slice(0, own.lastIndexOf('.'))
    if (isUnderAddress(address, own) || isUnderAddress(parent, address)) {
      throw new CogpayError(
        ErrorCodes.INVALID_ADDRESS,
        `Cogpay-Address ${address} is this server's own address or its parent's; it cannot be a payer`,
        { status: 400 },
      )
    }
  }

  async #socketFor(address: string, secret: Uint8Array): Promise<PaymentSocket> {
    const key = socketKey(address, secret)
    // A socket kept for its leases is the only one to this payer: use it while it has room.
    const pinned = this.#pinned.get(key)
    if (pinned && !pinned.closed) {
      if (pinned.hasRoom || !pinned.connected) return pinned
      throw new SocketFullError()
    }
    if (pinned) this.#pinned.delete(key)
    // Reuse the kept socket; if it is full or worn out, drop it (its dispose retires it) and look
    // again: a concurrent request may already have put the replacement in its place.
    for (let kept = this.#sockets.get(key); kept; kept = this.#sockets.get(key)) {
      const socket = await kept.catch(() => undefined)
      // One still opening is used even when full: its room grows with the payer's first answer.
      const usable = socket && (socket.hasRoom || (!socket.connected && !socket.closed))
      if (usable && socket.streamsOpened < this.#options.maxStreamsPerSocket) return socket
      if (this.#sockets.get(key) === kept) this.#sockets.delete(key)
    }
    if (this.#opening >= this.#options.maxOpening) {
      const busy = new CogpayError(
        ErrorCodes.SERVER_BUSY,
        `too many payment sockets opening at once, over all clients (limit ${this.#options.maxOpening}); try again shortly`,
        { status: 503 },
      )
      busy.headers['Retry-After'] = '1'
      throw busy
    }
    // From here to the set() below nothing awaits, so only one request opens the replacement.
    // The payer keys its end of a connection by address: a socket being retired must be gone first.
    const retiring = this.#retiring.get(key)
    this.#opening++
    const opening = (async () => {
      if (retiring) await retiring
      return PaymentSocket.open(this.uplink.openChannel(), address, Buffer.from(secret), {
        connectTimeoutMs: this.#options.connectTimeoutMs,
        idleTimeoutMs: this.#options.socketIdleMs,
      })
    })()
    // A socket counts as opening until the payer has answered its first packet (which carries
    // the first request's hello), or it failed to (`opened` rejects, at the latest on its connect
    // timeout).
    void opening.then((socket) => socket.opened).catch(() => {}).finally(() => this.#opening--)
    this.#sockets.set(key, opening)
    try {
      const socket = await opening
      // A socket that died (idle, or its payer went away) leaves the table at once, rather than
      // holding its memory and a slot until the LRU happens to evict it; its dispose retires it.
      void socket.whenDead.then(() => {
        // allowStale: past its TTL an entry still holds its slot, but plain peek() no longer sees it.
        if (this.#sockets.peek(key, { allowStale: true }) === opening) this.#sockets.delete(key)
      })
      this.socketsOpened++
      this.#log.debug({ payer: address }, 'payment socket opened')
      this.emit('socket', { address })
      return socket
    } catch (err) {
      if (this.#sockets.get(key) === opening) this.#sockets.delete(key)
      throw err
    }
  }

  /** Closes every socket and the uplink. */
  async close(): Promise<void> {
    this.#closing = true
    this.#sockets.clear()
    for (const socket of this.#pinned.values()) socket.close()
    this.#pinned.clear()
    await this.uplink.close()
  }
}

/** Attempts at a refund that moves nothing (see {@link PaymentServer.refund}). */
const REFUND_ATTEMPTS = 3

/** Creates a {@link PaymentServer}. Options are checked now. */
export function createPaymentServer(options: PaymentServerOptions = {}): PaymentServer {
  return new PaymentServer(options)
}

let shared: PaymentServer | undefined

/**
 * The process-wide payment server that `paidRoute` uses when given none: its uplink is
 * `COGPAY_UPLINK`, or `btp+ws://127.0.0.1:7768`. It connects on first use.
 */
export function defaultPaymentServer(): PaymentServer {
  shared ??= new PaymentServer()
  return shared
}

function socketKey(address: string, secret: Uint8Array): string {
  return `${address} ${Buffer.from(secret).toString('base64')}`
}
