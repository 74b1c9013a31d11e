import { Buffer } from 'node:buffer'
import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { CogpayError, ErrorCodes, isUnderAddress, type Asset } from '@cogpay/core'
import type { IlpPlugin } from '../plugin.js'
import { createPlugin, redactedMessage } from '../uplink-uri.js'
import { withTimeout } from '../timeout.js'
import { InDoubt } from '../in-doubt.js'

const require = createRequire(import.meta.url)
const IlpPacket = require('ilp-packet') as typeof import('ilp-packet')
const ILDCP = require('ilp-protocol-ildcp') as typeof import('ilp-protocol-ildcp')

/** What a plugin hands each incoming ILP packet to, and what answers it. */
export type DataHandler = (data: Buffer) => Promise<Buffer>

/**
 * One connection to an ILP network (a BTP plugin), shared by many payment sockets. Each socket
 * gets a {@link Channel}: a plugin of its own with a sub-address `<uplink address>.<id>`. The hub
 * routes every address under ours to us; one data handler hands each packet to the channel named
 * by the next address segment. `createConnection` takes over its plugin's single data handler, so
 * without this every concurrent socket would need its own WebSocket.
 */
export class Uplink extends EventEmitter {
  readonly plugin: IlpPlugin
  #address = ''
  #asset: Asset | undefined
  #channels = new Map<string, Channel>()
  #nextId = 0
  #ready: Promise<void> | undefined
  #closed = false
  /** ILP Prepare packets sent through this uplink (every channel's included). */
  packetsSent = 0
  /** ILP Prepare packets received through this uplink. */
  packetsReceived = 0
  /** Money this uplink sent whose outcome it never learned (see {@link InDoubt}): refunds, for a server. */
  readonly inDoubt = new InDoubt()

  readonly #connectTimeoutMs: number

  /**
   * @param uplink a BTP URI or a plugin.
   * @param options.connectTimeoutMs how long a caller of {@link connect} waits (default 5000 ms).
   *   The plugin itself keeps trying in the background; the next caller waits on the same attempt.
   */
  constructor(uplink: string | IlpPlugin, options: { connectTimeoutMs?: number } = {}) {
    super()
    this.plugin = typeof uplink === 'string' ? createPlugin(uplink) : uplink
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000
  }

  /** The uplink's ILP address (from IL-DCP). Empty before {@link connect} resolves. */
  get address(): string {
    return this.#address
  }

  /** The uplink's asset (from IL-DCP). */
  get asset(): Asset | undefined {
    return this.#asset
  }

  /** Number of open channels. */
  get channelCount(): number {
    return this.#channels.size
  }

  get connected(): boolean {
    return !this.#closed && this.#asset !== undefined && this.plugin.isConnected()
  }

  /**
   * Connects the plugin and learns address and asset over IL-DCP. Safe to call repeatedly: one
   * attempt is under way at a time, and each caller waits for it at most `connectTimeoutMs`
   * (the BTP client retries a refused connection forever), then gets `COGPAY_UPLINK_UNAVAILABLE`.
   */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError())
    if (this.#asset) return Promise.resolve()
    this.#ready ??= this.#connect().catch((cause: unknown) => {
      this.#ready = undefined
      throw new CogpayError(
        ErrorCodes.UPLINK_UNAVAILABLE,
        `uplink did not connect: ${redactedMessage(cause)}`,
        { status: 503, cause },
      )
    })
    return withTimeout(
      this.#ready,
      this.#connectTimeoutMs,
      () =>
        new CogpayError(
          ErrorCodes.UPLINK_UNAVAILABLE,
          `uplink did not connect within ${this.#connectTimeoutMs} ms; still trying`,
          { status: 503 },
        ),
    )
  }

  async #connect(): Promise<void> {
    await this.plugin.connect()
    if (this.#closed) throw closedError()
    const info = await ILDCP.fetch((data) => this.plugin.sendData(data))
    this.#address = info.clientAddress
    this.#asset = { code: info.assetCode, scale: info.assetScale }
    this.plugin.registerDataHandler((data) => this.#route(data))
  }

  /** Opens a channel: a plugin with its own sub-address under the uplink's address. */
  openChannel(): Channel {
    if (!this.connected) throw closedError()
    const id = `c${(this.#nextId++).toString(36)}`
    const channel = new Channel(this, id, `${this.#address}.${id}`)
    this.#channels.set(id, channel)
    return channel
  }

  /** @internal */
  removeChannel(id: string): void {
    this.#channels.delete(id)
  }

  async #route(data: Buffer): Promise<Buffer> {
    this.packetsReceived++
    let destination: string
    try {
      destination = IlpPacket.deserializeIlpPrepare(data).destination
    } catch {
      return this.#reject('F01', 'expected an ILP Prepare')
    }
    const rest = destination.startsWith(`${this.#address}.`) ? destination.slice(this.#address.length + 1) : ''
    const dot = rest.indexOf('.')
    const channel = this.#channels.get(dot === -1 ? rest : rest.slice(0, dot))
    const handler = channel?.dataHandler
    if (!handler) return this.#reject('F02', 'no payment socket at this address')
    return handler(data)
  }

  #reject(code: string, message: string): Buffer {
    return IlpPacket.serializeIlpReject({
      code,
      message,
      triggeredBy: this.#address,
      data: Buffer.alloc(0),
    })
  }

  /** Closes every channel and disconnects the plugin. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#channels.clear()
    try {
      this.plugin.deregisterDataHandler()
    } catch {
      // no handler was registered: the uplink never connected
    }
    await this.plugin.disconnect()
  }
}

/**
 * A plugin for one payment socket, multiplexed over an {@link Uplink}. It answers IL-DCP itself
 * (with its sub-address), so `createConnection` works on it unchanged.
 */
export class Channel implements IlpPlugin {
  dataHandler: DataHandler | undefined
  /** The address this channel's connection pays or is paid by, when known: answers from it count as signs of life. */
  peer: string | undefined
  /** When the peer itself last answered a packet (a fulfill, or a reject it triggered), epoch ms. */
  lastAnswerAt = Date.now()
  #open = true
  // Only the first request from createConnection is IL-DCP; skip the check after it.
  #configured = false

  constructor(
    readonly uplink: Uplink,
    readonly id: string,
    readonly address: string,
  ) {}

  async connect(): Promise<void> {}

  async disconnect(): Promise<void> {
    this.#open = false
    this.dataHandler = undefined
    this.uplink.removeChannel(this.id)
  }

  isConnected(): boolean {
    return this.#open && this.uplink.connected
  }

  async sendData(data: Buffer): Promise<Buffer> {
    if (!this.#configured && isIldcpRequest(data)) {
      const asset = this.uplink.asset
      if (!asset) throw closedError()
      this.#configured = true
      return ILDCP.serve({
        requestPacket: data,
        serverAddress: this.uplink.address,
        handler: async () => ({ clientAddress: this.address, assetCode: asset.code, assetScale: asset.scale }),
      })
    }
    if (!this.#open) throw new Error('channel is closed')
    this.uplink.packetsSent++
    const response = await this.uplink.inDoubt.send(data, (prepare) => this.uplink.plugin.sendData(prepare))
    if (this.peer && this.#answeredByPeer(response)) this.lastAnswerAt = Date.now()
    return response
  }

  #answeredByPeer(response: Buffer): boolean {
    if (response[0] === IlpPacket.Type.TYPE_ILP_FULFILL) return true
    if (response[0] !== IlpPacket.Type.TYPE_ILP_REJECT) return false
    try {
      const { triggeredBy } = IlpPacket.deserializeIlpReject(response)
      // The peer's own reject names an address above it but not above us (a connector's would).
      return triggeredBy !== '' && isUnderAddress(this.peer!, triggeredBy) && !isUnderAddress(this.address, triggeredBy)
    } catch {
      return false
    }
  }

  async sendMoney(): Promise<void> {}

  registerDataHandler(handler: DataHandler): void {
    this.dataHandler = handler
  }

  deregisterDataHandler(): void {
    this.dataHandler = undefined
  }
}

function isIldcpRequest(data: Buffer): boolean {
  try {
    return IlpPacket.deserializeIlpPrepare(data).destination === 'peer.config'
  } catch {
    return false
  }
}

function closedError(): CogpayError {
  return new CogpayError(ErrorCodes.UPLINK_UNAVAILABLE, 'uplink is not connected', { status: 503 })
}
