import { utf8 } from './bytes.js'
import type { Asset } from './amount.js'
import { CogpayError, isCogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'
import { createPriceResolver, type PriceSpec } from './price.js'
import type { PaymentReceiver } from './receiver.js'
import type { RefundPolicy } from './route-options.js'
import {
  idempotencyOptions,
  idempotencyScope,
  readIdempotencyKey,
  sha256,
  type IdempotencyOptions,
  type IdempotencyRecord,
  type IdempotencyStore,
  type StoredResponse,
} from './idempotency.js'
import { paymentRequirements, type PaymentRequiredBody } from './requirements.js'
import { Headers, announcedCapBelow, parsePaymentHeaders, type HeaderSource, type PaymentHeaders } from './wire.js'

/** What a paid request paid, as the handler sees it (`res.locals.payment`, `ctx.state.payment`). */
export interface PaymentReceipt {
  readonly requestId: string
  /** The price asked, in the server's units. */
  readonly price: bigint
  /** What arrived, in the server's units. */
  readonly paid: bigint
  readonly asset: Asset
}

/** The request as the paywall needs it. */
export interface PaywallInput<Req> {
  readonly headers: HeaderSource
  /** The framework's request object, passed to a price function. */
  readonly request: Req
  /** Fires when the client goes away before it has paid. */
  readonly signal?: AbortSignal
  /** The client's network address (the request's remote IP), for per-client limits. */
  readonly client?: string
  /**
   * What makes two requests the same for `Idempotency-Key`: method, path and query, body length
   * (see {@link requestFingerprint}). Without it, every request with a key counts as the same.
   */
  readonly fingerprint?: string
}

/** @internal A replayed response's headers, by name (a header sent several times keeps each value, as Set-Cookie). */
export function groupHeaders(headers: readonly (readonly [string, string])[]): Map<string, string[]> {
  const grouped = new Map<string, string[]>()
  for (const [name, value] of headers) {
    const key = name.toLowerCase()
    const values = grouped.get(key)
    if (values) values.push(value)
    else grouped.set(key, [value])
  }
  return grouped
}

/** A request's fingerprint for idempotency: method, path and query, and body length. */
export function requestFingerprint(method: string, url: string, contentLength: string | undefined): string {
  return `${method.toUpperCase()} ${url} ${contentLength ?? '-'}`
}

/**
 * What the framework adapter must do:
 * - `respond`: answer now with this status, headers and JSON body (400 and 402: protocol answers);
 * - `fail`: hand the error to the framework's error path (`next(err)`, Koa's throw): a 5xx
 *   `CogpayError`, or the app's own error from its price function, unchanged;
 * - `proceed`: set the headers, expose `receipt`, run the handler, and call `finish()` when the
 *   response is done.
 */
export type PaywallOutcome =
  | {
      readonly type: 'respond'
      readonly status: number
      readonly headers: Readonly<Record<string, string>>
      readonly body: PaymentRequiredBody
    }
  | { readonly type: 'fail'; readonly error: unknown }
  | {
      /** A retry of a request already paid and served: send this stored response again, as is. */
      readonly type: 'replay'
      readonly status: number
      readonly headers: readonly (readonly [string, string])[]
      readonly body: Uint8Array
    }
  | {
      readonly type: 'proceed'
      readonly headers: Readonly<Record<string, string>>
      readonly receipt: PaymentReceipt
      /**
       * Call just before the response headers go out, with the status: for a failure (5xx) under
       * `refund: 'on-error'` it starts the refund and returns the `Cogpay-Refund` header to set.
       */
      beforeHeaders(status: number): Record<string, string>
      /**
       * Call when the response is done, with whether it was served in full (sent to its end with a
       * status below 500), the response as sent when `replayBytes` asked for it (`undefined` when
       * its body was larger), and whether its headers had gone out. Under `refund: 'on-error'` a
       * failure (5xx) is refunded, and so is a response cut off before its headers went out; one cut
       * after is not, since a client that hangs up mid-body on purpose must not get the work free.
       * A served response is kept for an `Idempotency-Key` retry.
       */
      finish(served?: boolean, response?: StoredResponse, headersSent?: boolean): void
      /** Keep the response (status, headers, body up to this many bytes) and pass it to `finish`. */
      readonly replayBytes?: number
      /** Resolves with what was refunded once the response is done (`0n` when nothing was). */
      readonly refunded: Promise<bigint>
    }

/** Options for {@link createPaywall}. */
export interface PaywallOptions {
  /** The payment side: where the money is collected. */
  readonly receiver: PaymentReceiver
  /** What happens to the money when the handler fails. Default `'on-error'`: it is paid back. */
  readonly refund?: RefundPolicy
  /** Retries with the same `Idempotency-Key` are never charged twice (see {@link IdempotencyStore}). On by default; `false` turns it off. */
  readonly idempotency?: IdempotencyOptions | false
}

/** The framework-free core of `paidRoute`: one request in, one instruction out. */
export interface Paywall<Req> {
  handle(input: PaywallInput<Req>): Promise<PaywallOutcome>
}

/**
 * Creates the paywall for a price. The price is checked now: a bad fixed price throws
 * `COGPAY_INVALID_OPTIONS` here, at setup, not on the first request.
 */
export function createPaywall<Req>(price: PriceSpec<Req>, options: PaywallOptions): Paywall<Req> {
  const resolvePrice = createPriceResolver(price)
  const receiver = options.receiver
  if (typeof receiver?.collect !== 'function' || typeof receiver.asset !== 'function') {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, 'receiver must implement asset() and collect()')
  }
  const policy = refundPolicy(options.refund)
  const idempotency = idempotencyOptions(options.idempotency)

  return {
    async handle(input) {
      // Headers first: a malformed request is answered without running the price function.
      const parsed = parsePaymentHeaders(input.headers)
      if (parsed.type === 'invalid') return respondWithError(parsed.error)
      let amount: bigint
      let asset: Asset
      try {
        amount = await resolvePrice(input.request)
        asset = await receiver.asset()
      } catch (err) {
        // The app's own error (its price function threw): its error handler decides, and its
        // message is not ours to show.
        return fail(err)
      }
      if (parsed.type === 'none') {
        if (amount === 0n) return proceed({ requestId: '', price: 0n, paid: 0n, asset })
        const error = new CogpayError(
          ErrorCodes.PAYMENT_REQUIRED,
          `this resource costs ${amount} (asset ${asset.code}, scale ${asset.scale}); pay with the ${Headers.scheme} headers`,
          { status: 402 },
        )
        return respondWithError(error, amount, asset)
      }
      const { requestId } = parsed.headers
      if (amount === 0n) return proceed({ requestId, price: 0n, paid: 0n, asset })
      // The payer announced a cap below the price: refuse now, without opening a socket.
      if (announcedCapBelow(parsed.headers.maxSpend, amount, asset)) {
        return respondWithError(capBelow(amount, parsed.headers.maxSpend?.amount ?? 0n), amount, asset)
      }
      // One logical request, one payment: a retry with the same Idempotency-Key is not charged again.
      const retry = await idempotentRetry(idempotency, input, parsed.headers)
      if (retry.type === 'outcome') return retry.outcome
      const record = retry.keeper
      // A retry of a request paid before (its response not kept): what it paid, net of refunds,
      // is a credit. Enough for the price as it is now: served as paid, without a payment.
      // Not enough (a refund cut short, or a price that has grown): only the difference is asked.
      const credit = retry.type === 'paid' ? BigInt(retry.earlier.paid ?? 0) : 0n
      if (retry.type === 'paid' && credit >= amount) {
        const receipt = { requestId, price: amount, paid: credit, asset }
        return proceed(receipt, { replayed: true, keeper: record!, replayBytes: idempotency!.maxReplayBytes })
      }
      try {
        const collection = await receiver.collect({
          payment: parsed.headers,
          amount: amount - credit,
          ...(input.signal ? { signal: input.signal } : {}),
          ...(input.client ? { client: input.client } : {}),
        })
        const receipt = { requestId, price: amount, paid: credit + collection.paid, asset: collection.asset }
        const refund =
          policy === 'on-error' && receiver.refund
            ? () => receiver.refund!({ payment: parsed.headers, amount: collection.paid })
            : undefined
        return proceed(receipt, {
          close: () => collection.close(),
          ...(refund ? { refund } : {}),
          ...(record ? { keeper: record, replayBytes: idempotency!.maxReplayBytes } : {}),
        })
      } catch (err) {
        // Part of the price may have arrived before it failed (`received` on the error): it is
        // paid back, the same as a failed handler's price.
        const partial = (err as { received?: unknown } | null)?.received
        const arrived = typeof partial === 'bigint' ? partial : 0n
        const refunding =
          policy === 'on-error' && receiver.refund && arrived > 0n
            ? receiver.refund({ payment: parsed.headers, amount: arrived }).catch(() => 0n)
            : Promise.resolve(0n)
        // Its record keeps what was paid and not given back (a retry is asked only the rest), or
        // goes: a retry pays as new. Written once the refund has been sent.
        void refunding.then((back) => record?.keep({ requestId, price: amount, paid: credit + arrived - back, asset }))
        const error = isCogpayError(err)
          ? err
          : new CogpayError(ErrorCodes.PAYMENT_FAILED, 'the payment failed on the server side', {
              status: 502,
              cause: err,
            })
        // A 402 still says what the price was, so the client learns it even from a failed attempt.
        if (error.status === 402) return respondWithError(error, amount, asset)
        if (error.status < 500) return respondWithError(error)
        return { type: 'fail', error }
      }
    },
  }
}

/** What an `Idempotency-Key` makes of a request (see {@link idempotentRetry}). */
export type IdempotentRetry =
  /** Answer with this now (400, 409, 422, a replayed response, a store failure). */
  | { readonly type: 'outcome'; readonly outcome: Extract<PaywallOutcome, { type: 'respond' | 'fail' | 'replay' }> }
  /** Go on as usual (`keeper` is set when there is a key: it keeps the record). */
  | { readonly type: 'new'; readonly keeper: RecordKeeper | undefined }
  /** Paid before, its response not kept: serve it as already paid (its record is claimed). */
  | { readonly type: 'paid'; readonly keeper: RecordKeeper; readonly earlier: IdempotencyRecord }

/**
 * @internal The idempotency step of a paid or metered route: reads the key, and looks up, claims
 * or starts its record. Runs once the payment headers are valid and the price is known.
 */
export async function idempotentRetry(
  idempotency: Required<IdempotencyOptions> | undefined,
  input: PaywallInput<unknown>,
  payment: PaymentHeaders,
): Promise<IdempotentRetry> {
  if (!idempotency) return { type: 'new', keeper: undefined }
  const key = readIdempotencyKey(input.headers)
  if (key instanceof CogpayError) return { type: 'outcome', outcome: respondWithError(key) }
  if (key === undefined) return { type: 'new', keeper: undefined }
  let keeper: RecordKeeper
  let earlier: IdempotencyRecord | undefined
  let fingerprint: string
  try {
    // Hashed: a store keeps 44 characters per request, however long its URL.
    fingerprint = await sha256(input.fingerprint ?? '')
    const scope = await idempotencyScope(key, payment)
    keeper = new RecordKeeper(idempotency.store, scope, fingerprint, idempotency.ttlMs, idempotency.runningTtlMs)
    earlier = await idempotency.store.begin(scope, fingerprint, idempotency.runningTtlMs)
  } catch (err) {
    return { type: 'outcome', outcome: { type: 'fail', error: storeFailed(err) } }
  }
  if (!earlier) {
    keeper.hold({ state: 'running', fingerprint })
    return { type: 'new', keeper }
  }
  if (earlier.fingerprint !== fingerprint) return { type: 'outcome', outcome: respondWithError(keyReused()) }
  if (earlier.state === 'running') return { type: 'outcome', outcome: respondWithError(inProgress()) }
  if (earlier.response) {
    // This request's own id; and a stored body is whole, so it is no longer metered (no final
    // message follows on any stream).
    const dropped = new Set(['cogpay-request-id', 'cogpay-metered'])
    const headers = earlier.response.headers.filter(([name]) => !dropped.has(name.toLowerCase()))
    return {
      type: 'outcome',
      outcome: {
        type: 'replay',
        status: earlier.response.status,
        headers: [...headers, [Headers.requestId, payment.requestId], [Headers.replayed, 'response']],
        body: earlier.response.body,
      },
    }
  }
  // Claim it first, so that two such retries at once never both run; a few times at most.
  let claimed: IdempotencyRecord | undefined
  try {
    claimed = await idempotency.store.claim(keeper.scope, idempotency.runningTtlMs)
  } catch (err) {
    return { type: 'outcome', outcome: { type: 'fail', error: storeFailed(err) } }
  }
  if (!claimed) return { type: 'outcome', outcome: respondWithError(inProgress()) }
  const replays = claimed.replays ?? 0
  if (replays >= idempotency.maxReplays) {
    void keeper.restore(claimed)
    return { type: 'outcome', outcome: respondWithError(replaysExhausted(idempotency.maxReplays)) }
  }
  keeper.replays = replays + 1
  keeper.hold({ ...claimed, state: 'running' })
  return { type: 'paid', keeper, earlier: claimed }
}

/** @internal The 402 for a price above a cap the payer announced. */
export function capBelow(price: bigint, cap: bigint): CogpayError {
  return new CogpayError(
    ErrorCodes.CAP_TOO_LOW,
    `the payer's announced cap is below the price: price=${price} maxSpend=${cap}`,
    { status: 402 },
  )
}

function fail(error: unknown): PaywallOutcome {
  return { type: 'fail', error }
}

/** @internal Checks a `refund` option. */
export function refundPolicy(value: RefundPolicy | undefined): RefundPolicy {
  if (value === undefined) return 'on-error'
  if (value !== 'on-error' && value !== 'never') {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `refund must be 'on-error' or 'never', got ${JSON.stringify(value)}`)
  }
  return value
}

/**
 * The paid response's outcome: headers, receipt, and a refund that starts at most once, when the
 * response fails (a 5xx status as its headers go out, or a response not served in full).
 */
function proceed(
  receipt: PaymentReceipt,
  how: {
    close?: () => void
    refund?: () => Promise<bigint>
    keeper?: RecordKeeper
    replayBytes?: number
    /** Served as already paid (an idempotent retry): nothing to refund or close. */
    replayed?: boolean
  } = {},
): PaywallOutcome {
  const { close = () => {}, refund, keeper } = how
  let refunding: Promise<bigint> | undefined
  let settle!: (refunded: bigint) => void
  const refunded = new Promise<bigint>((resolve) => (settle = resolve))
  const startRefund = () => {
    if (!refund || refunding || receipt.paid === 0n) return false
    refunding = refund().catch(() => 0n)
    void refunding.then(settle)
    return true
  }
  const headers: Record<string, string> = {
    [Headers.price]: receipt.price.toString(),
    [Headers.paid]: receipt.paid.toString(),
    [Headers.assetCode]: receipt.asset.code,
    [Headers.assetScale]: String(receipt.asset.scale),
  }
  if (receipt.requestId) headers[Headers.requestId] = receipt.requestId
  if (how.replayed) headers[Headers.replayed] = 'payment'
  let finished = false
  return {
    type: 'proceed',
    headers,
    receipt,
    refunded,
    ...(keeper && how.replayBytes !== undefined ? { replayBytes: how.replayBytes } : {}),
    beforeHeaders(status) {
      if (status < 500) return {}
      startRefund()
      return refunding ? { [Headers.refund]: receipt.paid.toString() } : {}
    },
    finish(served = true, response, headersSent = false) {
      if (finished) return
      finished = true
      close()
      if (!served && !headersSent) startRefund()
      if (!refunding) settle(0n)
      if (!keeper) return
      if (served) return void keeper.done(receipt, response)
      // Not served. Its record keeps what was paid and not given back: a retry is served as paid
      // when that covers the price, and asked only the rest when it does not. Nothing kept: it
      // goes, and a retry pays as new.
      void refunded.then((back) => keeper.keep({ ...receipt, paid: receipt.paid - back }))
    },
  }
}

/** @internal Writes one request's idempotency record; store failures are swallowed (the record then expires). */
export class RecordKeeper {
  /** Times this record's request has been served again as paid, this time included. */
  replays = 0

  #heartbeat: ReturnType<typeof setInterval> | undefined

  constructor(
    readonly store: IdempotencyStore,
    readonly scope: string,
    readonly fingerprint: string,
    readonly ttlMs: number,
    readonly runningTtlMs: number,
  ) {}

  /**
   * Keeps `record` (a running one) alive while the attempt runs: written again every third of
   * `runningTtlMs`, so that a server that crashes mid-attempt frees the key within `runningTtlMs`
   * rather than the whole TTL.
   */
  hold(record: IdempotencyRecord): void {
    this.#stop()
    const every = Math.max(1, Math.floor(this.runningTtlMs / 3))
    this.#heartbeat = setInterval(() => void this.store.complete(this.scope, record, this.runningTtlMs).catch(() => {}), every)
    this.#heartbeat.unref?.()
  }

  #stop(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
  }

  done(receipt: PaymentReceipt, response?: StoredResponse): Promise<void> {
    this.#stop()
    const record = {
      state: 'done' as const,
      fingerprint: this.fingerprint,
      paid: receipt.paid.toString(),
      price: receipt.price.toString(),
      ...(response ? { response } : {}),
      ...(this.replays > 0 ? { replays: this.replays } : {}),
    }
    return this.store.complete(this.scope, record, this.ttlMs).catch(() => {})
  }

  /**
   * The attempt is over: its record keeps what the payer paid for it and did not get back
   * (`receipt.paid`), and the response when it was kept; with nothing paid it goes, and a retry
   * pays as new.
   */
  keep(receipt: PaymentReceipt, response?: StoredResponse): Promise<void> {
    return receipt.paid > 0n ? this.done(receipt, response) : this.forget()
  }

  /** Puts back a record claimed and not used. */
  restore(record: IdempotencyRecord): Promise<void> {
    this.#stop()
    return this.store.complete(this.scope, record, this.ttlMs).catch(() => {})
  }

  forget(): Promise<void> {
    this.#stop()
    return this.store.forget(this.scope).catch(() => {})
  }
}

function keyReused(): CogpayError {
  return new CogpayError(
    ErrorCodes.IDEMPOTENCY_KEY_REUSED,
    `this ${Headers.idempotencyKey} was already used by this payer for a different request (method, path or body length); use a new key`,
    { status: 422 },
  )
}

function replaysExhausted(max: number): CogpayError {
  return new CogpayError(
    ErrorCodes.IDEMPOTENCY_REPLAYS_EXHAUSTED,
    `this ${Headers.idempotencyKey}'s request was already served again as paid ${max} times; send a new request (a new key) to pay for it again`,
    { status: 422 },
  )
}

function inProgress(): CogpayError {
  const error = new CogpayError(
    ErrorCodes.IDEMPOTENCY_IN_PROGRESS,
    `a request with this ${Headers.idempotencyKey} is still under way; retry once it is done`,
    { status: 409 },
  )
  error.headers['Retry-After'] = '1'
  return error
}

function storeFailed(cause: unknown): CogpayError {
  return new CogpayError(ErrorCodes.STORE_UNAVAILABLE, 'the idempotency store is unavailable; try again shortly', { status: 503, cause })
}

/** @internal The protocol answer for an error: JSON body, `Cogpay-Error` header, requirements on a 402. */
export function respondWithError(
  error: CogpayError,
  amount?: bigint,
  asset?: Asset,
  metered = false,
  intervalMs?: number,
): Extract<PaywallOutcome, { type: 'respond' }> {
  const body: PaymentRequiredBody =
    amount !== undefined && asset
      ? { ...error.toJSON(), accepts: [paymentRequirements(amount, asset, metered, intervalMs)] }
      : error.toJSON()
  return {
    type: 'respond',
    status: error.status,
    // The error's own headers too (Retry-After on a 429 or 503).
    headers: { ...error.headers, [Headers.error]: error.code, 'Content-Type': 'application/json; charset=utf-8' },
    body,
  }
}

/** Serialises a paywall body (for adapters that write raw bytes). */
export function encodeBody(body: PaymentRequiredBody): Uint8Array {
  return utf8(JSON.stringify(body))
}
