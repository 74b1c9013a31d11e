import type { Connection, MoneyStream } from '@cogpay/stream'
import { CloseReasons, type Asset } from '@cogpay/core'
import type { Budget } from './budget.js'
import type { Pending } from './pending.js'
import { refuseStream } from './payer-streams.js'
import { isSameAsset } from './same-asset.js'

/** What paying a request under its cap needs of the payer. @internal */
export interface CapContext {
  readonly connection: Connection
  /** The payer's asset: a price in it compares with the cap before anything is paid. */
  readonly asset: Asset | undefined
  /** The host's budget, when it has one: the request pays at most its share of it. */
  readonly budget: Budget | undefined
  /** Called with each amount paid, once the request has counted it. */
  onSpend(amount: bigint): void
  /** Called once when the payer refuses, or stops, because the server asks for more than the cap. */
  onCap(spent: bigint): void
}

/**
 * Where a request's cap is enforced. The request pays on `stream` at most its `maxSpend`, less
 * what it paid on earlier streams and did not get back, and at most its share of the host's
 * budget (the budget's rate cap included), all in the payer's own units: that is the stream's
 * sendMax, which STREAM enforces whatever the server asks or claims the rate is. A fixed price in
 * the payer's asset above the cap is refused before anything is paid; a server that still asks
 * for more once the cap is paid is told so at once (`COGPAY_CAP_TOO_LOW`, or
 * `COGPAY_RATE_TOO_HIGH` when the rate cap is what bounds it). `asked` is the price the hello
 * named, in the server's units, when it named one.
 */
export function payUnderCap(pending: Pending, stream: MoneyStream, asked: bigint | undefined, context: CapContext): void {
  const { connection, budget } = context
  pending.attached(stream)
  if (budget?.revoked) {
    pending.revoked = true
    return refuseStream(stream, CloseReasons.revoked)
  }
  // The host's rate cap, if any, bounds a request too: its share is fixed when it starts.
  // What this request may still pay: its cap, less what it paid on earlier streams and did not
  // get back, and less what they had in flight or in doubt (it may have arrived).
  const net = pending.spent - pending.refunded + pending.earlierUnsettled
  const left = pending.maxSpend > net ? pending.maxSpend - net : 0n
  const rateBound = budget?.rate !== undefined && budget.available < left && budget.available < budget.left
  pending.reservation?.release()
  pending.reservation = budget?.reserve(left)
  const limit = pending.reservation?.limit ?? left
  const sameAsset = isSameAsset(connection, context.asset)
  const stopAtCap = (spent: bigint) => {
    if (pending.capReached) return
    pending.capReached = true
    context.onCap(spent)
    refuseStream(stream, rateBound ? CloseReasons.rateTooHigh : CloseReasons.capTooLow)
  }
  // A fixed price in our own asset above the cap: refuse before paying anything.
  if (asked !== undefined && sameAsset && asked > limit) return stopAtCap(0n)
  // At the cap while the server still asks for more: say so now, so it answers 402 (or stops its
  // meter) at once instead of waiting for its payment timeout.
  stream.on('sendMaxReached', () => {
    if (!pending.capReached && !pending.revoked && stream.isOpen && stream.totalSent >= limit) stopAtCap(pending.spent)
  })
  // The rate fell below the minimum (across assets): nothing more can be paid at a rate we accept.
  stream.once('moneyError', (message) => {
    if (!pending.capReached && !pending.revoked) refuseStream(stream, `${CloseReasons.exchangeRateTooLow} ${message}`)
  })
  stream.on('outgoingMoney', (amount) => {
    pending.spent += amount
    pending.reservation?.spend(amount)
    context.onSpend(amount)
    try {
      pending.onSpend?.(pending.spent, stream.remoteReceiveMax)
    } catch {
      // a caller's hook must not break payment accounting
    }
  })
  // STREAM enforces sendMax in the sender's own units: this is the cap, whatever the server asks.
  stream.setSendMax(limit)
}
