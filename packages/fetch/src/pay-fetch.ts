import { fetch as undiciFetch } from 'undici'
import {
  CogpayError,
  ErrorCodes,
  Headers as WireHeaders,
  PaymentInterruptedError,
  PaymentRequiredError,
  SpendLimitError,
  paymentRequestHeaders,
  parseAmount,
  readPaymentRequirements,
  type AmountLike,
  type Asset,
} from '@cogpay/core'
import { createPayer, type Payer, type PendingPayment } from '@cogpay/ilp'
import { recordPayment, type Payment, type PaymentOutcome } from './payment.js'

/** A fetch function: undici's, the global one, or any compatible. */
export type FetchFunction = (input: string | URL, init?: RequestInit) => Promise<Response>

/** Options for {@link createPayFetch}. */
export type PayFetchOptions = {
  /** Most this client pays for one request, in its own asset's smallest unit. Required. */
  maxSpend: AmountLike
  /** The fetch to wrap. Default: undici's `fetch`. */
  fetch?: FetchFunction
  /** After a response, wait at most this long for payment packets still in flight. Default `2000` ms. */
  settleTimeoutMs?: number
  /**
   * A failed paid response that announces a refund (`Cogpay-Refund`, or `refund` in a metered
   * final message) is returned once the refund has arrived, or after this long. Default `5000` ms.
   */
  refundTimeoutMs?: number
  /**
   * The most a request may wait for its response (its headers; a body may stream for longer),
   * money moving or not. Past it the request is aborted, its payment stopped, and payFetch rejects
   * with `COGPAY_RESPONSE_TIMEOUT`. `init.timeoutMs` overrides it per call. Default `60000` ms.
   */
  timeoutMs?: number
  /**
   * Send an `Idempotency-Key` with every request (a new random one per call, unless the call gives
   * its own in `init.idempotencyKey` or `init.headers`), so that a retry of it, automatic or
   * manual, is never charged twice by a cogpay server. Default `true`.
   */
  idempotencyKeys?: boolean
  /** Hooks, each an array of functions taking one state object (fields may be added later). */
  hooks?: PayFetchHooks
  /**
   * Send each request's cap to the server (`Cogpay-Max-Spend`), so one whose price (or metered
   * `maxPrice`) is higher refuses before any socket or work. Default `false`: the cap is private.
   */
  announceMaxSpend?: boolean
} & (
  | {
      /** The payer (its STREAM server and uplink). Share one across clients to share a socket per server. */
      payer: Payer
      uplink?: never
    }
  | {
      /** A BTP URI for a payer of its own. Default `COGPAY_UPLINK` or `btp+ws://127.0.0.1:7768`. */
      uplink?: string
      payer?: never
    }
)

/** What a spend hook is told. */
export interface SpendState {
  /** Paid so far for this request, in the payer's units. */
  readonly spent: bigint
  readonly maxSpend: bigint
  readonly url: string
  /** What the server asks for in total so far, in its own units: its progress on metered work. */
  readonly asked: bigint
}

/** Hooks of {@link createPayFetch}. */
export interface PayFetchHooks {
  /** Called after every payment packet of a request, as money moves. */
  onSpend?: ((state: SpendState) => void)[]
}

/** A fetch that pays. `init.maxSpend` overrides the configured cap for one call. */
export type PayFetch = ((input: string | URL, init?: PayFetchInit) => Promise<Response>) & {
  /** The payer behind this client. */
  readonly payer: Payer
  /** The response timeout of each request, in ms (see {@link PayFetchOptions.timeoutMs}). */
  readonly timeoutMs: number
}

/**
 * `RequestInit` plus a per-call cap, and `leaseMax`: if this request opens a lease (the host pulls
 * over time from the host's authorization, see `payer.authorize`), the most that lease may be paid
 * in all. Lease money is not this call's `maxSpend`.
 */
export type PayFetchInit = RequestInit & {
  maxSpend?: AmountLike
  leaseMax?: AmountLike
  timeoutMs?: number
  /**
   * This call's `Idempotency-Key`: give the same key to a manual retry of the same logical request
   * and it is not charged again (see `idempotencyKeys`). `false`: send none.
   */
  idempotencyKey?: string | false
}

/**
 * Creates a fetch that pays for what it asks, never more than `maxSpend` per request in its own
 * units. It sends the payment headers with every request; the server pulls the price over a
 * reverse STREAM socket while the request waits. Responses that need no payment pass through
 * untouched. A 402 throws {@link PaymentRequiredError}; a price above the cap throws
 * {@link SpendLimitError}. Read what a response cost with `getPayment(response)`.
 */
export function createPayFetch(options: PayFetchOptions): PayFetch {
  const defaultCap = parseAmount(options.maxSpend, 'maxSpend')
  const fetchImpl = options.fetch ?? (undiciFetch as unknown as FetchFunction)
  const settleTimeoutMs = options.settleTimeoutMs ?? 2000
  const refundTimeoutMs = timeoutOption(options.refundTimeoutMs ?? 5000, 'refundTimeoutMs')
  const defaultTimeoutMs = timeoutOption(options.timeoutMs ?? 60_000, 'timeoutMs')
  const payer = options.payer ?? createPayer(options.uplink === undefined ? {} : { uplink: options.uplink })

  const payFetch = async (input: string | URL, init: PayFetchInit = {}): Promise<Response> => {
    const { maxSpend: callCap, leaseMax, timeoutMs: callTimeout, idempotencyKey, ...requestInit } = init
    const timeoutMs = callTimeout === undefined ? defaultTimeoutMs : timeoutOption(callTimeout, 'init.timeoutMs')
    const maxSpend = callCap === undefined ? defaultCap : parseAmount(callCap, 'maxSpend')
    const url = new URL(input)
    const onSpend = options.hooks?.onSpend ?? []
    const pending = await payer.expect(url.origin, maxSpend, {
      announceMaxSpend: options.announceMaxSpend ?? false,
      ...(leaseMax === undefined ? {} : { leaseMax: parseAmount(leaseMax, 'leaseMax') }),
      onSpend: (spent, asked) => {
        for (const hook of onSpend) hook({ spent, maxSpend, url: url.href, asked })
      },
    })
    const headers = new Headers(requestInit.headers)
    for (const [name, value] of Object.entries(paymentRequestHeaders(pending.headers))) headers.set(name, value)
    if (typeof idempotencyKey === 'string') headers.set(WireHeaders.idempotencyKey, idempotencyKey)
    else if (idempotencyKey !== false && (options.idempotencyKeys ?? true) && !headers.has(WireHeaders.idempotencyKey)) {
      headers.set(WireHeaders.idempotencyKey, globalThis.crypto.randomUUID())
    }

    // The response must arrive within timeoutMs, whatever the server does with the money.
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), timeoutMs)
    const signal = requestInit.signal ? AbortSignal.any([requestInit.signal, timeout.signal]) : timeout.signal
    let response: Response
    try {
      response = await fetchImpl(url, { ...requestInit, headers, signal })
    } catch (err) {
      // No response (aborted, timed out, or the server went away): stop paying and tell the server at once.
      const spent = pending.abort()
      if (timeout.signal.aborted && !requestInit.signal?.aborted) {
        const error = new CogpayError(
          ErrorCodes.RESPONSE_TIMEOUT,
          `${url.href} sent no response within ${timeoutMs} ms; the request was aborted; spent=${spent} maxSpend=${maxSpend}`,
          { status: 504, cause: err },
        )
        throw withSpent(error, spent)
      }
      throw withSpent(err, spent)
    } finally {
      clearTimeout(timer)
    }
    if (response.status !== 402 && response.headers.get(WireHeaders.metered) === '1' && response.body) {
      return meteredResponse(response, pending, { url, maxSpend, settleTimeoutMs, refundTimeoutMs, asset: payer.asset })
    }
    const spent = await pending.finish(settleTimeoutMs)
    // A failed paid request that the server pays back: return once the money is back.
    if (response.status >= 500 && response.headers.has(WireHeaders.refund) && spent > 0n) {
      await pending.waitRefund(refundTimeoutMs)
    }

    if (response.status === 402) {
      const body = await readJson(response)
      const requirements = readPaymentRequirements(body)
      const serverCode = readErrorCode(body) ?? response.headers.get(WireHeaders.error) ?? undefined
      if (pending.capReached || serverCode === ErrorCodes.CAP_TOO_LOW) {
        throw new SpendLimitError({ maxSpend, spent, url: url.href, requirements, serverCode })
      }
      const message = readErrorMessage(body) ?? `${url.href} answered 402 Payment Required`
      throw new PaymentRequiredError(message, { requirements, serverCode, spent })
    }
    let payment: ReturnType<typeof readPayment>
    try {
      payment = readPayment(response, { requestId: pending.headers.requestId, maxSpend, url, asset: payer.asset })
    } catch (err) {
      throw withSpent(err, spent)
    }
    recordPayment(response, {
      ...payment,
      spent,
      // Live: a refund for a response that was cut off may arrive after it was returned.
      get refunded() {
        return pending.refunded
      },
      metered: false,
      done: Promise.resolve({ spent, complete: true, refunded: pending.refunded }),
    })
    return response
  }
  return Object.assign(payFetch, { payer, timeoutMs: defaultTimeoutMs })
}

let shared: PayFetch | undefined

/**
 * Fetches `url`, paying at most `maxSpend` (in the payer's own units) for it. Uses a process-wide
 * payer on `COGPAY_UPLINK` (or `btp+ws://127.0.0.1:7768`). See {@link createPayFetch}.
 */
export function payFetch(url: string | URL, maxSpend: AmountLike, init: RequestInit = {}): Promise<Response> {
  shared ??= createPayFetch({ maxSpend: 0n })
  return shared(url, { ...init, maxSpend })
}

/**
 * Closes the process-wide payer behind {@link payFetch} (its STREAM server and uplink), which
 * otherwise stays connected, and keeps the process alive, for the next request. Call it when a
 * script is done paying; a later `payFetch()` starts a new one.
 */
export async function closePayFetch(): Promise<void> {
  const closing = shared
  shared = undefined
  await closing?.payer.close()
}

/**
 * A metered response: keeps paying while its body streams. When the body ends, waits for the
 * server's final message on the payment stream; if it says the response was cut (or none comes),
 * the body errors with PaymentInterruptedError rather than ending as if it were whole.
 */
function meteredResponse(
  response: Response,
  pending: PendingPayment,
  context: { url: URL; maxSpend: bigint; settleTimeoutMs: number; refundTimeoutMs: number; asset: Asset | undefined },
): Response {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  let settle!: (outcome: PaymentOutcome) => void
  const done = new Promise<PaymentOutcome>((resolve) => {
    settle = resolve
  })
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>
      try {
        chunk = await reader.read()
      } catch (err) {
        settle({ spent: pending.abort(), complete: false, refunded: pending.refunded })
        controller.error(err)
        return
      }
      if (!chunk.done) return controller.enqueue(chunk.value)
      const final = await pending.waitFinal(context.settleTimeoutMs)
      const spent = await pending.finish(context.settleTimeoutMs)
      // The server pays back (a failure, or what was prepaid beyond the charges): wait for it.
      const refunded = final?.refund && spent > 0n ? await pending.waitRefund(context.refundTimeoutMs) : pending.refunded
      if (final?.final === 'complete') {
        settle({ spent, complete: true, refunded })
        controller.close()
        return
      }
      settle({ spent, complete: false, refunded, ...(final?.code ? { code: final.code } : {}) })
      controller.error(
        new PaymentInterruptedError({ url: context.url.href, serverCode: final?.code, spent, maxSpend: context.maxSpend }),
      )
    },
    async cancel(reason) {
      settle({ spent: pending.abort(), complete: false, refunded: pending.refunded })
      await reader.cancel(reason)
    },
  })
  const paid = new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
  let payment: ReturnType<typeof readPayment>
  try {
    payment = readPayment(response, { requestId: pending.headers.requestId, maxSpend: context.maxSpend, url: context.url, asset: context.asset })
  } catch (err) {
    throw withSpent(err, pending.abort())
  }
  recordPayment(paid, {
    ...payment,
    get spent() {
      return pending.spent
    },
    get refunded() {
      return pending.refunded
    },
    metered: true,
    done,
  })
  return paid
}

function readPayment(
  response: Response,
  known: { requestId: string; maxSpend: bigint; url: URL; asset: Asset | undefined },
): Omit<Payment, 'spent' | 'refunded' | 'metered' | 'done'> {
  const get = (name: string) => response.headers.get(name) ?? undefined
  const price = optionalAmount(get(WireHeaders.price), WireHeaders.price)
  const paid = optionalAmount(get(WireHeaders.paid), WireHeaders.paid)
  const scale = get(WireHeaders.assetScale)
  const code = get(WireHeaders.assetCode)
  const lease = get(WireHeaders.lease)
  const interval = get(WireHeaders.interval)
  const replayed = get(WireHeaders.replayed)
  const serverAsset = code !== undefined && scale !== undefined && /^\d{1,3}$/.test(scale) ? { code, scale: Number(scale) } : undefined
  // Comparable only in one asset: across assets the cap (in the payer's units) and the price are
  // different units, and the payer's own spend is what counts.
  const sameAsset = serverAsset !== undefined && serverAsset.code === known.asset?.code && serverAsset.scale === known.asset.scale
  return {
    ...(lease && /^[A-Za-z0-9_-]{16,64}$/.test(lease) ? { lease } : {}),
    ...(interval && /^[1-9]\d{0,9}$/.test(interval) ? { intervalMs: Number(interval) } : {}),
    ...(replayed === 'response' || replayed === 'payment' ? { replayed } : {}),
    url: known.url.href,
    requestId: known.requestId,
    maxSpend: known.maxSpend,
    price,
    paid,
    serverAsset,
    priceAboveCap: sameAsset && price !== undefined && price > known.maxSpend,
  }
}

/** `err` with `spent` on it: every error payFetch throws once payment has begun says what was spent. */
function withSpent(err: unknown, spent: bigint): unknown {
  if (typeof err === 'object' && err !== null && !('spent' in err)) {
    try {
      Object.defineProperty(err, 'spent', { value: spent, enumerable: true })
    } catch {
      // a frozen error keeps its shape
    }
  }
  return err
}

function timeoutOption(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `${name} must be a positive integer (ms), got ${value}`)
  }
  return value
}

function optionalAmount(value: string | undefined, header: string): bigint | undefined {
  if (value === undefined) return undefined
  try {
    return parseAmount(value, header)
  } catch (cause) {
    throw new CogpayError(ErrorCodes.PROTOCOL_ERROR, `the server sent a malformed ${header}: ${(cause as Error).message}`, {
      cause,
    })
  }
}

const MAX_ERROR_BODY = 64 * 1024

async function readJson(response: Response): Promise<unknown> {
  try {
    const text = await response.text()
    return text.length > MAX_ERROR_BODY ? undefined : JSON.parse(text)
  } catch {
    return undefined
  }
}

function readErrorCode(body: unknown): string | undefined {
  const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code
  return typeof code === 'string' ? code : undefined
}

function readErrorMessage(body: unknown): string | undefined {
  const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message
  return typeof message === 'string' ? message.slice(0, 500) : undefined
}
