import { CogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'

/** Largest amount STREAM can carry: an unsigned 64-bit integer. */
export const MAX_AMOUNT = 2n ** 64n - 1n

/** An amount as users may write it: a bigint, or a decimal string of digits. Never a number. */
export type AmountLike = bigint | string

/** An asset: its code (`XRP`, `USD`) and scale (how many decimal places the smallest unit has). */
export interface Asset {
  readonly code: string
  readonly scale: number
}

const DIGITS = /^(0|[1-9][0-9]*)$/

/**
 * Parses an amount in an asset's smallest unit: a non-negative integer up to 2^64 - 1, given as a
 * bigint or a decimal string. `what` names the value in the error message.
 */
export function parseAmount(value: unknown, what = 'amount'): bigint {
  let amount: bigint
  if (typeof value === 'bigint') {
    amount = value
  } else if (typeof value === 'string' && value.length <= 20 && DIGITS.test(value)) {
    amount = BigInt(value)
  } else {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value
    const hint = typeof value === 'number' ? ' (money is never a number: pass a bigint or a string)' : ''
    throw new CogpayError(
      ErrorCodes.INVALID_AMOUNT,
      `${what} must be a non-negative integer as a bigint or decimal string, got ${shown}${hint}`,
    )
  }
  if (amount < 0n || amount > MAX_AMOUNT) {
    throw new CogpayError(ErrorCodes.INVALID_AMOUNT, `${what} must be between 0 and ${MAX_AMOUNT}, got ${amount}`)
  }
  return amount
}

/** Formats an amount for people: `formatAmount(1500n, { code: 'XRP', scale: 3 })` → `"1.500 XRP"`. */
export function formatAmount(amount: bigint, asset: Asset): string {
  const negative = amount < 0n
  const digits = (negative ? -amount : amount).toString().padStart(asset.scale + 1, '0')
  const whole = digits.slice(0, digits.length - asset.scale)
  const fraction = asset.scale > 0 ? `.${digits.slice(digits.length - asset.scale)}` : ''
  return `${negative ? '-' : ''}${whole}${fraction} ${asset.code}`
}

/** Checks an asset scale (0 to 255, as STREAM and IL-DCP carry it). */
export function isAssetScale(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 255
}
