import { CogpayError, ErrorCodes } from '@cogpay/core'

/** An option that must be a positive integer: `fallback` when unset, else checked (`COGPAY_INVALID_OPTIONS`). */
export function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `${name} must be a positive integer, got ${value}`)
  }
  return value
}
