/**
 * The STREAM transports the bench can measure, each named for the STREAM code inside @cogpay/ilp
 * and defined by where the packages come from: the working tree, or a git commit whose packages
 * bench/transport-tree.ts materializes once into bench/.transports/<name>/ (git-ignored). The
 * library holds one transport at a time; an older one stays measurable by running the same bench
 * children against that commit's packages, side by side with the working tree, in one run.
 *
 * Every child process gets the transport's name as `COGPAY_TRANSPORT` (informational: the library
 * does not read it). A name that is not listed is refused, so that a run can never label one
 * transport's figures with another's name.
 */

/**
 * The last commit whose @cogpay/ilp runs on ilp-protocol-stream: the commit after it switches the
 * library to @cogpay/stream in place and drops ilp-protocol-stream from it, so the old transport
 * is measurable only from this commit's packages (issue 10: keep it measurable until the new one
 * wins). A full id, so that it stays unambiguous as the history grows.
 */
export const ILP_PROTOCOL_STREAM_REF = '003e15696568fccbc26a327c7733cb5c8abf0bcb'

/** Where a transport's packages come from. */
export type TransportSource = { kind: 'working-tree' } | { kind: 'git'; ref: string }

export const TRANSPORTS = {
  'ilp-protocol-stream': { kind: 'git', ref: ILP_PROTOCOL_STREAM_REF },
  'cogpay-stream': { kind: 'working-tree' },
} as const satisfies Record<string, TransportSource>

export type TransportName = keyof typeof TRANSPORTS

/** Old first and the working tree last, so that the table reads before → after, next to the targets. */
export const DEFAULT_TRANSPORTS: readonly TransportName[] = ['ilp-protocol-stream', 'cogpay-stream']

/** The transport whose figures are also the top-level keys of bench/results.json, when measured. */
export const DEFAULT_TRANSPORT: TransportName = 'cogpay-stream'

/** Parses BENCH_TRANSPORTS (comma-separated; default: every transport, in DEFAULT_TRANSPORTS order). */
export function transportsFrom(value: string | undefined): TransportName[] {
  if (!value?.trim()) return [...DEFAULT_TRANSPORTS]
  const names = [...new Set(value.split(',').map((name) => name.trim()).filter(Boolean))]
  for (const name of names) {
    if (!Object.hasOwn(TRANSPORTS, name)) {
      throw new Error(`BENCH_TRANSPORTS: unknown transport ${JSON.stringify(name)}; known: ${Object.keys(TRANSPORTS).join(', ')}`)
    }
  }
  return names as TransportName[]
}
