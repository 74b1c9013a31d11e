/**
 * The STREAM transports the bench can measure, by the name it passes to every child process as
 * `COGPAY_TRANSPORT`. The library does not read that variable yet: with one transport in it
 * (ilp-protocol-stream, inside @cogpay/ilp), every run measures that one. When @cogpay/stream is
 * wired in and the library picks its transport from `COGPAY_TRANSPORT`, add its name here and run
 * `BENCH_TRANSPORTS=ilp-protocol-stream,<name> npm run bench` to get both side by side.
 *
 * A name that is not listed is refused, so that a run can never label one transport's figures
 * with another's name.
 */
export const TRANSPORTS = ['ilp-protocol-stream'] as const

export type TransportName = (typeof TRANSPORTS)[number]

/** The transport whose figures are also the top-level keys of bench/results.json. */
export const DEFAULT_TRANSPORT: TransportName = 'ilp-protocol-stream'

/** Parses BENCH_TRANSPORTS (comma-separated; default: the default transport). */
export function transportsFrom(value: string | undefined): TransportName[] {
  if (!value?.trim()) return [DEFAULT_TRANSPORT]
  const names = [...new Set(value.split(',').map((name) => name.trim()).filter(Boolean))]
  for (const name of names) {
    if (!(TRANSPORTS as readonly string[]).includes(name)) {
      throw new Error(`BENCH_TRANSPORTS: unknown transport ${JSON.stringify(name)}; known: ${TRANSPORTS.join(', ')}`)
    }
  }
  return names as TransportName[]
}
