import { CloseReasons, CogpayError, ErrorCodes } from '@cogpay/core'
import { Budget, type BudgetView, type RateCap } from './budget.js'
import type { PayerLease, LeaseView } from './payer-lease.js'
import type { Pending } from './pending.js'
import { refuseStream } from './payer-streams.js'

/**
 * What the payer has allowed each host: its budget (a total, and a rate cap for pulls over time)
 * and the leases it has opened. The public side of it is {@link Payer}'s `authorize`, `topUp`,
 * `revoke`, `budgets`, `leases` and `revokeLease`. @internal
 */
export class Authorizations {
  readonly #budgets = new Map<string, Budget>()
  readonly #leases = new Map<string, PayerLease>()
  readonly #maxLeases: number

  constructor(maxLeases: number) {
    this.#maxLeases = maxLeases
  }

  /** The budget of a host, by the origin a request or a connection names, if it has one. */
  budget(origin: string): Budget | undefined {
    return this.#budgets.get(origin)
  }

  /** A lease this payer knows, by id. */
  lease(id: string): PayerLease | undefined {
    return this.#leases.get(id)
  }

  /** Keeps a new lease; past `maxLeases`, the oldest that has ended is forgotten. */
  remember(lease: PayerLease): void {
    this.#leases.set(lease.id, lease)
    if (this.#leases.size <= this.#maxLeases) return
    for (const [id, old] of this.#leases) {
      if (!old.live) {
        this.#leases.delete(id)
        return
      }
    }
  }

  /** The origins that have a live lease (one its host may still resume). */
  leasedOrigins(): Set<string> {
    return new Set([...this.#leases.values()].filter((lease) => lease.live).map((lease) => lease.origin))
  }

  authorize(origin: string, options: { total: bigint; rate?: RateCap }): BudgetView {
    const key = originOf(origin)
    if (options.total < 0n) throw new CogpayError(ErrorCodes.INVALID_AMOUNT, `total must be >= 0, got ${options.total}`)
    const rate = options.rate
    if (rate && (rate.amount <= 0n || !Number.isSafeInteger(rate.intervalMs) || rate.intervalMs <= 0)) {
      throw new CogpayError(ErrorCodes.INVALID_OPTIONS, 'rate must be { amount > 0n, intervalMs > 0 }')
    }
    const budget = this.#budgets.get(key) ?? new Budget(key, options.total)
    budget.total = options.total
    budget.revoked = false
    budget.rate = rate
    this.#budgets.set(key, budget)
    return budget.view()
  }

  leases(): LeaseView[] {
    return [...this.#leases.values()].map((lease) => lease.view())
  }

  revokeLease(id: string): LeaseView {
    const lease = this.#leases.get(id)
    if (!lease) throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `no lease ${id}`)
    lease.stop(CloseReasons.revoked, 'revoked')
    return lease.view()
  }

  topUp(origin: string, amount: bigint): BudgetView {
    const budget = this.#authorized(origin)
    if (amount < 0n) throw new CogpayError(ErrorCodes.INVALID_AMOUNT, `top-up must be >= 0, got ${amount}`)
    budget.total += amount
    return budget.view()
  }

  /** Revokes a host's budget: `requests` (those under way) of that host stop paying, and so do its leases. */
  revoke(origin: string, requests: Iterable<Pending>): BudgetView {
    const budget = this.#authorized(origin)
    budget.revoked = true
    for (const pending of requests) {
      if (pending.origin === budget.origin && pending.stream && !pending.capReached && !pending.revoked) {
        pending.revoked = true
        refuseStream(pending.stream, CloseReasons.revoked)
      }
    }
    for (const lease of this.#leases.values()) {
      if (lease.origin === budget.origin) lease.stop(CloseReasons.revoked, 'revoked')
    }
    return budget.view()
  }

  budgets(): BudgetView[] {
    return [...this.#budgets.values()].map((budget) => budget.view())
  }

  /** Drops every lease's stream without a word (the payer is closing). */
  destroyLeases(): void {
    for (const lease of this.#leases.values()) lease.destroy()
  }

  #authorized(origin: string): Budget {
    const budget = this.#budgets.get(originOf(origin))
    if (!budget) {
      throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `no budget for ${originOf(origin)}; call authorize() first`)
    }
    return budget
  }
}

/** The origin of a URL (`https://host:port`), as budgets and credentials are keyed. */
function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch (cause) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `${JSON.stringify(url)} is not a URL or origin`, { cause })
  }
}
