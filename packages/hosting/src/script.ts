import type { Request } from 'express'
import { httpError } from './http-error.js'

/** Reads the request body as the script: UTF-8 text, not empty, at most `limit` bytes. */
export async function readScript(req: Request, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > limit) throw httpError(413, 'HOSTING_SCRIPT_TOO_LARGE', `the script is larger than ${limit} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw httpError(413, 'HOSTING_SCRIPT_TOO_LARGE', `the script is larger than ${limit} bytes`)
    chunks.push(chunk)
  }
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })
  let text: string
  try {
    text = decoder.decode(Buffer.concat(chunks))
  } catch {
    throw httpError(400, 'HOSTING_SCRIPT_INVALID', 'the script is not UTF-8 text')
  }
  if (text.trim() === '') throw httpError(400, 'HOSTING_SCRIPT_EMPTY', 'send the script to run as the request body')
  return text
}
