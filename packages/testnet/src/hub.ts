import { createRequire } from 'node:module'
import { Writable } from 'node:stream'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { BtpServer } from './btp-server.js'
import { ExchangeRates } from './exchange-rates.js'

// `import 'ilp-connector'` from ESM starts a second connector from environment variables,
// because its entry file checks `!module.parent`. Loading it with require() sets module.parent.
const require = createRequire(import.meta.url)
const { createApp } = require('ilp-connector') as typeof import('ilp-connector')
const connectorLog = require('ilp-connector/dist/common/log') as {
  setOutputStream(stream: NodeJS.WritableStream): void
}

/** Options for {@link startTestnet}. */
export interface TestnetOptions {
  /** TCP port for BTP clients on 127.0.0.1. Default `0`: the system picks a free one. */
  port?: number
  /** Host to bind. Default `'127.0.0.1'`. Only loopback addresses are sensible here. */
  host?: string
  /** ILP address of the connector. Children get `<ilpAddress>.local.<name>`. Default `'test.hub'`. */
  ilpAddress?: string
  /** Asset every account uses. Default `'XRP'`. */
  assetCode?: string
  /** Asset scale every account uses. Default `9`. */
  assetScale?: number
  /** Where the connector's own log goes. Default: discarded. */
  log?: NodeJS.WritableStream
  /**
   * A second asset, on a BTP server of its own (children get `<ilpAddress>.second.<name>`, URIs
   * from `testnet.secondUri()`): payments between the two go through the connector's rate.
   */
  second?: SecondAssetOptions
  /**
   * The largest Prepare the connector forwards from a child of the first asset, in its units: a
   * larger one is rejected with F08 (Amount Too Large), with what arrived and this maximum in the
   * reject's data (RFC 27), as a real connector on a small channel does. Default: no limit.
   */
  maxPacketAmount?: bigint
}

/** The second asset of {@link TestnetOptions.second}, and the connector's rate to it. */
export interface SecondAssetOptions {
  assetCode: string
  assetScale: number
  /**
   * Units of the second asset that one unit of the first buys, in asset amounts (the scales are
   * applied by the hub): with `assetCode: 'XRP'` first and `'USD'` second, `2.5` is 1 XRP = 2.5
   * USD. The other way the rate is `1 / rate`. A Prepare of `amount` (in the sender's smallest
   * units) arrives as `floor(amount × rate × 10^(to scale - from scale) × (1 - spread))`, the
   * per-unit rate rounded to 15 significant digits as ilp-connector rounds its own. Change it
   * while the network runs with `testnet.setRate()`. A finite number above 0. Default `1`: the
   * ratio of the scales alone.
   */
  rate?: number
  /**
   * The connector's margin, taken off every route, the same-asset ones included (a payment from
   * one child to another in the same asset arrives as `floor(amount × (1 - spread))`), as a real
   * connector's spread is. Change it with `testnet.setSpread()`. In `[0, 1)`. Default `0`.
   */
  spread?: number
}

/** A running embedded ILP network: one connector, one mini-accounts BTP server. */
export interface Testnet {
  /** Port the BTP server listens on. */
  readonly port: number
  readonly host: string
  readonly assetCode: string
  readonly assetScale: number
  /** ILP address prefix of every child account (`test.hub.local`). */
  readonly childPrefix: string
  /**
   * A BTP URI for a new child account. Each call gives a distinct account name (mini-accounts
   * sends a packet to every socket logged in under the same name), so give each client its own.
   */
  uri(name?: string): string
  /**
   * The second asset, when it was asked for: its code, scale, port and child prefix, and the
   * connector's rate (`rate`, `spread`) as it is now.
   */
  readonly second?: {
    readonly assetCode: string
    readonly assetScale: number
    readonly port: number
    readonly childPrefix: string
    readonly rate: number
    readonly spread: number
  }
  /** A BTP URI for a new child account in the second asset (throws without one). */
  secondUri(name?: string): string
  /**
   * Changes {@link SecondAssetOptions.rate} (units of the second asset per unit of the first) for
   * every Prepare the connector forwards from now on; a Prepare already forwarded keeps the amount
   * it was given. Throws without a second asset, or for a rate that is not a finite number above 0.
   */
  setRate(rate: number): void
  /**
   * Changes {@link SecondAssetOptions.spread} for every Prepare the connector forwards from now on,
   * on every route. Throws without a second asset, or for a spread outside `[0, 1)`.
   */
  setSpread(spread: number): void
  /** Stops the connector and closes every BTP socket. */
  close(): Promise<void>
}

/** The module ilp-connector require()s as its rate backend (it takes a backend only by name or path). */
const connectorBackendPath = fileURLToPath(new URL('./connector-backend.cjs', import.meta.url))

const discard = (): NodeJS.WritableStream =>
  new Writable({
    write(_chunk, _encoding, done) {
      done()
    },
  })

/**
 * Starts a real local ILP network the way `moneyd local` did: `ilp-connector` with one
 * `ilp-plugin-mini-accounts` account listening on loopback.
 */
export async function startTestnet(options: TestnetOptions = {}): Promise<Testnet> {
  const host = options.host ?? '127.0.0.1'
  const ilpAddress = options.ilpAddress ?? 'test.hub'
  const assetCode = options.assetCode ?? 'XRP'
  const assetScale = options.assetScale ?? 9
  connectorLog.setOutputStream(options.log ?? discard())
  // Built before the connector, so that a bad rate or spread throws before anything listens.
  const rates = options.second
    ? new ExchangeRates(
        { account: 'local', assetScale },
        { account: 'second', assetScale: options.second.assetScale },
        options.second.rate ?? 1,
        options.second.spread ?? 0,
      )
    : undefined

  // Each account's BTP server, bound before the connector starts: a port in use rejects here.
  const btpServer = await BtpServer.open(host, options.port ?? 0)
  let secondServer: BtpServer | undefined
  try {
    if (options.second) secondServer = await BtpServer.open(host, 0)
  } catch (error) {
    await btpServer.shut()
    throw error
  }
  const servers = secondServer ? [btpServer, secondServer] : [btpServer]
  const port = btpServer.port
  const secondPort = secondServer?.port
  // mini-accounts hands `wsOpts` to `new WebSocket.Server()`; with ws's `server` option it takes
  // the connections of that server. `port` is only what mini-accounts logs as its port.
  const miniAccountsOn = (server: BtpServer) => ({ port: server.port, wsOpts: { server } })

  const config = {
    ilpAddress,
    // The default backend fetches rates from the internet. One asset needs none: one-to-one, no
    // spread. Two get ours, which the connector loads by path and asks for each Prepare's rate.
    ...(rates
      ? { backend: connectorBackendPath, backendConfig: { rates } }
      : { backend: 'one-to-one', spread: 0 }),
    store: 'memory',
    initialConnectTimeout: 2000,
    accounts: {
      local: {
        relation: 'child',
        plugin: 'ilp-plugin-mini-accounts',
        assetCode,
        assetScale,
        // Every mini-accounts child shares this one connector account, and its token bucket:
        // the default of 10,000 packets a minute is far below what a paid API moves.
        rateLimit: { refillPeriod: 1000, refillCount: 1_000_000_000, capacity: 1_000_000_000 },
        ...(options.maxPacketAmount === undefined ? {} : { maxPacketAmount: options.maxPacketAmount.toString() }),
        options: miniAccountsOn(btpServer),
      },
      ...(options.second && secondServer
        ? {
            second: {
              relation: 'child',
              plugin: 'ilp-plugin-mini-accounts',
              assetCode: options.second.assetCode,
              assetScale: options.second.assetScale,
              rateLimit: { refillPeriod: 1000, refillCount: 1_000_000_000, capacity: 1_000_000_000 },
              options: miniAccountsOn(secondServer),
            },
          }
        : {}),
    },
  } as Parameters<typeof createApp>[0]
  let connector: ReturnType<typeof createApp>
  try {
    connector = createApp(config)
  } catch (error) {
    // A config the connector refuses: nothing may stay bound.
    await Promise.all(servers.map((server) => server.shut()))
    throw error
  }

  const close = async () => {
    try {
      // HTTP connections on a BTP port that are not BTP (half a request, an idle keep-alive)
      // would hold up server.close(), which mini-accounts waits on as it disconnects. A BTP
      // connection is an upgraded one, which the server no longer counts as its own.
      for (const server of servers) server.cutPlainConnections()
      await connector.shutdown()
    } finally {
      await Promise.all(servers.map((server) => server.shut()))
    }
  }
  await connector.listen()
  await accepting(connector, options.second ? ['local', 'second'] : ['local'], close)
  const hostPart = host.includes(':') ? `[${host}]` : host
  const uriOn = (listening: number, name: string) => {
    const account = `${name}${randomBytes(4).toString('hex')}`.replace(/[^a-zA-Z0-9_~-]/g, '')
    return `btp+ws://${account}:${randomBytes(8).toString('hex')}@${hostPart}:${listening}`
  }

  return {
    port,
    host,
    assetCode,
    assetScale,
    childPrefix: `${ilpAddress}.local`,
    uri(name = 'client') {
      return uriOn(port, name)
    },
    ...(options.second && rates && secondPort !== undefined
      ? {
          second: {
            assetCode: options.second.assetCode,
            assetScale: options.second.assetScale,
            port: secondPort,
            childPrefix: `${ilpAddress}.second`,
            get rate() {
              return rates.rate
            },
            get spread() {
              return rates.spread
            },
          },
        }
      : {}),
    secondUri(name = 'client') {
      if (secondPort === undefined) throw new Error('testnet: started without a second asset')
      return uriOn(secondPort, name)
    },
    setRate(rate) {
      if (!rates) throw new Error('testnet: started without a second asset, so there is no rate to set')
      rates.setRate(rate)
    },
    setSpread(spread) {
      if (!rates) throw new Error('testnet: started without a second asset, so there is no spread to set')
      rates.setSpread(spread)
    },
    close,
  }
}

/**
 * Waits until every mini-accounts account of the connector has connected, so that its WebSocket
 * server takes the connections of its BTP server (listen() goes on after its connect timeout
 * without them); closes everything and throws if one has not within 5 s.
 */
async function accepting(
  connector: { getPlugin(id: string): { isConnected(): boolean } },
  accounts: string[],
  close: () => Promise<void>,
): Promise<void> {
  const connected = () => accounts.every((account) => connector.getPlugin(account).isConnected())
  for (let waited = 0; !connected() && waited < 5000; waited += 5) {
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const idle = accounts.find((account) => !connector.getPlugin(account).isConnected())
  if (idle !== undefined) {
    await close()
    throw new Error(`testnet: the BTP server of ${idle} did not start accepting connections`)
  }
}
