import { performance } from 'node:perf_hooks'

/** Latencies of one measured loop, in milliseconds. */
export interface Stats {
  count: number
  errors: number
  p50: number
  p90: number
  p99: number
  mean: number
  min: number
  max: number
  firstError?: string
}

export const now = (): number => performance.now()
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The nearest-rank percentile of `values` (NaN for none). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

export function stats(values: readonly number[], errors = 0, firstError?: string): Stats {
  return {
    ...(firstError === undefined ? {} : { firstError }),
    count: values.length,
    errors,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    mean: values.reduce((a, b) => a + b, 0) / (values.length || 1),
    min: values.length ? Math.min(...values) : NaN,
    max: values.length ? Math.max(...values) : NaN,
  }
}

export function errorText(err: unknown): string {
  return ((err as Error)?.message ?? String(err)).split('\n')[0]!.slice(0, 300)
}

/** How many of a loop to run and for how long at most. */
export interface Bounds {
  /** Timed calls. */
  count: number
  /** Untimed calls before them. */
  warmup: number
  /** The loop stops here, however many calls are left. */
  maxMs: number
}

/** Runs `fn` sequentially: `warmup` untimed calls, then up to `count` timed ones, all within `maxMs`. */
export async function sequential(fn: () => Promise<void>, bounds: Bounds): Promise<Stats> {
  const times: number[] = []
  let errors = 0
  let firstError: string | undefined
  const deadline = now() + bounds.maxMs
  for (let i = 0; i < bounds.warmup + bounds.count && now() < deadline; i++) {
    const start = now()
    try {
      await fn()
      if (i >= bounds.warmup) times.push(now() - start)
    } catch (err) {
      errors++
      firstError ??= errorText(err)
    }
  }
  return stats(times, errors, firstError)
}

/** What clients running at once managed in a time, with every latency (to merge across processes). */
export interface Throughput {
  clients: number
  requests: number
  errors: number
  seconds: number
  times: number[]
  firstError?: string
}

/** Each client loops sequentially until `durationMs` has passed; a failed call backs off 1 ms. */
export async function concurrently(clients: Array<() => Promise<void>>, durationMs: number): Promise<Throughput> {
  const times: number[] = []
  let errors = 0
  let firstError: string | undefined
  const start = now()
  const deadline = start + durationMs
  await Promise.all(
    clients.map(async (fn) => {
      while (now() < deadline) {
        const t = now()
        try {
          await fn()
          times.push(now() - t)
        } catch (err) {
          errors++
          firstError ??= errorText(err)
          await sleep(1)
        }
      }
    }),
  )
  return {
    clients: clients.length,
    requests: times.length,
    errors,
    seconds: (now() - start) / 1000,
    times,
    ...(firstError === undefined ? {} : { firstError }),
  }
}
