import { Buffer } from 'node:buffer'
import { createRequire } from 'node:module'
import type { Connection, DataAndMoneyStream } from 'ilp-protocol-stream'
import { CloseReasons, CogpayError, ErrorCodes, encodeHello, type Asset } from '@cogpay/core'
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

/** Options for one collection on a socket. */
export interface SocketCollectOptions {
  readonly requestId: string
  readonly amount: bigint
  /** Give up when the payer has not paid in full after this long. */
  readonly timeoutMs: number
  readonly signal?: AbortSignal | undefined
}

/** What a socket collected. */
export interface SocketCollection {
  readonly paid: bigint
  readonly asset: Asset
  close(): void
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

  /** Asks for `amount` on a new stream and resolves once it has arrived. */
  async collect(options: SocketCollectOptions): Promise<SocketCollection> {
    if (this.#closed) {
      throw new CogpayError(ErrorCodes.PAYMENT_FAILED, 'payment socket is closed', { status: 502 })
    }
    if (!this.hasRoom) throw new SocketFullError()
    const stream = this.connection.createStream()
    this.streamsOpened++
    this.active++
    stream.once('close', () => {
      this.active--
      if (this.#retiring && this.active === 0) this.close()
    })
    stream.write(encodeHello({ v: 1, requestId: options.requestId, amount: options.amount }))
    stream.setReceiveMax(options.amount.toString())
    try {
      const paid = await waitForTotal(stream, options)
      // A fixed price is complete: end the stream now, so the payer settles before the response.
      stream.end()
      return { paid, asset: this.asset, close: () => stream.end() }
    } catch (err) {
      stream.destroy()
      throw err
    }
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

/** Resolves with the total received once it reaches `amount`; rejects with a typed error. */
function waitForTotal(stream: DataAndMoneyStream, options: SocketCollectOptions): Promise<bigint> {
  return new Promise<bigint>((resolve, reject) => {
    const received = () => BigInt(stream.totalReceived)
    const cleanup = () => {
      clearTimeout(timer)
      stream.removeListener('money', onMoney)
      stream.removeListener('data', onData)
      stream.removeListener('error', onError)
      stream.removeListener('close', onClose)
      options.signal?.removeEventListener('abort', onAbort)
    }
    const settle = (error?: CogpayError) => {
      cleanup()
      if (error) reject(error)
      else resolve(received())
    }
    const onMoney = () => {
      if (received() >= options.amount) settle()
    }
    // A payer that will not pay says why in a line of stream data (see CloseReasons).
    let said = ''
    const onData = (chunk: Buffer) => {
      said = (said + chunk.toString('latin1')).slice(0, 256)
      const newline = said.indexOf('\n')
      if (newline !== -1) settle(refusal(said.slice(0, newline), received(), options.amount))
    }
    // A payer may also close the stream with the reason as its error message.
    const onError = (err: Error) => settle(refusal(err.message, received(), options.amount))
    const onClose = () => {
      if (received() >= options.amount) return settle()
      settle(refusal(stream._errorMessage ?? '', received(), options.amount))
    }
    const onAbort = () =>
      settle(new CogpayError(ErrorCodes.PAYMENT_FAILED, 'the request was aborted before it was paid', { status: 499 }))
    const timer = setTimeout(
      () =>
        settle(
          new CogpayError(
            ErrorCodes.PAYMENT_TIMEOUT,
            `the payer did not pay within ${options.timeoutMs} ms: price=${options.amount} received=${received()}`,
            { status: 402 },
          ),
        ),
      options.timeoutMs,
    )
    stream.on('money', onMoney)
    stream.on('data', onData)
    stream.once('error', onError)
    stream.once('close', onClose)
    if (options.signal?.aborted) return onAbort()
    options.signal?.addEventListener('abort', onAbort, { once: true })
  })
}

function refusal(reason: string, received: bigint, price: bigint): CogpayError {
  const numbers = `price=${price} received=${received}`
  if (reason.includes(CloseReasons.capTooLow)) {
    return new CogpayError(ErrorCodes.CAP_TOO_LOW, `the payer's cap is below the price: ${numbers}`, { status: 402 })
  }
  if (reason.includes(CloseReasons.unknownRequest) || reason.includes(CloseReasons.badHello)) {
    return new CogpayError(
      ErrorCodes.PAYER_REFUSED,
      `the payer refused: it has no request in flight with this Cogpay-Request-Id (${numbers})`,
      { status: 402 },
    )
  }
  return new CogpayError(ErrorCodes.PAYMENT_FAILED, `the payment stream closed before it was paid: ${numbers}${reason ? ` (${reason})` : ''}`, {
    status: 502,
  })
}
