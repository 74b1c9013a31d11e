import { CogpayError } from './cogpay-error.js'
import { ErrorCodes, type ErrorCode } from './codes.js'
import type { PaymentRequirements } from '../requirements.js'

/**
 * Client side: the server answered 402. `requirements` is what it asked for (price, asset,
 * scheme), when its body said so; `serverCode` is the code it gave.
 */
export class PaymentRequiredError extends CogpayError {
  override name = 'PaymentRequiredError'
  readonly requirements: PaymentRequirements | undefined
  readonly serverCode: ErrorCode | string | undefined
  /** What this request paid before the server gave up, in the payer's units. */
  readonly spent: bigint

  constructor(
    message: string,
    details: { requirements?: PaymentRequirements | undefined; serverCode?: string | undefined; spent: bigint },
    code: ErrorCode = ErrorCodes.PAYMENT_REQUIRED,
  ) {
    super(code, message, { status: 402 })
    this.requirements = details.requirements
    this.serverCode = details.serverCode
    this.spent = details.spent
  }
}
