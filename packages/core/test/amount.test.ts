import { describe, expect, it } from 'vitest'
import { CogpayError, ErrorCodes, MAX_AMOUNT, formatAmount, isAssetScale, parseAmount } from '../src/index.ts'

function parseError(value: unknown, what?: string): CogpayError {
  try {
    parseAmount(value, what)
  } catch (err) {
    expect(err).toBeInstanceOf(CogpayError)
    expect((err as CogpayError).code).toBe(ErrorCodes.INVALID_AMOUNT)
    return err as CogpayError
  }
  throw new Error(`parseAmount(${String(value)}) did not throw`)
}

describe('parseAmount', () => {
  it('MAX_AMOUNT is 2^64 - 1', () => {
    expect(MAX_AMOUNT).toBe(18446744073709551615n)
  })

  it.each([0n, 1n, 100n, 2n ** 53n + 1n, MAX_AMOUNT])('accepts the bigint %s unchanged', (value) => {
    expect(parseAmount(value)).toBe(value)
  })

  it.each([
    ['0', 0n],
    ['1', 1n],
    ['100', 100n],
    ['9007199254740993', 9007199254740993n], // 2^53 + 1: a number would lose it
    ['18446744073709551615', MAX_AMOUNT],
  ])('parses the string %j', (text, expected) => {
    expect(parseAmount(text)).toBe(expected)
  })

  it.each([0, 1, 100, 1.5, Number.NaN, Infinity, -1])('rejects the number %s, saying money is never a number', (value) => {
    const error = parseError(value)
    expect(error.message).toContain('number')
    expect(error.message).toContain('never a number')
  })

  it.each([-1n, -(2n ** 64n)])('rejects the negative bigint %s', (value) => {
    const error = parseError(value)
    expect(error.message).toContain(String(value))
  })

  it.each(['-1', '-0', '+1'])('rejects the signed string %j', (text) => {
    expect(parseError(text).message).toContain(JSON.stringify(text))
  })

  it.each(['00', '01', '0100', '000000000000000000001'])('rejects the leading-zero string %j', (text) => {
    expect(parseError(text).message).toContain(JSON.stringify(text.slice(0, 40)))
  })

  it('rejects 2^64 as a bigint and as a string, naming the bound', () => {
    const big = parseError(2n ** 64n)
    expect(big.message).toContain('18446744073709551616')
    expect(big.message).toContain(MAX_AMOUNT.toString())
    const text = parseError('18446744073709551616')
    expect(text.message).toContain('18446744073709551616')
    expect(parseError('99999999999999999999').message).toContain(MAX_AMOUNT.toString())
  })

  it.each(['', ' 1', '1 ', '1.0', '1.5', '1e3', '0x10', '1_000', '１２', 'abc', '100n', '123456789012345678901'])(
    'rejects the malformed string %j',
    (text) => {
      parseError(text)
    },
  )

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['boolean', true],
    ['object', { amount: '1' }],
    ['array', ['1']],
    ['boxed string', Object('1')],
  ])('rejects %s, naming its type', (type, value) => {
    const error = parseError(value)
    expect(error.message).toContain(type === 'undefined' ? 'undefined' : type === 'boolean' ? 'boolean' : 'object')
  })

  it('names the value in the message', () => {
    expect(parseError('x', 'price').message).toMatch(/^price must be/)
    expect(parseError(-5n, 'maxSpend').message).toMatch(/^maxSpend must be between 0 and 18446744073709551615, got -5$/)
    expect(parseError(5, 'Cogpay-Paid').message).toMatch(/^Cogpay-Paid must be/)
    expect(parseError('x').message).toMatch(/^amount must be/)
  })

  it('quotes at most 40 characters of a long string', () => {
    const text = `${'1'.repeat(39)}x${'y'.repeat(1000)}`
    const message = parseError(text).message
    expect(message).toContain(JSON.stringify(text.slice(0, 40)))
    expect(message).not.toContain('y')
  })

  it('carries the default status 500 (a programming error, not a client one)', () => {
    expect(parseError('x').status).toBe(500)
  })
})

describe('formatAmount', () => {
  it.each([
    [1500n, 'XRP', 3, '1.500 XRP'],
    [5n, 'XRP', 9, '0.000000005 XRP'],
    [1_000_000_000n, 'XRP', 9, '1.000000000 XRP'],
    [0n, 'USD', 2, '0.00 USD'],
    [42n, 'USD', 0, '42 USD'],
    [0n, 'USD', 0, '0 USD'],
    [-1500n, 'XRP', 3, '-1.500 XRP'],
    [-5n, 'USD', 2, '-0.05 USD'],
    [MAX_AMOUNT, 'XRP', 9, '18446744073.709551615 XRP'],
    [123n, 'ABC', 5, '0.00123 ABC'],
  ])('formatAmount(%s, %s scale %s) = %j', (amount, code, scale, expected) => {
    expect(formatAmount(amount, { code, scale })).toBe(expected)
  })
})

describe('isAssetScale', () => {
  it.each([0, 9, 255])('accepts %s', (value) => expect(isAssetScale(value)).toBe(true))
  it.each([-1, 256, 1.5, Number.NaN, '9', 9n, null, undefined])('rejects %s', (value) =>
    expect(isAssetScale(value)).toBe(false),
  )
})
