import type { Connection } from 'ilp-protocol-stream'

/** The longest a connection waits before it sends again after a temporary reject. */
export const MAX_RETRY_DELAY_MS = 1000

/**
 * Two defects of ilp-protocol-stream (2.7.2-alpha.3, pinned) in how a connection retries after a
 * temporary reject (T04 and the like), fixed here:
 *
 * - A packet carrying only control frames (a raised receive max, stream ids, flow control) is the
 *   last of its send loop; rejected, the loop waited its retry delay and ended, and the frames were
 *   never sent again. A server's raise of its ask is such a packet: one T04 left the payer not
 *   knowing what was asked, and the payment stalled until its timeout. A temporary reject now tells
 *   the loop to run once more after the delay, which sends every stream's current state again.
 * - The delay doubled after each temporary reject until the next Fulfill, without a useful bound
 *   (12 h): six in a row cost 6.3 s, eight 25.5 s, and a socket stayed silent long after the hub
 *   had recovered. It is now at most {@link MAX_RETRY_DELAY_MS}.
 *
 * Reads the connection's private `handleConnectorError`, `startSendLoop` and `retryDelay`: this
 * file is the fence.
 */
export function retryTemporaryRejects(connection: Connection): void {
  const internals = connection as unknown as {
    handleConnectorError(reject: { code: string }, amountSent: unknown): Promise<void>
    startSendLoop(): Promise<void>
    retryDelay: number
  }
  const handle = internals.handleConnectorError.bind(connection)
  internals.handleConnectorError = (reject, amountSent) => {
    if (reject.code.startsWith('T')) {
      internals.retryDelay = Math.min(internals.retryDelay, MAX_RETRY_DELAY_MS)
      // Called from inside the send loop: this only sets its `sending` flag, so it goes on after the delay.
      void internals.startSendLoop()
    }
    return handle(reject, amountSent)
  }
}
