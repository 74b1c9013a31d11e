import express from 'express'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { paidRoute } from '@cogpay/express'
import { createPayFetch } from '@cogpay/fetch'
import { createPlugin, type IlpPlugin } from '@cogpay/ilp'
import { listen, startNetwork, type Network } from './support/network.ts'

// payFetch returns once it has the response and the Fulfill of its money. The response goes
// straight to the client; the Fulfill goes back through the hub. So the server must hand the
// Fulfill that brought the last of the price to its uplink before the paid handler runs: this
// pins that order (it holds because the answer is written within the microtasks of the Prepare,
// and the handler runs after the paywall's own; a hold or an await on the answer path would break it).

/** The server's uplink plugin, noting when it hands each answer to an incoming Prepare to the wire. */
function watched(uri: string, events: string[]): IlpPlugin {
  const plugin = createPlugin(uri)
  const register = plugin.registerDataHandler.bind(plugin)
  plugin.registerDataHandler = (handler) =>
    register(async (data) => {
      const answer = await handler(data)
      // IL-DCP and money both come this way; a Fulfill's first byte is its type, 13.
      events.push(answer[0] === 13 ? 'fulfill sent' : 'reject sent')
      return answer
    })
  return plugin
}

describe('a fixed-price request', () => {
  const events: string[] = []
  let net: Network
  let app: Awaited<ReturnType<typeof listen>>

  beforeAll(async () => {
    net = await startNetwork({}, { uplink: (uri, role) => (role === 'server' ? watched(uri, events) : uri) })
    const server = express()
    server.get('/paid', paidRoute(100n, { receiver: net.receiver }), (_req, res) => {
      events.push('handler runs')
      res.json({ ok: true })
    })
    app = await listen(server)
  })
  afterAll(async () => {
    await app?.close()
    await net?.close()
  })

  it('pins: the Prepare that completed its price is answered before the handler runs', async () => {
    const payFetch = createPayFetch({ payer: net.payer, maxSpend: 1000n })
    for (let i = 0; i < 5; i++) {
      events.length = 0
      const response = await payFetch(`${app.url}/paid`)
      expect(response.status).toBe(200)
      await response.text()
      const handler = events.indexOf('handler runs')
      expect(handler, events.join(', ')).toBeGreaterThan(0)
      expect(events.slice(0, handler), events.join(', ')).toContain('fulfill sent')
    }
  })
})
