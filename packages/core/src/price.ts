import { parseAmount, type AmountLike } from './amount.js'
import { CogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'

/**
 * A price, in the smallest unit of the server's asset: fixed (a bigint or decimal string), or a
 * function of the request that returns one (sync or async).
 */
export type PriceSpec<Req> = AmountLike | ((request: Req) => AmountLike | Promise<AmountLike>)

/** Resolves a price for a request. */
export type PriceResolver<Req> = (request: Req) => Promise<bigint>

/**
 * Checks a price spec at setup (a fixed price is parsed now, so a bad one throws at `app.use`)
 * and returns a resolver. A price function that later returns a non-amount rejects with
 * `COGPAY_INVALID_PRICE` (status 500): the server's bug, not the client's.
 */
export function createPriceResolver<Req>(spec: PriceSpec<Req>): PriceResolver<Req> {
  if (typeof spec === 'function') {
    return async (request) => {
      const value = await spec(request)
      try {
        return parseAmount(value, 'price')
      } catch (cause) {
        throw new CogpayError(
          ErrorCodes.INVALID_PRICE,
          `the price function returned an invalid price: ${(cause as Error).message}`,
          { status: 500, cause },
        )
      }
    }
  }
  let fixed: bigint
  try {
    fixed = parseAmount(spec, 'price')
  } catch (cause) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, (cause as Error).message, { cause })
  }
  return async () => fixed
}
