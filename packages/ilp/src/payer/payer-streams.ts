import type { Buffer } from 'node:buffer'
import type { MoneyStream } from '@cogpay/stream'
import { LineReader, MAX_HELLO_BYTES } from '@cogpay/core'

/**
 * Refuses a stream: says why in a line of stream data and pays nothing more on it. The server
 * answers by closing the stream, which hands its id back (a payer that closed first would leak
 * it); a server that does not is cut off after a grace period.
 */
export function refuseStream(stream: MoneyStream, reason: string): void {
  if (!stream.isOpen) return
  stream.setSendMax(stream.totalSent)
  stream.write(`${reason}\n`)
  closeAfterGrace(stream)
}

export function closeAfterGrace(stream: MoneyStream): void {
  const timer = setTimeout(() => stream.destroy(), SERVER_CLOSE_GRACE_MS)
  timer.unref()
  stream.once('close', () => clearTimeout(timer))
}

/**
 * Hands each later line of stream data (after `rest`, what the hello's reader had read past it) to
 * `onLine`. Unbounded in number, each bounded in size: a metered stream's ask lines come before its
 * final message, however many steps it took. What has arrived of a line longer than MAX_HELLO_BYTES
 * is dropped, once no whole line is left to read.
 */
export function readLines(stream: MoneyStream, rest: Uint8Array, onLine: (line: Uint8Array) => void): void {
  const lines = new LineReader({ maxLineBytes: MAX_HELLO_BYTES - 1, overflow: 'drop' })
  const take = () => {
    for (let line = lines.next(); line !== undefined; line = lines.next()) onLine(line)
  }
  stream.on('data', (chunk: Buffer) => {
    lines.push(chunk)
    take()
  })
  lines.push(rest)
  take()
}

/** How long a finished stream waits for the server to close it before the payer does. */
const SERVER_CLOSE_GRACE_MS = 10_000

/**
 * Stops paying on a stream whose request is done: its sendMax is frozen at what was sent, so no
 * further money can leave. The stream is left for the server to close, because STREAM hands a
 * stream id back to the server only when the *server* closes the stream: a payer that closed
 * first would leak one id per request, and the server's socket would run out after
 * `maxRemoteStreams` requests. If the server never closes it, the payer does after a grace period.
 */
export function stopPaying(stream: MoneyStream): void {
  if (!stream.isOpen) return
  stream.setSendMax(stream.totalSent)
  closeAfterGrace(stream)
}

/**
 * Resolves once the stream has no packet in flight (closed or not: a server's close can arrive
 * before the Fulfill of the last payment), or after `timeoutMs`. Called
 * when the server's answer is final (a response, a metered stream's final message): what it still
 * asks for will not be paid, so only the packets already sent matter, for an exact `spent`. It
 * used to wait for the server's close as well, and a 402 whose close was lost took `timeoutMs`.
 */
export function settled(stream: MoneyStream, timeoutMs: number): Promise<void> {
  const done = () => stream.inFlight === 0n
  if (done()) return Promise.resolve()
  return new Promise((resolve) => {
    const deadline = Date.now() + timeoutMs
    const check = () => {
      if (done() || Date.now() >= deadline) {
        stream.off('close', check)
        stream.off('outgoingMoney', check)
        clearInterval(poll)
        resolve()
      }
    }
    // Events cover the usual case; the slow poll covers a packet turned away (no event).
    const poll = setInterval(check, 5)
    stream.on('close', check)
    stream.on('outgoingMoney', check)
  })
}
