import { Buffer } from 'node:buffer'
import { createHmac, randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { Connection, RESTART, checkConnectionOptions, streamReply, type ConnectionOptions, type StreamAsset } from './connection.js'
import { CloseCodes } from './close-codes.js'
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

/** What the listener says, in a ConnectionClose, to a packet of a connection it no longer has. */
export const NO_SUCH_CONNECTION = 'no such connection: it ended at this side; open a new one'

/**
 * The server role of STREAM: hands out credentials (an address under its own, and a secret
 * derived from the token in it, so nothing is stored per credential) and answers every Prepare
 * addressed under its address. A connection lives from the first packet that decrypts under its
 * token's secret until it closes, or until a client opens a new one under the same token (its
 * first packet again: a server that restarted); a later packet with the token opens a new one
 * if it names its sender, and is answered with a ConnectionClose if it does not (the tail of a
 * connection that ended here).
 *
 * Garbage never creates state: a Prepare that is not one, names no token, or does not decrypt is
 * rejected (F01, F02, F06) before any connection exists.
 */
export class StreamListener extends EventEmitter<ListenerEvents> {
  readonly address: string
  readonly #options: ListenerOptions
  readonly #secret: Uint8Array
  readonly #connections = new Map<string, Connection>()
  #closed = false

  /** Throws a RangeError for a connection option no connection could run with. */
  constructor(options: ListenerOptions) {
    super()
    checkConnectionOptions(options)
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
    return this.#handle(data)[0]
  }

  /**
   * Like {@link handleData}, and a raise the connection's listeners make in answer to the money
   * rides in the reply (see `Connection.handleDataLater`). Never rejects.
   */
  handleDataLater(data: Buffer): Promise<Buffer> {
    const [answer, connection] = this.#handle(data)
    return connection ? connection.answerLater(answer) : Promise.resolve(answer)
  }

  /** The answer to a Prepare, and the connection that gave it, if one did. */
  #handle(data: Buffer): [Buffer, Connection | undefined] {
    const prepare = deserializePrepare(data)
    if (!prepare) return [serializeReject('F01', this.address, 'expected an ILP Prepare'), undefined]
    const rest = prepare.destination.startsWith(`${this.address}.`) ? prepare.destination.slice(this.address.length + 1) : ''
    const token = rest.split('.', 1)[0] ?? ''
    if (!token || this.#closed) return [serializeReject('F02', this.address, 'no connection at this address'), undefined]
    const open = this.#connections.get(token)
    if (open) {
      const answer = open.answer(prepare)
      if (answer !== RESTART) return [answer, open]
      // The client started again under the same credentials: its old connection is gone with it.
      // Dropped without a word: the new one may well have the old one's address.
      open.drop('the peer opened a new connection with these credentials')
    }
    if (this.#options.accept && !this.#options.accept(token)) return [serializeReject('F02', this.address, 'no connection at this address'), undefined]
    const sharedSecret = this.#secretFor(token)
    // Decrypt before anything is kept: garbage and strangers leave no state behind.
    const { encryptionKey } = deriveKeys(sharedSecret)
    const decoded = decryptPacket(encryptionKey, prepare.data)
    if (decoded.type !== 'valid') return [serializeReject('F06', this.address, ''), undefined]
    // A client names itself (ConnectionNewAddress) in every packet until it has been answered, so
    // a packet past the first that does not is the tail of a connection that ended here (closed,
    // idle, or its close lost): this side could never answer it with a packet of its own. Say the
    // connection is closed, keep nothing, credit nothing; its client opens a new one at once
    // rather than waiting out its timeouts on a peer that cannot reach it.
    const request = decoded.packet
    if (request.sequence > 1n && !request.frames.some((frame) => frame.type === 'ConnectionNewAddress')) {
      const close = { type: 'ConnectionClose', errorCode: CloseCodes.ProtocolViolation, errorMessage: NO_SUCH_CONNECTION } as const
      return [streamReply(encryptionKey, prepare, request.sequence, [close], this.address), undefined]
    }
    const connection = new Connection({
      ...this.#options,
      role: 'server',
      sharedSecret,
      sourceAccount: `${this.address}.${token}`,
      asset: this.#options.asset,
      plugin: this.#options.plugin,
    })
    this.#connections.set(token, connection)
    connection.once('close', () => {
      if (this.#connections.get(token) === connection) this.#connections.delete(token)
    })
    this.emit('connection', connection, token)
    const answer = connection.answer(prepare)
    return answer === RESTART ? [serializeReject('F99', this.address, ''), undefined] : [answer, connection]
  }

  /** Closes every connection now (each peer is told); no Prepare opens one afterwards (F02). */
  close(): void {
    this.#closed = true
    for (const connection of [...this.#connections.values()]) connection.destroy()
    this.#connections.clear()
  }
}
