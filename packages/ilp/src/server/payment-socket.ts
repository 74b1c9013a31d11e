import { Buffer } from 'node:buffer'
import { createRequire } from 'node:module'
import type { Connection, DataAndMoneyStream } from 'ilp-protocol-stream'
import {
  CloseReasons,
  CogpayError,
  ErrorCodes,
  LineReader,
  decodeLeaseReport,
  encodeAsk,
  encodeFinal,
  encodeHello,
  PING_LINE,
  type Asset,
  type LeaseReport,
  type LeaseStream,
  type LeaseTerms,
  type PaymentStream,
  type StreamFinal,
} from '@cogpay/core'
import type { Channel } from './uplink.js'
import { retryTemporaryRejects } from '../stream-retries.js'

const require = createRequire(import.meta.url)
const { createConnection } = require('ilp-protocol-stream') as typeof import('ilp-protocol-stream')

/** Bytes of stream data a server leaves unsent before it stops adding ask lines. */
const MAX_UNSENT_ASKS = 4096

/** Options for {@link PaymentSocket.open}. */
export interface PaymentSocketOptions {
  /** Give up connecting after this long. */
  connectTimeoutMs: number
  /** STREAM idle timeout: the connection closes after this long without packets. */
  idleTimeoutMs: number
}

/** Options for waiting on a fixed price. */
export interface SocketCollectOptions {
  readonly requestId: string
  readonly amount: bigint
  /** Give up when the payer has not paid in full after this long. */
  readonly timeoutMs: number
  readonly signal?: AbortSignal | undefined
}

/**
 * The server's end of a reverse payment socket: a STREAM connection *to* the payer (the server is
 * the STREAM client), over its own {@link Channel}. Each request gets a new stream on it: the
 * server writes a hello naming the request, raises its receive max to the price, and waits.
 */
export class PaymentSocket {
  /** Streams opened on this socket so far (a connection may open only so many in its life). */
  streamsOpened = 0
  /** Streams under way. */
  active = 0
  /** Lease streams under way: a socket with one is kept open however long it is idle. */
  leases = 0
  /** True once money has arrived on any stream of this socket: a socket that never paid is not worth keeping. */
  paidOnce = false
  #closed = false
  #retiring = false
  readonly #whenClosed: Promise<void>
  /** Why the connection failed, when it did (e.g. a reject from the network: the payer is gone). */
  lastError: string | undefined
  /** Resolves once the connection failed or closed (an idle timeout, the payer gone, or closed by either side). */
  readonly whenDead: Promise<void>

  private constructor(
    readonly connection: Connection,
    readonly channel: Channel,
    readonly asset: Asset,
  ) {
    this.#whenClosed = new Promise((resolve) => {
      connection.once('close', () => {
        this.#closed = true
        void channel.disconnect()
        resolve()
      })
    })
    // An error destroys the connection (an idle timeout is one), and ilp-protocol-stream may not
    // emit 'close' for a long time after: the socket is dead for new requests from then on.
    this.whenDead = new Promise((resolve) => {
      connection.once('close', () => resolve())
      connection.once('error', () => resolve())
    })
    // The streams under way report a connection error as their failure.
    connection.on('error', (err: Error) => (this.lastError ??= err.message))
  }

  /** Opens a socket to a payer's address. Rejects with `COGPAY_PAYER_UNREACHABLE`. */
  static async open(
    channel: Channel,
    destinationAccount: string,
    sharedSecret: Buffer,
    options: PaymentSocketOptions,
  ): Promise<PaymentSocket> {
    const asset = channel.uplink.asset
    if (!asset) throw new CogpayError(ErrorCodes.UPLINK_UNAVAILABLE, 'uplink is not connected', { status: 503 })
    let timer: NodeJS.Timeout | undefined
    const connecting = createConnection({
      plugin: channel,
      destinationAccount,
      sharedSecret,
      idleTimeout: options.idleTimeoutMs,
    })
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${options.connectTimeoutMs} ms`)),
          options.connectTimeoutMs,
        )
      })
      const connection = await Promise.race([connecting, timeout])
      channel.peer = destinationAccount
      retryTemporaryRejects(connection)
      return new PaymentSocket(connection, channel, asset)
    } catch (cause) {
      // A connection that arrives after the timeout is closed at once.
      connecting.then((late) => late.destroy()).catch(() => {})
      await channel.disconnect()
      throw new CogpayError(
        ErrorCodes.PAYER_UNREACHABLE,
        `could not open a payment socket to ${destinationAccount}: ${(cause as Error)?.message ?? cause}`,
        { status: 502, cause },
      )
    } finally {
      clearTimeout(timer)
    }
  }

  get closed(): boolean {
    return this.#closed
  }

  /**
   * True while the payer allows this socket another stream. STREAM caps the stream ids a peer
   * may open; the payer raises the cap as streams close. A socket without room is replaced.
   */
  get hasRoom(): boolean {
    const ids = this.connection as unknown as { nextStreamId: number; remoteMaxStreamId: number }
    return !this.#closed && ids.nextStreamId <= ids.remoteMaxStreamId
  }

  /**
   * Opens a stream for one request and writes its hello (naming `amount` when the total is known
   * up front). Throws {@link SocketFullError} when the payer allows no further stream.
   */
  openStream(requestId: string, amount?: bigint): SocketStream {
    const stream = this.#createStream()
    stream.write(encodeHello({ v: 1, requestId, ...(amount === undefined ? {} : { amount }) }))
    // A metered stream states each raise of its ask in a line; a fixed price said it in the hello.
    return new SocketStream(stream, this.asset, this, amount === undefined)
  }

  /**
   * Opens a refund stream for a request and pays back up to `amount` on it (money the other way:
   * the payer's receive max, in its own units, bounds what it accepts). Resolves with what was
   * sent once `amount` is sent, the payer refuses or stops accepting, the stream closes, or after
   * `timeoutMs`; the stream is then closed. Throws like `openStream`.
   */
  async refund(requestId: string, amount: bigint, timeoutMs: number): Promise<{ sent: bigint; refused: boolean }> {
    const stream = this.#createStream()
    stream.write(encodeHello({ v: 1, requestId, refund: amount }))
    stream.on('error', () => {})
    stream.setSendMax(amount.toString())
    const sent = () => BigInt(stream.totalSent)
    const internals = stream as unknown as { _outgoingHeldAmount: { isZero(): boolean } }
    // Done: all of it sent, or the payer has all it accepts (its receive max: what the request
    // paid and has not had back) and nothing is in flight. Until the payer has read the hello its
    // receive max is 0 (a first packet can be turned away for it): that is not "all it accepts";
    // a payer that refuses says so in a line.
    const complete = () =>
      sent() >= amount ||
      (internals._outgoingHeldAmount.isZero() &&
        !stream._remoteReceiveMax.isZero() &&
        !stream._remoteReceived.lessThan(stream._remoteReceiveMax))
    let refused = false
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        clearInterval(poll)
        stream.removeListener('outgoing_money', check)
        stream.removeListener('data', onLine)
        stream.removeListener('close', done)
        resolve()
      }
      const check = () => {
        if (complete()) done()
      }
      // The payer says why it refuses in a line of data; any line ends the refund.
      const onLine = () => {
        refused = true
        done()
      }
      const timer = setTimeout(done, timeoutMs)
      // The receive max arrives in answers to packets, with no event of its own: poll for it too.
      const poll = setInterval(check, 5)
      stream.on('outgoing_money', check)
      stream.on('data', onLine)
      stream.once('close', done)
    })
    const total = sent()
    if (!stream.destroyed) stream.end()
    return { sent: total, refused }
  }

  /** Opens a lease's stream: its hello states the lease's terms. Throws like `openStream`. */
  openLeaseStream(requestId: string, lease: LeaseTerms): LeaseSocketStream {
    const stream = this.#createStream()
    this.leases++
    stream.once('close', () => this.leases--)
    stream.write(encodeHello({ v: 1, requestId, lease }))
    return new LeaseSocketStream(stream, this.asset, lease.id, this)
  }

  #createStream(): DataAndMoneyStream {
    if (!this.hasRoom) throw new SocketFullError()
    const stream = this.connection.createStream()
    this.streamsOpened++
    this.active++
    stream.once('close', () => {
      this.active--
      if (this.#retiring && this.active === 0) this.close()
    })
    return stream
  }

  /**
   * Closes the socket once no stream is under way, and resolves when it is closed: at the latest
   * after `graceMs`, when it is destroyed. The payer keys its end of a connection by address, so a
   * new socket to the same payer must wait for this one to be gone.
   */
  retire(graceMs: number): Promise<void> {
    this.#retiring = true
    if (this.active === 0) this.close()
    const timer = setTimeout(() => void this.connection.destroy().catch(() => {}), graceMs)
    timer.unref()
    return this.#whenClosed.finally(() => clearTimeout(timer))
  }

  /**
   * Closes the connection now. It is destroyed rather than ended: a payer (ilp-protocol-stream)
   * answers a clean close with end(), which can wait on its streams indefinitely and keeps its end
   * of the connection alive, so a new socket to the same address would land on it. An error close
   * makes it drop its end at once.
   */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.connection.destroy().catch(() => {})
  }
}

/** The payer allows this socket no further stream: open a new socket. */
export class SocketFullError extends CogpayError {
  constructor() {
    super(ErrorCodes.PAYMENT_FAILED, 'the payment socket has no room for another stream', { status: 502 })
  }
}

/**
 * One request's stream on a payment socket, the server's side: implements core's `PaymentStream`.
 * The payer refuses with a line of stream data (or a close with a reason); the server always
 * closes the stream itself, which hands the stream id back to it.
 */
export class SocketStream implements PaymentStream {
  readonly stopped: Promise<CogpayError>
  /** Resolves with the total received once the stream has closed, however it closed. */
  readonly closed: Promise<bigint>
  /** Why its owner stopped it, when it closed it with a final message that says (a metered stream). */
  stopCode: string | undefined
  #closedByUs = false
  #asked = 0n

  constructor(
    readonly stream: DataAndMoneyStream,
    readonly asset: Asset,
    readonly socket?: PaymentSocket,
    /** Write an ask line on each raise (metered and lease streams). */
    readonly announceAsks = false,
  ) {
    this.closed = new Promise((resolve) => stream.once('close', () => resolve(this.received)))
    if (socket) stream.once('money', () => (socket.paidOnce = true))
    this.stopped = new Promise<CogpayError>((resolve) => {
      const said = new LineReader({ maxLineBytes: 512, overflow: { keep: 256 } })
      // The owner (collect, or a Meter with its final message) closes the stream on this.
      const stop = (reason: string) => {
        if (!this.#closedByUs) resolve(refusal(reason, this.received, this.#asked))
      }
      // The payer writes lines: a JSON object is a message (a lease report), anything else says
      // why it refuses. Lines are bounded; a longer one is cut.
      stream.on('data', (chunk: Buffer) => {
        said.push(chunk)
        for (let line = said.next(); line !== undefined; line = said.next()) {
          const text = Buffer.from(line.buffer, line.byteOffset, line.byteLength).toString('latin1')
          if (text.startsWith('{')) this.onMessage(text)
          else return stop(text)
        }
      })
      stream.on('error', (err: Error) => stop(err.message))
      // A stream closed by its connection's failure says nothing itself: take the connection's error.
      stream.once('close', () => setImmediate(() => stop(stream._errorMessage ?? socket?.lastError ?? '')))
    })
  }

  /** A JSON line from the payer. Plain payment streams ignore them. */
  protected onMessage(_line: string): void {}

  get received(): bigint {
    return BigInt(this.stream.totalReceived)
  }

  ask(total: bigint): void {
    if (total <= this.#asked || this.#closedByUs) return
    this.#asked = total
    this.stream.setReceiveMax(total.toString())
    // Skipped while earlier lines wait to be sent (a payer that reads no data): bounded memory.
    if (this.announceAsks && !this.stream.destroyed && this.stream.writableLength < MAX_UNSENT_ASKS) {
      this.stream.write(encodeAsk({ v: 1, ask: total, received: this.received }))
    }
  }

  /**
   * Lowers the receive max to what has arrived (ilp-protocol-stream only raises it through its
   * API, so this sets its private field and tells the send loop), so the payer's prepaid window
   * stops: a packet on its way is turned away for the max rather than kept unasked-for.
   */
  freeze(): void {
    if (this.stream.destroyed) return
    const internals = this.stream as unknown as { _receiveMax: unknown; _totalReceived: unknown; emit(event: string): void }
    internals._receiveMax = internals._totalReceived
    this.#asked = this.received
    internals.emit('_maybe_start_send_loop')
  }

  onMoney(listener: (received: bigint) => void): () => void {
    const onMoney = () => listener(this.received)
    this.stream.on('money', onMoney)
    return () => this.stream.removeListener('money', onMoney)
  }

  close(final?: StreamFinal): void {
    if (this.#closedByUs) return
    this.#closedByUs = true
    this.stopCode = final?.code
    if (this.stream.destroyed) return
    if (!final) return void this.stream.end()
    // The write's callback runs once the line is loaded into a packet, not once it arrived.
    this.stream.write(encodeFinal(final), () => void this.#endOnceDelivered())
  }

  /**
   * Ends the stream once its last data is answered. ilp-protocol-stream forgets a closed stream
   * at once, and with it the data of a packet still in flight: if that packet is rejected (and
   * STREAM retries rejected packets), the data is never sent again. Ended too early, the final
   * line was lost for about one metered request in twenty under load, and the payer read a whole
   * body as cut. Bounded: ends after `maxWaitMs` whatever happened.
   */
  async #endOnceDelivered(maxWaitMs = 2000): Promise<void> {
    const connection = this.socket?.connection as unknown as { looping?: boolean } | undefined
    const stream = this.stream as unknown as { _outgoingDataToRetry?: unknown[] }
    const deadline = Date.now() + maxWaitMs
    while (!this.stream.destroyed && Date.now() < deadline) {
      if (!connection?.looping && (stream._outgoingDataToRetry?.length ?? 0) === 0) break
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    if (!this.stream.destroyed) this.stream.end()
  }
}

/**
 * A lease's stream, the host's side: implements core's `LeaseStream`. The payer's first line is
 * its report of what it has paid on the lease; the socket's channel records when the payer last
 * answered, which is how the host tells a quiet payer from a gone one.
 */
export class LeaseSocketStream extends SocketStream implements LeaseStream {
  readonly report: Promise<LeaseReport | undefined>
  #reported: ((report: LeaseReport | undefined) => void) | undefined

  constructor(
    stream: DataAndMoneyStream,
    asset: Asset,
    readonly leaseId: string,
    override readonly socket: PaymentSocket,
  ) {
    super(stream, asset, socket, true)
    this.report = new Promise((resolve) => (this.#reported = resolve))
    void this.stopped.then(() => this.#reported?.(undefined))
  }

  protected override onMessage(line: string): void {
    const report = decodeLeaseReport(line)
    if (report && report.lease === this.leaseId) this.#reported?.(report)
  }

  get lastAnswerAt(): number {
    return this.socket.channel.lastAnswerAt
  }

  ping(): void {
    if (!this.stream.destroyed) this.stream.write(PING_LINE)
  }

  destroy(): void {
    this.socket.close()
  }
}

/** Resolves with the total received once it reaches `amount`; rejects with a typed error. @internal */
export function waitForTotal(paying: SocketStream, options: SocketCollectOptions): Promise<bigint> {
  return new Promise<bigint>((resolve, reject) => {
    const settle = (error?: CogpayError) => {
      clearTimeout(timer)
      unsubscribe()
      options.signal?.removeEventListener('abort', onAbort)
      if (error) reject(error)
      else resolve(paying.received)
    }
    const unsubscribe = paying.onMoney((received) => {
      if (received >= options.amount) settle()
    })
    void paying.stopped.then((error) => {
      if (paying.received >= options.amount) settle()
      else settle(error)
    })
    const onAbort = () =>
      settle(new CogpayError(ErrorCodes.CLIENT_ABORTED, 'the client went away before it paid', { status: 499 }))
    const timer = setTimeout(
      () =>
        settle(
          new CogpayError(
            ErrorCodes.PAYMENT_TIMEOUT,
            `the payer did not pay within ${options.timeoutMs} ms: price=${options.amount} received=${paying.received}`,
            { status: 402 },
          ),
        ),
      options.timeoutMs,
    )
    if (options.signal?.aborted) return onAbort()
    options.signal?.addEventListener('abort', onAbort, { once: true })
  })
}

function refusal(reason: string, received: bigint, asked: bigint): CogpayError {
  const numbers = `asked=${asked} received=${received}`
  if (reason.includes(CloseReasons.capTooLow)) {
    return new CogpayError(ErrorCodes.CAP_TOO_LOW, `the payer's cap is below what is asked: ${numbers}`, { status: 402 })
  }
  if (reason.includes(CloseReasons.revoked)) {
    return new CogpayError(ErrorCodes.AUTHORIZATION_REVOKED, `the payer revoked its authorization: ${numbers}`, {
      status: 402,
    })
  }
  if (reason.includes(CloseReasons.aborted)) {
    return new CogpayError(ErrorCodes.CLIENT_ABORTED, `the client aborted the request: ${numbers}`, { status: 499 })
  }
  if (reason.includes(CloseReasons.rateTooHigh)) {
    return new CogpayError(
      ErrorCodes.RATE_TOO_HIGH,
      `the payer's rate cap for this host is below the lease's rate: ${numbers}`,
      { status: 402 },
    )
  }
  if (reason.includes(CloseReasons.leaseNotAuthorized)) {
    return new CogpayError(
      ErrorCodes.PAYER_REFUSED,
      `the payer refused the lease: it has not authorized this host to pull over time, or no longer knows the lease (${numbers})`,
      { status: 402 },
    )
  }
  if (/Code: (F02|R00|R01)/.test(reason)) {
    return new CogpayError(ErrorCodes.PAYER_UNREACHABLE, `the payer is gone: ${reason.slice(0, 160)}`, { status: 502 })
  }
  if (reason.includes(CloseReasons.unknownRequest) || reason.includes(CloseReasons.badHello)) {
    return new CogpayError(
      ErrorCodes.PAYER_REFUSED,
      `the payer refused: it has no request in flight with this Cogpay-Request-Id (${numbers})`,
      { status: 402 },
    )
  }
  return new CogpayError(
    ErrorCodes.PAYMENT_FAILED,
    `the payment stream closed before it was paid: ${numbers}${reason ? ` (${reason.slice(0, 100)})` : ''}`,
    { status: 502 },
  )
}
