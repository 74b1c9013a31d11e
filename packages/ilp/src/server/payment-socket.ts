import { Buffer } from 'node:buffer'
import { createConnection, NO_SUCH_CONNECTION, type Connection, type MoneyStream } from '@cogpay/stream'
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

/** Bytes of stream data a server leaves unsent before it stops adding ask lines. */
const MAX_UNSENT_ASKS = 4096

/** The least time between two ask lines on a stream: raises in between are written as one, the latest. */
const ASK_LINE_MS = 20

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
  #connected = false
  readonly #opened: Promise<void>
  readonly #whenClosed: Promise<void>
  /** Why the connection failed, when it did (e.g. a reject from the network: the payer is gone). */
  lastError: string | undefined
  /** Resolves once the connection failed or closed (an idle timeout, the payer gone, or closed by either side). */
  readonly whenDead: Promise<void>

  private constructor(
    readonly connection: Connection,
    readonly channel: Channel,
    readonly asset: Asset,
    destinationAccount: string,
    connectTimeoutMs: number,
  ) {
    this.#whenClosed = connection.whenClosed.then((info) => {
      this.#closed = true
      // The streams under way report a connection's failure as theirs.
      if (info.message) this.lastError ??= info.message
      void channel.disconnect()
    })
    this.whenDead = this.#whenClosed
    // A socket is made for a request that opens its first stream at once: the clock starts now.
    const timer = setTimeout(() => {
      this.lastError ??= `no answer within ${connectTimeoutMs} ms`
      connection.destroy(this.lastError)
    }, connectTimeoutMs)
    timer.unref()
    this.#opened = new Promise<void>((resolve, reject) => {
      connection.whenConnected.then(
        () => {
          clearTimeout(timer)
          this.#connected = true
          resolve()
        },
        (cause: unknown) => {
          clearTimeout(timer)
          reject(unreachable(destinationAccount, this.lastError ?? (cause as Error)?.message ?? String(cause), cause))
        },
      )
    })
    this.#opened.catch(() => {})
  }

  /**
   * A socket to a payer's address, at once: nothing is sent until its first stream, whose hello
   * rides in the connection's first packet (a cold request waits no round trip of its own to
   * connect). A stream on a socket that never connects (the payer gone, or no answer within
   * `connectTimeoutMs`) stops with `COGPAY_PAYER_UNREACHABLE`. Throws `COGPAY_UPLINK_UNAVAILABLE`.
   */
  static open(channel: Channel, destinationAccount: string, sharedSecret: Buffer, options: PaymentSocketOptions): PaymentSocket {
    const asset = channel.uplink.asset
    if (!asset) throw new CogpayError(ErrorCodes.UPLINK_UNAVAILABLE, 'uplink is not connected', { status: 503 })
    const connection = createConnection({
      plugin: channel,
      sharedSecret,
      sourceAccount: channel.address,
      asset: { code: asset.code, scale: asset.scale },
      destinationAccount,
      idleTimeoutMs: options.idleTimeoutMs,
      // A Prepare the payer never answers is given up after the uplink's own response timeout.
      packetTimeoutMs: 30_000,
    })
    channel.registerDataHandler((data) => connection.handleDataLater(data))
    channel.peer = destinationAccount
    return new PaymentSocket(connection, channel, asset, destinationAccount, options.connectTimeoutMs)
  }

  /**
   * Resolves once the payer has answered the socket's first packet; rejects with
   * `COGPAY_PAYER_UNREACHABLE` when it never does (the connection is then closed). Sends nothing
   * itself: the first stream's hello goes in that packet.
   */
  get opened(): Promise<void> {
    return this.#opened
  }

  /**
   * True once the payer said it has no such connection: its end of this socket is gone (and the
   * close that said so was lost). Nothing this socket sent since was read: a request on it may
   * be tried again at once on a new socket.
   */
  get stale(): boolean {
    const info = this.connection.closeInfo
    return info !== undefined && info.byPeer && info.message === NO_SUCH_CONNECTION
  }

  /** True once the payer has answered this socket's first packet. */
  get connected(): boolean {
    return this.#connected
  }

  get closed(): boolean {
    return this.#closed
  }

  /**
   * True while the payer allows this socket another stream. STREAM caps the stream ids a peer
   * may open; the payer raises the cap as streams close. A socket without room is replaced.
   */
  get hasRoom(): boolean {
    return !this.#closed && this.connection.canCreateStream
  }

  /**
   * Opens a stream for one request and writes its hello (naming `amount` when the total is known
   * up front). Throws {@link SocketFullError} when the payer allows no further stream.
   */
  openStream(requestId: string, amount?: bigint): SocketStream {
    const stream = this.#createStream()
    stream.write(encodeHello({ v: 1, requestId, ...(amount === undefined ? {} : { amount }) }))
    // A fixed price is asked now, in the same turn as the hello: both ride in one packet (asked
    // after the caller's next await, it would take a packet of its own).
    if (amount !== undefined) stream.setReceiveMax(amount)
    // A metered stream states each raise of its ask in a line; a fixed price said it in the hello.
    // Its meter charges the next step once this one is paid: that raise rides in the Fulfill.
    if (amount === undefined) stream.holdAnswers = true
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
    stream.setSendMax(amount)
    let refused = false
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        stream.off('outgoingMoney', check)
        stream.off('moneyBlocked', check)
        stream.off('sendMaxReached', check)
        stream.off('data', onLine)
        stream.off('close', done)
        resolve()
      }
      // Done: all of it sent, or the payer has all it accepts (its receive max: what the request
      // paid and has not had back) with nothing in flight. Until the payer has read the hello its
      // receive max is 0: that is not "all it accepts"; a payer that refuses says so in a line.
      const check = () => {
        if (stream.totalSent >= amount) return done()
        if (stream.inFlight === 0n && stream.remoteReceiveMax > 0n && stream.remoteReceived >= stream.remoteReceiveMax) done()
      }
      // The payer says why it refuses in a line of data; any line ends the refund.
      const onLine = () => {
        refused = true
        done()
      }
      const timer = setTimeout(done, timeoutMs)
      stream.on('outgoingMoney', check)
      stream.on('moneyBlocked', check)
      stream.on('sendMaxReached', check)
      stream.on('data', onLine)
      stream.once('close', done)
    })
    const total = stream.totalSent
    stream.end()
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

  #createStream(): MoneyStream {
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
    const timer = setTimeout(() => this.connection.destroy(), graceMs)
    timer.unref()
    return this.#whenClosed.finally(() => clearTimeout(timer))
  }

  /** Closes the connection now (the payer is told). */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.connection.destroy()
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
  /** Set while an ask line went less than ASK_LINE_MS ago; #askDue: a later raise is to be written when it ends. */
  #askTimer: NodeJS.Timeout | undefined
  #askDue = false

  constructor(
    readonly stream: MoneyStream,
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
      // Closed by the payer, or with its connection: the close says why (a connection's failure
      // names the ILP reject that ended it). On a socket that never connected, the payer is unreachable.
      stream.once('close', (info) => {
        const why = () => stop(info.message || socket?.lastError || '')
        if (socket && !socket.connected) socket.opened.then(why, (error: CogpayError) => !this.#closedByUs && resolve(error))
        else why()
      })
    })
  }

  /** A JSON line from the payer. Plain payment streams ignore them. */
  protected onMessage(_line: string): void {}

  get received(): bigint {
    return this.stream.totalReceived
  }

  ask(total: bigint): void {
    if (total <= this.#asked || this.#closedByUs) return
    this.#asked = total
    this.stream.setReceiveMax(total)
    if (!this.announceAsks) return
    // At most one ask line every ASK_LINE_MS, the latest ask: a fast meter's raises ride in the
    // answers to the payer's money, and a line a step would cost a packet a step.
    if (this.#askTimer) {
      this.#askDue = true
      return
    }
    this.#writeAsk()
    this.#armAskTimer()
  }

  /** Holds later raises for ASK_LINE_MS; the one due then is written, and holds the next in turn. */
  #armAskTimer(): void {
    this.#askTimer = setTimeout(() => {
      this.#askTimer = undefined
      if (!this.#askDue) return
      this.#writeAsk()
      this.#armAskTimer()
    }, ASK_LINE_MS)
    this.#askTimer.unref()
  }

  #writeAsk(): void {
    this.#askDue = false
    // Skipped while earlier lines wait to be sent (a payer that reads no data): bounded memory.
    if (this.stream.isOpen && !this.#closedByUs && this.stream.writableLength < MAX_UNSENT_ASKS) {
      this.stream.write(encodeAsk({ v: 1, ask: this.#asked, received: this.received }))
    }
  }

  /**
   * Lowers the receive max to what has arrived, so the payer's prepaid window stops: a packet on
   * its way is turned away for the max rather than kept unasked-for.
   */
  freeze(): void {
    if (!this.stream.isOpen) return
    this.stream.setReceiveMax(this.stream.totalReceived)
    this.#asked = this.received
  }

  onMoney(listener: (received: bigint) => void): () => void {
    const onMoney = () => listener(this.received)
    this.stream.on('money', onMoney)
    return () => this.stream.off('money', onMoney)
  }

  /**
   * Closes the stream, after the final message when there is one: `end()` delivers every byte
   * written (a packet rejected on the way is sent again) before it tells the payer.
   */
  close(final?: StreamFinal): void {
    if (this.#closedByUs) return
    // The last ask goes before the final message.
    clearTimeout(this.#askTimer)
    if (this.#askDue) this.#writeAsk()
    this.#closedByUs = true
    this.stopCode = final?.code
    if (!this.stream.isOpen) return
    if (final) this.stream.write(encodeFinal(final))
    this.stream.end()
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
    stream: MoneyStream,
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
    if (this.stream.isOpen) this.stream.write(PING_LINE)
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
          // A socket the payer never answered: it is unreachable, whichever clock ran out first.
          paying.socket && !paying.socket.connected
            ? unreachable('the payer', `no answer within ${options.timeoutMs} ms`)
            : new CogpayError(
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

function unreachable(destination: string, reason: string, cause?: unknown): CogpayError {
  return new CogpayError(ErrorCodes.PAYER_UNREACHABLE, `could not open a payment socket to ${destination}: ${reason}`, {
    status: 502,
    cause,
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
  if (reason.includes(CloseReasons.exchangeRateTooLow)) {
    return new CogpayError(
      ErrorCodes.EXCHANGE_RATE_TOO_LOW,
      `the payer stopped: the exchange rate fell below its minimum (${reason.slice(CloseReasons.exchangeRateTooLow.length + 1, 200)}; ${numbers})`,
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
