/** Options of a {@link LineReader}. */
export interface LineReaderOptions {
  /** The most bytes of a line held while its newline has not arrived. */
  readonly maxLineBytes: number
  /**
   * What becomes of a partial line longer than `maxLineBytes`, checked each time no whole line is
   * left (a line that arrives whole is returned whatever its length: the caller's decoder judges it):
   * - `'fail'`: the reader stops; `overflowed` turns true and `next()` returns no more lines;
   * - `'drop'`: its bytes so far are forgotten (what follows, up to the next newline, comes as a line);
   * - `{ keep: n }`: it is cut to its first `n` bytes (what follows is appended to those).
   */
  readonly overflow: 'fail' | 'drop' | { readonly keep: number }
  /** Returns at most this many lines; then `next()` returns no more and `rest()` holds what follows. Default: no limit. */
  readonly maxLines?: number
}

/**
 * Splits bytes that arrive in chunks (stream data) into lines at each `\n` (0x0a), the newline not
 * included. Bytes, not text: a line is returned as it arrived, and each caller decodes it. Memory
 * is bounded by `maxLineBytes` plus the chunk being read. Feed it with `push()`, then take lines
 * with `next()` until it returns `undefined`.
 */
export class LineReader {
  readonly #options: LineReaderOptions
  #buffered = new Uint8Array(0)
  #lines = 0
  #overflowed = false

  constructor(options: LineReaderOptions) {
    this.#options = options
  }

  /** True once a partial line passed `maxLineBytes` under `overflow: 'fail'`. */
  get overflowed(): boolean {
    return this.#overflowed
  }

  /** Adds a chunk of bytes. */
  push(chunk: Uint8Array): void {
    const joined = new Uint8Array(this.#buffered.length + chunk.length)
    joined.set(this.#buffered)
    joined.set(chunk, this.#buffered.length)
    this.#buffered = joined
  }

  /**
   * The next whole line, or `undefined` when none is buffered (the partial line left is then held
   * to `maxLineBytes`), after `maxLines` lines, or once overflowed.
   */
  next(): Uint8Array | undefined {
    if (this.#overflowed || this.#lines >= (this.#options.maxLines ?? Number.POSITIVE_INFINITY)) return undefined
    const newline = this.#buffered.indexOf(0x0a)
    if (newline === -1) {
      this.#bound()
      return undefined
    }
    const line = this.#buffered.subarray(0, newline)
    this.#buffered = this.#buffered.subarray(newline + 1)
    this.#lines++
    return line
  }

  /** What is buffered after the lines returned so far (to hand the rest of the data to another reader). */
  rest(): Uint8Array {
    return this.#buffered
  }

  #bound(): void {
    const { maxLineBytes, overflow } = this.#options
    if (this.#buffered.length <= maxLineBytes) return
    if (overflow === 'fail') this.#overflowed = true
    this.#buffered = overflow === 'fail' || overflow === 'drop' ? new Uint8Array(0) : this.#buffered.subarray(0, overflow.keep)
  }
}
