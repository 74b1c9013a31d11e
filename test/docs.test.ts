import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { CloseReasons, ErrorCodes, Headers } from '@cogpay/core'

const read = (path: string) => readFile(new URL(`../${path}`, import.meta.url), 'utf8')

describe('the docs stay true to the code', () => {
  it('the README error table lists every error code', async () => {
    const readme = await read('README.md')
    const missing = Object.values(ErrorCodes).filter((code) => !readme.includes(`| \`${code}\` |`))
    expect(missing).toEqual([])
  })

  it('PROTOCOL.md names every refusal reason and every header', async () => {
    const protocol = await read('docs/PROTOCOL.md')
    expect(Object.values(CloseReasons).filter((reason) => !protocol.includes(`\`${reason}\``))).toEqual([])
    expect(Object.values(Headers).filter((header) => !protocol.includes(header))).toEqual([])
  })
})
