/**
 * An exchange rate as an exact fraction of two `bigint`s: destination units per source unit, each
 * in its asset's smallest unit. Never a float: every amount a connection derives from a rate is
 * rounded on purpose (down for what must arrive, up for what must leave).
 */
export interface ExchangeRate {
  readonly numerator: bigint
  readonly denominator: bigint
}

/** The rate of a connection between two accounts in the same asset. */
export const ONE: ExchangeRate = { numerator: 1n, denominator: 1n }

/**
 * Parses a rate from a decimal string (`'0.99'`, `'1250'`, `'1e-3'` is refused), a `bigint`, or
 * an {@link ExchangeRate}. Throws a RangeError naming the value for anything negative or not a
 * plain decimal.
 */
export function exchangeRate(value: string | bigint | ExchangeRate): ExchangeRate {
  if (typeof value === 'bigint') {
    if (value < 0n) throw new RangeError(`exchange rate must be >= 0, got ${value}`)
    return { numerator: value, denominator: 1n }
  }
  if (typeof value === 'object') {
    if (value.numerator < 0n || value.denominator <= 0n) {
      throw new RangeError(`exchange rate must be numerator >= 0 over denominator > 0, got ${value.numerator}/${value.denominator}`)
    }
    return reduce(value.numerator, value.denominator)
  }
  const match = /^(\d+)(?:\.(\d+))?$/.exec(value)
  if (!match) throw new RangeError(`exchange rate must be a plain non-negative decimal such as "0.99", got ${JSON.stringify(value)}`)
  const fraction = match[2] ?? ''
  return reduce(BigInt(match[1]! + fraction), 10n ** BigInt(fraction.length))
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b]
  return a
}

function reduce(numerator: bigint, denominator: bigint): ExchangeRate {
  const divisor = gcd(numerator, denominator) || 1n
  return { numerator: numerator / divisor, denominator: denominator / divisor }
}

/** `amount × rate`, rounded down: what at least arrives. */
export function convertFloor(amount: bigint, rate: ExchangeRate): bigint {
  return (amount * rate.numerator) / rate.denominator
}

/** The least source amount that converts to at least `destination` at `rate` (rounded up); `undefined` at a rate of 0. */
export function sourceFor(destination: bigint, rate: ExchangeRate): bigint | undefined {
  if (rate.numerator === 0n) return undefined
  return (destination * rate.denominator + rate.numerator - 1n) / rate.numerator
}

/**
 * The most source units that convert to at most `limit` at `rate` (rounded down), never above
 * `limit` itself: what keeps a converted amount within a u64 whatever rate a peer claims.
 */
export function sourceWithin(limit: bigint, rate: ExchangeRate): bigint {
  if (rate.numerator === 0n) return limit
  const most = ((limit + 1n) * rate.denominator - 1n) / rate.numerator
  return most < limit ? most : limit
}

/** −1, 0 or 1 as `a` is below, equal to or above `b`. */
export function compareRates(a: ExchangeRate, b: ExchangeRate): -1 | 0 | 1 {
  const left = a.numerator * b.denominator
  const right = b.numerator * a.denominator
  return left < right ? -1 : left > right ? 1 : 0
}

/** `rate × (1 − slippage)`, with `slippage` a decimal fraction below 1 (`'0.01'`). */
export function lessSlippage(rate: ExchangeRate, slippage: ExchangeRate): ExchangeRate {
  return reduce(rate.numerator * (slippage.denominator - slippage.numerator), rate.denominator * slippage.denominator)
}

/** A short decimal for messages (six significant decimals is plenty to tell two rates apart). */
export function formatRate(rate: ExchangeRate): string {
  if (rate.denominator === 1n) return rate.numerator.toString()
  const scaled = (rate.numerator * 1_000_000n) / rate.denominator
  const whole = scaled / 1_000_000n
  const fraction = (scaled % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '')
  return fraction ? `${whole}.${fraction}` : whole.toString()
}
