import { Buffer } from 'node:buffer'
import { createRequire } from 'node:module'
import type { Connection, DataAndMoneyStream } from 'ilp-protocol-stream'
import {
  CloseReasons,
  CogpayError,
  ErrorCodes,
  encodeFinal,
  encodeHello,
  type Asset,
  type PaymentStream,
  type StreamFinal,
} from '@cogpay/core'
import type { Channel } from './uplink.ts'

const require = createRequire(import.meta.url)
const { createConnection } = require('ilp-protocol-stream') as typeof import('ilp-protocol-stream')

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
  #closed = false
  #retiring = false
  readonly #whenClosed: Promise<void>

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
    // A connection error also closes it; the streams under way report their own failure.
    connection.on('error', () => {})
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
    if (!this.hasRoom) throw new SocketFullError()
    const stream = this.connection.createStream()
    this.streamsOpened++
    this.active++
    stream.once('close', () => {
      this.active--
      if (this.#retiring && this.active === 0) this.close()
    })
    stream.write(encodeHello({ v: 1, requestId, ...(amount === undefined ? {} : { amount }) }))
    return new SocketStream(stream, this.asset)
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
  #closedByUs = false
  #asked = 0n

  constructor(
    readonly stream: DataAndMoneyStream,
    readonly asset: Asset,
  ) {
    this.closed = new Promise((resolve) => stream.once('close', () => resolve(this.received)))
    this.stopped = new Promise<CogpayError>((resolve) => {
      let said = ''
      // The owner (collect, or a Meter with its final message) closes the stream on this.
      const stop = (reason: string) => {
        if (!this.#closedByUs) resolve(refusal(reason, this.received, this.#asked))
      }
      stream.on('data', (chunk: Buffer) => {
        said = (said + chunk.toString('latin1')).slice(0, 256)
        const newline = said.indexOf('\n')
        if (newline !== -1) stop(said.slice(0, newline))
      })
      stream.on('error', (err: Error) => stop(err.message))
      stream.once('close', () => stop(stream._errorMessage ?? ''))
    })
  }

  get received(): bigint {
    return BigInt(this.stream.totalReceived)
  }

  ask(total: bigint): void {
    if (total <= this.#asked || this.#closedByUs) return
    this.#asked = total
    this.stream.setReceiveMax(total.toString())
  }

  onMoney(listener: (received: bigint) => void): () => void {
    const onMoney = () => listener(this.received)
    this.stream.on('money', onMoney)
    return () => this.stream.removeListener('money', onMoney)
  }

  close(final?: StreamFinal): void {
    if (this.#closedByUs) return
    this.#closedByUs = true
    if (this.stream.destroyed) return
    if (final) this.stream.write(encodeFinal(final))
    this.stream.end()
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
