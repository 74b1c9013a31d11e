import type { ServerResponse } from 'node:http'

/**
 * Calls `headers()` just before `res` sends its headers, and sets what it returns: a metered
 * response states its totals at that moment (for a handler that charges, then answers, the final
 * totals). Works for any framework on node:http (Express, Koa).
 */
export function beforeHeaders(res: ServerResponse, headers: () => Record<string, string>): void {
  const writeHead = res.writeHead
  res.writeHead = function (this: ServerResponse, ...args: Parameters<ServerResponse['writeHead']>) {
    if (!this.headersSent) for (const [name, value] of Object.entries(headers())) this.setHeader(name, value)
    return writeHead.apply(this, args)
  } as ServerResponse['writeHead']
}
