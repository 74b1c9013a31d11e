import type { Buffer } from 'node:buffer'
import type { MoneyStream } from '@cogpay/stream'
import { CloseReasons, LineReader, MAX_HELLO_BYTES, decodeHello, type LeaseTerms } from '@cogpay/core'
import type { Logger } from '../logger.js'
import type { Pending } from './pending.js'
import { readLines, refuseStream } from './payer-streams.js'

/** What admitting the streams of one connection (one server origin) needs of the payer. @internal */
export interface Admission {
  /** The origin whose credentials the connection used. */
  readonly origin: string
  /** A stream must name its request within this long, or it is refused. */
  readonly helloTimeoutMs: number
  readonly log: Logger
  /** A request in flight, by id. */
  inFlight(requestId: string): Pending | undefined
  /** A request in flight, or one that paid and finished a while ago (a refund may come after the response). */
  paid(requestId: string): Pending | undefined
  /** Called with the reason of every stream refused here. */
  refused(reason: string): void
  /** A request's stream, admitted: pay on it, under its cap. `asked` is the price its hello named. */
  pay(pending: Pending, stream: MoneyStream, asked: bigint | undefined): void
  /** Money came back on an admitted refund stream. */
  refunded(paid: Pending, amount: bigint): void
  /** A lease's stream: admits it, or returns a close reason. `rest` is what followed the hello. */
  lease(stream: MoneyStream, requestId: string, terms: LeaseTerms, rest: Uint8Array): string | undefined
}

/**
 * Admits a stream the server opened, on its hello: the first line of stream data, which must
 * arrive within `helloTimeoutMs` and fit in MAX_HELLO_BYTES. Nothing is paid before the hello
 * names what the stream is for, and each kind is matched to this origin's own:
 * - a lease (new, or resumed): see `lease`;
 * - a refund: a request of this origin that paid more than it had back, one refund stream at a
 *   time (the payer accepts at most what it paid);
 * - a request: one of this origin in flight, unfinished, and not paying on another stream.
 * Anything else is refused with a reason the server maps to an error (`COGPAY_BAD_HELLO`,
 * `COGPAY_UNKNOWN_REQUEST`, ...).
 */
export function admitStream(stream: MoneyStream, admission: Admission): void {
  const hello = new LineReader({ maxLineBytes: MAX_HELLO_BYTES - 1, overflow: 'fail', maxLines: 1 })
  const refuse = (reason: string) => {
    cleanup()
    admission.refused(reason)
    refuseStream(stream, reason)
  }
  const onData = (chunk: Buffer) => {
    hello.push(chunk)
    const line = hello.next()
    if (line === undefined) {
      if (hello.overflowed) refuse(CloseReasons.badHello)
      return
    }
    cleanup()
    const reason = admit(stream, line, hello.rest(), admission)
    if (reason) refuse(reason)
  }
  const cleanup = () => {
    clearTimeout(timer)
    stream.off('data', onData)
  }
  const timer = setTimeout(() => refuse(CloseReasons.badHello), admission.helloTimeoutMs)
  stream.on('data', onData)
}

/** Matches a hello to what it names; returns a close reason when refused. */
function admit(stream: MoneyStream, line: Uint8Array, rest: Uint8Array, admission: Admission): string | undefined {
  const { origin } = admission
  const hello = decodeHello(line)
  if (!hello) return CloseReasons.badHello
  if (hello.lease) return admission.lease(stream, hello.requestId, hello.lease, rest)
  if (hello.refund !== undefined) {
    const paid = admission.paid(hello.requestId)
    // Only a request of this origin that paid, one refund stream at a time, at most what it paid.
    if (!paid || paid.origin !== origin || paid.refundStream || paid.refundable === 0n) {
      return CloseReasons.unknownRequest
    }
    admission.log.debug({ requestId: paid.requestId, origin, refund: hello.refund.toString() }, 'payer accepts a refund')
    paid.acceptRefund(stream, (amount) => admission.refunded(paid, amount))
    return undefined
  }
  const pending = admission.inFlight(hello.requestId)
  // A request pays on one stream at a time: a second one (a retry of the same request, say)
  // only once the first is over, and together they pay at most its cap, net of refunds.
  const busy = pending?.stream && pending.stream.isOpen && !pending.stream.remoteClosed
  if (!pending || pending.origin !== origin || busy || pending.finished) return CloseReasons.unknownRequest
  readLines(stream, rest, (next) => pending.onLine(next))
  admission.pay(pending, stream, hello.amount)
  return undefined
}
