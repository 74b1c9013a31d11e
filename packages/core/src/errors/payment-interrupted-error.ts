import { CogpayError } from './cogpay-error.js'
import { ErrorCodes } from './codes.js'

/**
 * Client side: a metered response was cut because payment stopped, so its body is incomplete.
 * Reading the body rejects with this error instead of ending as if it were whole.
 */
export class PaymentInterruptedError extends CogpayError {
  override name = 'PaymentInterruptedError'
  /** Why the server stopped (`COGPAY_CAP_TOO_LOW`, …), as its final message said; `undefined` if it sent none. */
  readonly serverCode: string | undefined
  /** What this request paid, in the payer's units. */
  readonly spent: bigint

  constructor(details: { url: string; serverCode: string | undefined; spent: bigint; maxSpend: bigint }) {
    const why = details.serverCode ? `payment stopped (${details.serverCode})` : 'the server sent no final status'
    super(
      ErrorCodes.PAYMENT_INTERRUPTED,
      `the body of ${details.url} is incomplete: ${why}; spent=${details.spent} maxSpend=${details.maxSpend}`,
    )
    this.serverCode = details.serverCode
    this.spent = details.spent
  }
}
