/** One side of the testnet's two assets: the connector account that holds it, and its scale. */
export interface RatedAccount {
  /** Connector account id (`'local'`, `'second'`). */
  account: string
  assetScale: number
}

/**
 * The connector's rate backend on a two-asset testnet: `rate` units of the second asset per unit
 * of the first (asset amounts, the scales applied here), `1 / rate` the other way, and `spread`
 * taken off every route, the same-asset ones too, as ilp-connector's own one-to-one backend does.
 * Both can change while the connector runs: the connector asks for the rate of each Prepare as it
 * forwards it. Implements the interface ilp-connector calls (`connect`, `getRate`,
 * `submitPayment`); `connector-backend.cjs` hands it to the connector.
 */
export class ExchangeRates {
  readonly #first: RatedAccount
  readonly #second: RatedAccount
  #rate: number
  #spread: number

  constructor(first: RatedAccount, second: RatedAccount, rate: number, spread: number) {
    this.#first = first
    this.#second = second
    this.#rate = checkRate(rate)
    this.#spread = checkSpread(spread)
  }

  get rate(): number {
    return this.#rate
  }

  get spread(): number {
    return this.#spread
  }

  setRate(rate: number): void {
    this.#rate = checkRate(rate)
  }

  setSpread(spread: number): void {
    this.#spread = checkSpread(spread)
  }

  async connect(): Promise<void> {}

  /** Destination units per source unit (smallest units): the connector delivers `floor(amount × this)`. */
  async getRate(sourceAccount: string, destinationAccount: string): Promise<number> {
    const source = this.#side(sourceAccount)
    const destination = this.#side(destinationAccount)
    const assetRate = source === destination ? 1 : source === this.#first ? this.#rate : 1 / this.#rate
    return perUnit(assetRate * (1 - this.#spread), destination.assetScale - source.assetScale)
  }

  async submitPayment(): Promise<void> {}

  #side(account: string): RatedAccount {
    if (account === this.#first.account) return this.#first
    if (account === this.#second.account) return this.#second
    throw new Error(`testnet: no asset for connector account ${account}`)
  }
}

/**
 * `assetRate × 10^scaleShift`, rounded to 15 significant digits as ilp-connector's one-to-one
 * backend rounds (so a testnet without `rate` delivers what it did on that backend), the shift
 * done in decimal so that it adds no binary rounding of its own.
 */
function perUnit(assetRate: number, scaleShift: number): number {
  const [mantissa, exponent = '0'] = assetRate.toPrecision(15).split('e')
  return Number(`${mantissa}e${Number(exponent) + scaleShift}`)
}

function checkRate(rate: number): number {
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0) {
    throw new RangeError(`testnet: rate must be a finite number above 0, got ${String(rate)}`)
  }
  return rate
}

function checkSpread(spread: number): number {
  if (typeof spread !== 'number' || !Number.isFinite(spread) || spread < 0 || spread >= 1) {
    throw new RangeError(`testnet: spread must be in [0, 1), got ${String(spread)}`)
  }
  return spread
}
