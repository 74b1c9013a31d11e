import type { Response } from 'express'

/** An error the hosting API answers with `status` and a JSON `{ error: { code, message } }`. */
export function httpError(status: number, code: string, message: string): Error {
  return Object.assign(new Error(message), { status, code, expose: true })
}

/** Answers with a JSON error, unless the response has already started. */
export function fail(res: Response, status: number, code: string, message: string): void {
  if (!res.headersSent) res.status(status).json({ error: { code, message } })
}
