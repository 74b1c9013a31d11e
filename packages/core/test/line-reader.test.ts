import { Buffer } from 'node:buffer'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LineReader, MAX_HELLO_BYTES, type LineReaderOptions } from '../src/index.ts'

const bytes = (text: string) => new TextEncoder().encode(text)
const latin1 = (line: Uint8Array) => Buffer.from(line).toString('latin1')

/** Every line `reader` has for `chunks`, fed one by one: the lines after each chunk. */
function read(options: LineReaderOptions, chunks: Uint8Array[]): { lines: string[][]; reader: LineReader } {
  const reader = new LineReader(options)
  const lines = chunks.map((chunk) => {
    reader.push(chunk)
    const got: string[] = []
    for (let line = reader.next(); line !== undefined; line = reader.next()) got.push(latin1(line))
    return got
  })
  return { lines, reader }
}

/** Bytes with newlines in them, cut into chunks at arbitrary places. */
const chunked = fc
  .array(fc.oneof(fc.constant(0x0a), fc.integer({ min: 0, max: 255 })), { maxLength: 3000 })
  .chain((all) =>
    fc
      .uniqueArray(fc.integer({ min: 0, max: all.length }), { maxLength: 12 })
      .map((cuts) => [0, ...cuts.sort((a, b) => a - b), all.length])
      .map((edges) => edges.slice(1).map((end, i) => Uint8Array.from(all.slice(edges[i], end)))),
  )

describe('LineReader', () => {
  it('splits at each newline, without it, and returns the bytes as they came (a \\r, bytes that are not UTF-8)', () => {
    const { lines, reader } = read({ maxLineBytes: 100, overflow: 'drop' }, [
      bytes('one\r\ntw'),
      Uint8Array.from([0x6f, 0xff, 0x0a, 0x0a]),
      bytes('three'),
    ])
    expect(lines).toEqual([['one\r'], ['two\xff', ''], []])
    expect(latin1(reader.rest())).toBe('three')
  })

  it('reads the same lines however the bytes are cut into chunks', () => {
    fc.assert(
      fc.property(chunked, (chunks) => {
        const whole = read({ maxLineBytes: 4000, overflow: 'fail' }, [Buffer.concat(chunks)])
        const inParts = read({ maxLineBytes: 4000, overflow: 'fail' }, chunks)
        expect(inParts.lines.flat()).toEqual(whole.lines.flat())
        expect(latin1(inParts.reader.rest())).toBe(latin1(whole.reader.rest()))
      }),
    )
  })

  it('holds a partial line of maxLineBytes; one byte more overflows', () => {
    const held = read({ maxLineBytes: 4, overflow: 'fail' }, [bytes('abcd')])
    expect(held.reader.overflowed).toBe(false)
    const over = read({ maxLineBytes: 4, overflow: 'fail' }, [bytes('abcde')])
    expect(over.reader.overflowed).toBe(true)
  })

  it("returns a line that arrives whole whatever its length (the caller's decoder judges it)", () => {
    const { lines, reader } = read({ maxLineBytes: 4, overflow: 'fail' }, [bytes(`${'x'.repeat(50)}\n`)])
    expect(lines).toEqual([['x'.repeat(50)]])
    expect(reader.overflowed).toBe(false)
  })

  it("overflow 'fail': stops for good, and returns no line even when the newline then arrives", () => {
    const { lines, reader } = read({ maxLineBytes: 4, overflow: 'fail' }, [bytes('abc'), bytes('de'), bytes('\nok\n')])
    expect(lines).toEqual([[], [], []])
    expect(reader.overflowed).toBe(true)
  })

  it("overflow 'drop': forgets what arrived of a long line; the rest of it, up to the newline, comes as a line", () => {
    const { lines, reader } = read({ maxLineBytes: 4, overflow: 'drop' }, [bytes('ok\nabcdef'), bytes('gh\nnext\n')])
    expect(lines).toEqual([['ok'], ['gh', 'next']])
    expect(reader.overflowed).toBe(false)
  })

  it('overflow { keep }: cuts a long partial line to its first bytes, and appends what follows', () => {
    const { lines } = read({ maxLineBytes: 4, overflow: { keep: 2 } }, [bytes('abcdef'), bytes('gh\n')])
    expect(lines).toEqual([[], ['abgh']])
  })

  it('checks the bound only once no whole line is left (lines before it in the same chunk are read)', () => {
    const { lines } = read({ maxLineBytes: 4, overflow: 'fail' }, [bytes('a\nb\nlonger than four')])
    expect(lines).toEqual([['a', 'b']])
  })

  it('maxLines: returns that many lines, then none; rest() holds all that follows, newlines included', () => {
    const { lines, reader } = read({ maxLineBytes: 100, overflow: 'fail', maxLines: 1 }, [bytes('hello\nnext\nmore')])
    expect(lines).toEqual([['hello']])
    expect(reader.next()).toBeUndefined()
    expect(latin1(reader.rest())).toBe('next\nmore')
  })

  it('keeps no view of a chunk that its caller may reuse', () => {
    const chunk = bytes('abc')
    const reader = new LineReader({ maxLineBytes: 100, overflow: 'fail' })
    reader.push(chunk)
    chunk.fill(0x7a)
    reader.push(bytes('\n'))
    expect(latin1(reader.next()!)).toBe('abc')
  })
})

/**
 * The three line readers it replaced, as they were (payer hello, payer's later lines, the server's
 * SocketStream), kept here as oracles: each site's options must read exactly what its old reader read.
 */
describe('LineReader reads what the readers it replaced read', () => {
  /**
   * A few lines (some starting with `{`, some left open so that they run on), mostly of lengths at
   * each reader's bounds, where an off-by-one would show, cut into chunks, often at those bounds.
   */
  const bounds = [0, 1, 255, 256, 257, 510, 511, 512, 513, 514]
  const longLines = fc
    .array(
      fc
        .record({
          json: fc.boolean(),
          body: fc
            .oneof({ arbitrary: fc.constantFrom(...bounds), weight: 3 }, { arbitrary: fc.nat(700), weight: 1 })
            .chain((length) => fc.uint8Array({ minLength: length, maxLength: length }))
            .map((body) => body.map((byte) => (byte === 0x0a ? 0x61 : byte))),
          newline: fc.boolean(),
        })
        .map(({ json, body, newline }) => Buffer.concat([Buffer.from(json ? '{' : ''), body, Buffer.from(newline ? '\n' : '')])),
      { minLength: 1, maxLength: 4 },
    )
    .map((parts) => Buffer.concat(parts))
    .chain((all) =>
      fc
        .uniqueArray(fc.oneof(fc.constantFrom(...bounds), fc.nat(all.length)), { maxLength: 6 })
        .map((cuts) => [0, ...cuts.filter((cut) => cut <= all.length).sort((a, b) => a - b), all.length])
        .map((edges) => edges.slice(1).map((end, i) => all.subarray(edges[i], end))),
    )
  const runs = { numRuns: 2000 }

  it("the payer's hello: the first line, refused once MAX_HELLO_BYTES arrive without a newline", () => {
    const old = (chunks: Buffer[]) => {
      let buffered = Buffer.alloc(0)
      for (const chunk of chunks) {
        buffered = Buffer.concat([buffered, chunk])
        const newline = buffered.indexOf(0x0a)
        if (newline === -1) {
          if (buffered.length >= MAX_HELLO_BYTES) return 'refused'
          continue
        }
        return [latin1(buffered.subarray(0, newline)), latin1(buffered.subarray(newline + 1))]
      }
      return 'waiting'
    }
    const now = (chunks: Buffer[]) => {
      const hello = new LineReader({ maxLineBytes: MAX_HELLO_BYTES - 1, overflow: 'fail', maxLines: 1 })
      for (const chunk of chunks) {
        hello.push(chunk)
        const line = hello.next()
        if (line === undefined) {
          if (hello.overflowed) return 'refused'
          continue
        }
        return [latin1(line), latin1(hello.rest())]
      }
      return 'waiting'
    }
    fc.assert(
      fc.property(longLines, (chunks) => {
        expect(now(chunks)).toEqual(old(chunks))
      }),
      runs,
    )
  })

  it("the payer's later lines: every line, what arrived of one past MAX_HELLO_BYTES dropped", () => {
    const old = (chunks: Buffer[]) => {
      const lines: string[] = []
      let buffered = Buffer.alloc(0)
      for (const chunk of chunks) {
        buffered = Buffer.concat([buffered, chunk])
        for (let newline = buffered.indexOf(0x0a); newline !== -1; newline = buffered.indexOf(0x0a)) {
          lines.push(latin1(buffered.subarray(0, newline)))
          buffered = buffered.subarray(newline + 1)
        }
        if (buffered.length >= MAX_HELLO_BYTES) buffered = Buffer.alloc(0)
      }
      return lines
    }
    const now = (chunks: Buffer[]) => read({ maxLineBytes: MAX_HELLO_BYTES - 1, overflow: 'drop' }, chunks).lines.flat()
    fc.assert(
      fc.property(longLines, (chunks) => {
        expect(now(chunks)).toEqual(old(chunks))
      }),
      runs,
    )
  })

  it("the server's SocketStream: latin1 lines, a partial one past 512 cut to 256, reading stops at a refusal until the next chunk", () => {
    const old = (chunks: Buffer[]) => {
      const seen: string[] = []
      let said = ''
      for (const chunk of chunks) {
        said += chunk.toString('latin1')
        let stopped = false
        for (let newline = said.indexOf('\n'); newline !== -1; newline = said.indexOf('\n')) {
          const line = said.slice(0, newline)
          said = said.slice(newline + 1)
          seen.push(line)
          if (!line.startsWith('{')) {
            stopped = true
            break
          }
        }
        if (!stopped && said.length > 512) said = said.slice(0, 256)
      }
      return seen
    }
    const now = (chunks: Buffer[]) => {
      const seen: string[] = []
      const said = new LineReader({ maxLineBytes: 512, overflow: { keep: 256 } })
      for (const chunk of chunks) {
        said.push(chunk)
        for (let line = said.next(); line !== undefined; line = said.next()) {
          const text = latin1(line)
          seen.push(text)
          if (!text.startsWith('{')) break
        }
      }
      return seen
    }
    fc.assert(
      fc.property(longLines, (chunks) => {
        expect(now(chunks)).toEqual(old(chunks))
      }),
      runs,
    )
  })
})
