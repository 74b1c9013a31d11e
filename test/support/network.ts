import { createServer, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { startTestnet, type Testnet } from '@cogpay/testnet'
import {
  createPaymentServer,
  createPayer,
  type IlpPlugin,
  type PaymentServer,
  type Payer,
  type PaymentServerOptions,
} from '@cogpay/ilp'

/** A real embedded ILP network with one paid server's receiver and one client's payer on it. */
export interface Network {
  testnet: Testnet
  receiver: PaymentServer
  payer: Payer
  /** A further payer (a second client) on the same network; closed with the network. */
  newPayer(): Payer
  close(): Promise<void>
}

/** Options of {@link startNetwork} beyond the receiver's. */
export interface NetworkOptions {
  /** Makes each side's uplink from its BTP URI (for example, wraps it in a `faultyPlugin`). Default: the URI. */
  uplink?: (uri: string, role: 'server' | 'payer') => string | IlpPlugin
}

export async function startNetwork(
  receiverOptions: PaymentServerOptions = {},
  options: NetworkOptions = {},
): Promise<Network> {
  const testnet = await startTestnet()
  const uplink = options.uplink ?? ((uri: string) => uri)
  const receiver = createPaymentServer({ uplink: uplink(testnet.uri('server'), 'server'), ...receiverOptions })
  const payers: Payer[] = []
  const newPayer = () => {
    const payer = createPayer({ uplink: uplink(testnet.uri('payer'), 'payer') })
    payers.push(payer)
    return payer
  }
  const payer = newPayer()
  await Promise.all([receiver.uplink.connect(), payer.start()])
  return {
    testnet,
    receiver,
    payer,
    newPayer,
    async close() {
      await Promise.allSettled(payers.map((p) => p.close()))
      await receiver.close().catch(() => {})
      await testnet.close()
    },
  }
}

/** Starts an HTTP server for a request listener (an Express app, or `koa.callback()`) on 127.0.0.1:0. */
export async function listen(handler: RequestListener): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
