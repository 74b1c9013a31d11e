/** What a budget looks like from outside: see {@link Payer.budgets}. */
export interface BudgetView {
  readonly origin: string
  /** All this host may be paid, in the payer's units (raised by `topUp`). */
  readonly total: bigint
  /** Paid to this host so far, less what it paid back (refunds). */
  readonly spent: bigint
  /** Paid back by this host so far (refunds of failed requests). */
  readonly refunded: bigint
  /** Held for requests under way (their caps, up to what is left). */
  readonly reserved: bigint
  /** Left for new requests now: `total - spent - reserved`, within the rate cap if any; 0 once revoked. */
  readonly available: bigint
  readonly revoked: boolean
  /** The host may pull over time (leases) at most `amount` per `intervalMs`, when set. */
  readonly rate?: RateCap
}

/** At most `amount` (payer's units) per `intervalMs`. */
export interface RateCap {
  readonly amount: bigint
  readonly intervalMs: number
}

/** One request's share of a budget: reserved when its stream is matched, released when it ends. */
export interface Reservation {
  /** The most this request may pay out of the budget. */
  readonly limit: bigint
  /** Records money paid on the request. */
  spend(amount: bigint): void
  /** Gives back what the request did not spend. Idempotent. */
  release(): void
}

/**
 * A payer's budget for one host, shared by all its requests and leases. Each reserves up to its
 * own cap from what is left, so concurrent ones can never together pay more than the total. With
 * a rate cap, what is left is also bounded by a token bucket: at most `rate.amount` per
 * `rate.intervalMs`, refilled continuously, starting full.
 */
export class Budget {
  spent = 0n
  refunded = 0n
  reserved = 0n
  revoked = false
  #rate: RateCap | undefined
  /** Rate tokens in payer units x `rate.intervalMs` (refills stay whole); may dip below 0 by the slack. */
  #tokens = 0n
  #refilledAt = 0

  constructor(
    readonly origin: string,
    public total: bigint,
  ) {}

  get rate(): RateCap | undefined {
    return this.#rate
  }

  /** Sets (or clears) the rate cap; the bucket starts full. */
  set rate(rate: RateCap | undefined) {
    this.#rate = rate
    this.#tokens = rate ? rate.amount * BigInt(rate.intervalMs) : 0n
    this.#refilledAt = Date.now()
  }

  /** What is left under the total. */
  get left(): bigint {
    if (this.revoked) return 0n
    const left = this.total - this.spent - this.reserved
    return left > 0n ? left : 0n
  }

  /** What may be reserved now: what is left, and what the rate cap allows at this moment. */
  get available(): bigint {
    const left = this.left
    const allowed = this.rateAllowance()
    return allowed !== undefined && allowed < left ? allowed : left
  }

  /**
   * What the rate cap allows now, or `undefined` without one. Timing slack: a pull that arrives a
   * little early (the previous payment took a round trip the ask did not) may use what the bucket
   * will hold `min(interval / 10, 100 ms)` from now; over time the rate still averages out to the
   * cap, since tokens used early are paid back by later refills.
   */
  rateAllowance(now = Date.now()): bigint | undefined {
    const rate = this.#rate
    if (!rate) return undefined
    const interval = BigInt(rate.intervalMs)
    const full = rate.amount * interval
    this.#tokens += BigInt(Math.max(0, now - this.#refilledAt)) * rate.amount
    if (this.#tokens > full) this.#tokens = full
    this.#refilledAt = now
    const slackMs = BigInt(Math.min(Math.floor(rate.intervalMs / 10), 100))
    let effective = this.#tokens + slackMs * rate.amount
    if (effective > full) effective = full
    return effective > 0n ? effective / interval : 0n
  }

  /** Reserves up to `cap` from what is available now (rate tokens are taken at once, and given back on release). */
  reserve(cap: bigint): Reservation {
    const available = this.available
    const limit = cap < available ? cap : available
    this.reserved += limit
    this.#take(limit)
    let held = limit
    return {
      limit,
      spend: (amount) => {
        const fromHeld = amount < held ? amount : held
        held -= fromHeld
        this.reserved -= fromHeld
        this.spent += amount
        // Paid beyond what was held (in flight when it was let go): it still uses the rate.
        this.#take(amount - fromHeld)
      },
      release: () => {
        this.reserved -= held
        this.#take(-held)
        held = 0n
      },
    }
  }

  /** Money the host paid back: it no longer counts as spent (the rate cap's tokens stay used). */
  refund(amount: bigint): void {
    this.refunded += amount
    this.spent -= amount < this.spent ? amount : this.spent
  }

  /** Records money paid outside any reservation (in flight when its reservation was let go). */
  record(amount: bigint): void {
    this.spent += amount
    this.#take(amount)
  }

  #take(amount: bigint): void {
    if (this.#rate && amount !== 0n) this.#tokens -= amount * BigInt(this.#rate.intervalMs)
  }

  view(): BudgetView {
    return {
      origin: this.origin,
      total: this.total,
      spent: this.spent,
      refunded: this.refunded,
      reserved: this.reserved,
      available: this.available,
      revoked: this.revoked,
      ...(this.#rate ? { rate: this.#rate } : {}),
    }
  }
}
