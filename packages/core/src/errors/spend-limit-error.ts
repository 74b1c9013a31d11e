import { PaymentRequiredError } from './payment-required-error.js'
import { ErrorCodes } from './codes.js'
import type { PaymentRequirements } from '../requirements.js'

/**
 * Client side: the server wants more than this request's `maxSpend`. The payer paid at most
 * `maxSpend` (usually nothing: it refuses a fixed price above its cap before paying).
 */
export class SpendLimitError extends PaymentRequiredError {
  override name = 'SpendLimitError'
  readonly maxSpend: bigint

  constructor(details: {
    maxSpend: bigint
    spent: bigint
    url: string
    requirements?: PaymentRequirements | undefined
    serverCode?: string | undefined
  }) {
    const price = details.requirements ? ` price=${details.requirements.amount}` : ''
    super(
      `${details.url} asks for more than maxSpend=${details.maxSpend}${price}; spent=${details.spent}`,
      details,
      ErrorCodes.SPEND_LIMIT,
    )
    this.maxSpend = details.maxSpend
  }
}
