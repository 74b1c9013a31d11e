import { Buffer } from 'node:buffer'
import { createHmac, randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { Connection, type ConnectionOptions, type StreamAsset } from './connection.js'
import { decryptPacket, deriveKeys } from './crypto.js'
import { deserializePrepare, serializeReject, type DataPlugin } from './ilp.js'

/** Options of a {@link StreamListener}. */
export interface ListenerOptions extends Omit<ConnectionOptions, 'sharedSecret' | 'sourceAccount' | 'asset' | 'plugin'> {
  /** Sends the Prepares of every accepted connection. */
  readonly plugin: DataPlugin
  /** The listener's own ILP address: each connection gets `<address>.<token>` under it. */
  readonly address: string
  readonly asset: StreamAsset
  /** Derives each connection's secret from its token. Default: 32 random bytes, so credentials last as long as the listener. */
  readonly secret?: Uint8Array
  /**
   * Decides whether a new connection is accepted (its token, as handed out by
   * {@link StreamListener.generateCredentials}). Default: every token whose packet decrypts.
   */
  readonly accept?: (token: string) => boolean
}

/** Credentials for one connection: the address a client dials, and the shared secret. */
export interface StreamCredentials {
  readonly destinationAccount: string
  readonly sharedSecret: Buffer
  /** The last segment of the address: names the connection to its listener. */
  readonly token: string
}

/** Events of a {@link StreamListener}. */
export interface ListenerEvents {
  /** A client opened a connection with credentials of this listener. */
  connection: [connection: Connection, token: string]
}

const TOKEN_BYTES = 18

/**
 * The server role of STREAM: hands out credentials (an address under its own, and a secret
 * derived from the token in it, so nothing is stored per credential) and answers every Prepare
 * addressed under its address. A connection lives from the first packet that decrypts under its
 * token's secret until it closes; a later packet with the same token opens a new one.
 *
 * Garbage never creates state: a Prepare that is not one, names no token, or does not decrypt is
 * rejected (F01, F02, F06) before any connection exists.
 */
export class StreamListener extends EventEmitter<ListenerEvents> {
  readonly address: string
  readonly #options: ListenerOptions
  readonly #secret: Uint8Array
  readonly #connections = new Map<string, Connection>()

  constructor(options: ListenerOptions) {
    super()
    this.#options = options
    this.address = options.address
    this.#secret = options.secret ?? randomBytes(32)
  }

  /** Connections open now. */
  get connectionCount(): number {
    return this.#connections.size
  }

  /** Fresh credentials: a new token under this listener's address, and its secret. */
  generateCredentials(): StreamCredentials {
    const token = randomBytes(TOKEN_BYTES).toString('base64url')
    return { destinationAccount: `${this.address}.${token}`, sharedSecret: this.#secretFor(token), token }
  }

  #secretFor(token: string): Buffer {
    return createHmac('sha256', this.#secret).update(token, 'ascii').digest()
  }

  /** The open connection of a token, if any. */
  connectionFor(token: string): Connection | undefined {
    return this.#connections.get(token)
  }

  /** Answers one serialized ILP Prepare (register this as the plugin's data handler). Never throws. */
  handleData(data: Buffer): Buffer {
    const prepare = deserializePrepare(data)
    if (!prepare) return serializeReject('F01', this.address, 'expected an ILP Prepare')
    const rest = prepare.destination.startsWith(`${this.address}.`) ? prepare.destination.slice(this.address.length + 1) : ''
    const token = rest.split('.', 1)[0] ?? ''
    if (!token) return serializeReject('F02', this.address, 'no connection at this address')
    let connection = this.#connections.get(token)
    if (!connection) {
      if (this.#options.accept && !this.#options.accept(token)) return serializeReject('F02', this.address, 'no connection at this address')
      const sharedSecret = this.#secretFor(token)
      // Decrypt before anything is kept: garbage and strangers leave no state behind.
      if (decryptPacket(deriveKeys(sharedSecret).encryptionKey, prepare.data).type !== 'valid') {
        return serializeReject('F06', this.address, '')
      }
      connection = new Connection({
        ...this.#options,
        role: 'server',
        sharedSecret,
        sourceAccount: `${this.address}.${token}`,
        asset: this.#options.asset,
        plugin: this.#options.plugin,
      })
      const opened = connection
      this.#connections.set(token, opened)
      opened.once('close', () => {
        if (this.#connections.get(token) === opened) this.#connections.delete(token)
      })
      this.emit('connection', opened, token)
    }
    return connection.handlePrepare(prepare)
  }

  /** Closes every connection now (each peer is told). */
  close(): void {
    for (const connection of [...this.#connections.values()]) connection.destroy()
    this.#connections.clear()
  }
}
