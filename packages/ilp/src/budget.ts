/** What a budget looks like from outside: see {@link Payer.budgets}. */
export interface BudgetView {
  readonly origin: string
  /** All this host may be paid, in the payer's units (raised by `topUp`). */
  readonly total: bigint
  /** Paid to this host so far. */
  readonly spent: bigint
  /** Held for requests under way (their caps, up to what is left). */
  readonly reserved: bigint
  /** Left for new requests: `total - spent - reserved`, or 0 once revoked. */
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
 * A payer's budget for one host, shared by all its requests. Each request reserves up to its own
 * cap from what is left, so concurrent requests can never together pay more than the total.
 */
export class Budget {
  spent = 0n
  reserved = 0n
  revoked = false
  rate: RateCap | undefined

  constructor(
    readonly origin: string,
    public total: bigint,
  ) {}

  get available(): bigint {
    if (this.revoked) return 0n
    const left = this.total - this.spent - this.reserved
    return left > 0n ? left : 0n
  }

  /** Reserves up to `cap` from what is left. */
  reserve(cap: bigint): Reservation {
    const limit = cap < this.available ? cap : this.available
    this.reserved += limit
    let held = limit
    return {
      limit,
      spend: (amount) => {
        const fromHeld = amount < held ? amount : held
        held -= fromHeld
        this.reserved -= fromHeld
        this.spent += amount
      },
      release: () => {
        this.reserved -= held
        held = 0n
      },
    }
  }

  view(): BudgetView {
    return {
      origin: this.origin,
      total: this.total,
      spent: this.spent,
      reserved: this.reserved,
      available: this.available,
      revoked: this.revoked,
      ...(this.rate ? { rate: this.rate } : {}),
    }
  }
}
