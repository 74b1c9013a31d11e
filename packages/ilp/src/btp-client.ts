import { Buffer } from 'node:buffer'
import { EventEmitter } from 'node:events'
import { randomInt } from 'node:crypto'
import { createRequire } from 'node:module'
import { Agent, WebSocket, ping } from 'undici'
import { CogpayError, ErrorCodes } from '@cogpay/core'
import type { IlpPlugin } from './plugin.js'
import { LOST_WITH_CONNECTION } from './in-doubt.js'

const require = createRequire(import.meta.url)
const Btp = require('btp-packet') as typeof import('btp-packet')
const IlpPacket = require('ilp-packet') as typeof import('ilp-packet')

type ProtocolData = import('btp-packet').ProtocolData

/** Options for {@link BtpClient}. */
export interface BtpClientOptions {
  /** The hub's WebSocket URL (`ws://host:port/path` or `wss://…`), without credentials. */
  url: string
  /** The account name sent as `auth_username` (may be empty: the hub then names it after the token). */
  account: string
  /** The secret sent as `auth_token`. Never shown in a message. */
  token: string
  /** How long a sent packet waits for its answer, and a new connection for its authentication. Default 5000 ms. */
  responseTimeoutMs?: number
  /** The first wait before reconnecting; it doubles after each failed attempt. Default 100 ms. */
  reconnectDelayMs?: number
  /** The longest wait between reconnection attempts. Default 2000 ms. */
  maxReconnectDelayMs?: number
}

/** What ends a request sent to the hub. */
type Outcome =
  | { kind: 'response'; protocolData: ProtocolData[] }
  | { kind: 'error'; code: string; name: string; data: string }
  | { kind: 'lost' }
  | { kind: 'timeout' }

interface Request {
  timer: NodeJS.Timeout
  settle(outcome: Outcome): void
}

/** A connection that stayed up this long starts its reconnection delays afresh. */
const STABLE_MS = 2000
/** A WebSocket ping this often keeps idle paths (NATs, proxies) open, as ilp-plugin-btp's did. */
const HEARTBEAT_MS = 20_000

/**
 * An ILP plugin that speaks BTP (RFC 23) to its hub over one WebSocket (undici's), with
 * btp-packet's codec: the child side of ilp-plugin-mini-accounts, as ilp-plugin-btp 1.5.0 spoke
 * it. It authenticates with a first Message (`auth`, `auth_username`, `auth_token`), carries ILP
 * packets as `ilp` protocol data, answers the hub's Messages with its data handler's result, and
 * reconnects by itself when the hub drops (100 ms doubling to 2 s).
 *
 * Unlike ilp-plugin-btp, it says when a connection is lost: every packet in flight on it is
 * answered at once with a T00 reject whose message is {@link LOST_WITH_CONNECTION} (its money is
 * in doubt: the hub may have forwarded it), and every packet sent while no connection is up is
 * answered at once with a T00 that says it was not sent (no money moved). STREAM retries both.
 */
export class BtpClient extends EventEmitter implements IlpPlugin {
  readonly #url: string
  readonly #account: string
  readonly #token: string
  readonly #responseTimeoutMs: number
  readonly #firstDelayMs: number
  readonly #maxDelayMs: number

  /** The socket being dialled, authenticated or in use; undefined between attempts. */
  #socket: WebSocket | undefined
  /** The socket is authenticated: packets may go. */
  #open = false
  #closed = false
  /** Some connection authenticated once: from then on the client always reconnects. */
  #everOpen = false
  /** Reconnecting has stopped (the hub refused the credentials before any success) until connect(). */
  #idle = true
  #openedAt = 0
  #delayMs: number
  #retryTimer: NodeJS.Timeout | undefined
  #dialTimer: NodeJS.Timeout | undefined
  #heartbeat: NodeJS.Timeout | undefined
  /** Requests sent on the current socket, by BTP request id. */
  #requests = new Map<number, Request>()
  #nextRequestId = randomInt(0x1_0000_0000)
  #waiting: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | undefined
  #dataHandler: ((data: Buffer) => Promise<Buffer>) | undefined

  constructor(options: BtpClientOptions) {
    super()
    this.#url = options.url
    this.#account = options.account
    this.#token = options.token
    this.#responseTimeoutMs = options.responseTimeoutMs ?? 5000
    this.#firstDelayMs = options.reconnectDelayMs ?? 100
    this.#maxDelayMs = options.maxReconnectDelayMs ?? 2000
    this.#delayMs = this.#firstDelayMs
  }

  /**
   * Resolves once a connection is authenticated. A refused or dropped connection is retried in the
   * background, for ever: callers bound their own wait. Rejects when the hub refuses the
   * credentials before any connection succeeded (then nothing retries until the next call), or
   * when the client is disconnected.
   */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#error('the BTP client is disconnected'))
    if (this.#open) return Promise.resolve()
    if (!this.#waiting) {
      let resolve!: () => void
      let reject!: (error: Error) => void
      const promise = new Promise<void>((yes, no) => {
        resolve = yes
        reject = no
      })
      this.#waiting = { promise, resolve, reject }
    }
    // Someone waits: a pending retry must keep the process alive for them.
    this.#retryTimer?.ref()
    if (this.#idle) {
      this.#idle = false
      if (!this.#socket && !this.#retryTimer) this.#dial()
    }
    return this.#waiting.promise
  }

  /** Closes for good: packets in flight are answered as lost, a pending connect() rejects. Never waits on the hub. */
  async disconnect(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#idle = true
    clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    const socket = this.#socket
    const wasOpen = this.#open
    this.#drop()
    this.#settleWaiting(this.#error('the BTP client was disconnected before it connected'))
    if (socket) closeQuietly(socket)
    if (wasOpen) this.emit('disconnect')
  }

  isConnected(): boolean {
    return this.#open
  }

  /**
   * Sends an ILP packet and resolves with the hub's answer. Rejects when no answer comes within
   * the response timeout, or when the hub answers with a BTP Error.
   */
  sendData(data: Buffer): Promise<Buffer> {
    const socket = this.#socket
    if (!this.#open || !socket) return Promise.resolve(notSent())
    return new Promise<Buffer>((resolve, reject) => {
      const sent = this.#request(socket, [{ protocolName: 'ilp', contentType: Btp.MIME_APPLICATION_OCTET_STREAM, data }], (outcome) => {
        switch (outcome.kind) {
          case 'response':
            // As ilp-plugin-btp: a Response without ILP data answers with nothing.
            return resolve(outcome.protocolData.find((entry) => entry.protocolName === 'ilp')?.data ?? Buffer.alloc(0))
          case 'lost':
            return resolve(lostWithConnection())
          case 'timeout':
            return reject(this.#error(`no answer from the hub within ${this.#responseTimeoutMs} ms`))
          case 'error':
            return reject(this.#error(`the hub answered with BTP error ${outcome.code} ${outcome.name}: ${this.#scrub(outcome.data)}`))
        }
      })
      if (!sent) resolve(notSent())
    })
  }

  /** Settlement is not part of this client (mini-accounts settles nothing): resolves at once, as ilp-plugin-btp's did. */
  async sendMoney(_amount: string): Promise<void> {}

  registerDataHandler(handler: (data: Buffer) => Promise<Buffer>): void {
    if (this.#dataHandler) throw this.#error('a data handler is already registered')
    this.#dataHandler = handler
  }

  deregisterDataHandler(): void {
    this.#dataHandler = undefined
  }

  #dial(): void {
    this.#retryTimer = undefined
    let socket: WebSocket
    try {
      socket = new WebSocket(this.#url, { dispatcher: dispatcher() })
    } catch {
      this.#scheduleRetry()
      return
    }
    socket.binaryType = 'arraybuffer'
    this.#socket = socket
    // The handshake and the authentication together get one response timeout; RFC 23: a client
    // whose auth got no answer closes the connection.
    this.#dialTimer = setTimeout(() => closeQuietly(socket), this.#responseTimeoutMs)
    this.#dialTimer.unref()
    socket.onopen = () => this.#authenticate(socket)
    socket.onmessage = (event) => this.#receive(socket, Buffer.from(event.data as ArrayBuffer))
    socket.onclose = () => this.#onClose(socket)
    // A close event follows every error: that is where the socket is given up.
    socket.onerror = () => {}
  }

  #authenticate(socket: WebSocket): void {
    // As ilp-plugin-btp sends it: `auth` first (empty), then the name and the token as text.
    const auth: ProtocolData[] = [
      { protocolName: 'auth', contentType: Btp.MIME_APPLICATION_OCTET_STREAM, data: Buffer.alloc(0) },
      { protocolName: 'auth_username', contentType: Btp.MIME_TEXT_PLAIN_UTF8, data: Buffer.from(this.#account, 'utf8') },
      { protocolName: 'auth_token', contentType: Btp.MIME_TEXT_PLAIN_UTF8, data: Buffer.from(this.#token, 'utf8') },
    ]
    this.#request(socket, auth, (outcome) => {
      if (socket !== this.#socket) return
      if (outcome.kind === 'response') return this.#onAuthenticated(socket)
      if (outcome.kind === 'error') {
        const refusal = this.#error(`the hub refused the credentials of account ${JSON.stringify(this.#account)}: ${outcome.code} ${outcome.name}: ${this.#scrub(outcome.data)}`)
        // Before any success, wrong credentials are not retried: connect() says so at once.
        if (!this.#everOpen) this.#idle = true
        this.#settleWaiting(refusal)
      }
      if (outcome.kind !== 'lost') closeQuietly(socket)
    })
  }

  #onAuthenticated(socket: WebSocket): void {
    clearTimeout(this.#dialTimer)
    this.#open = true
    this.#everOpen = true
    this.#openedAt = Date.now()
    this.#heartbeat = setInterval(() => ping(socket), HEARTBEAT_MS)
    this.#heartbeat.unref()
    this.#settleWaiting()
    this.emit('connect')
  }

  #onClose(socket: WebSocket): void {
    if (socket !== this.#socket) return
    const wasOpen = this.#open
    if (wasOpen && Date.now() - this.#openedAt >= STABLE_MS) this.#delayMs = this.#firstDelayMs
    this.#drop()
    if (wasOpen) this.emit('disconnect')
    if (!this.#closed && !this.#idle) this.#scheduleRetry()
  }

  /** Forgets the current socket; every request in flight on it is answered as lost. */
  #drop(): void {
    this.#socket = undefined
    this.#open = false
    clearTimeout(this.#dialTimer)
    clearInterval(this.#heartbeat)
    const requests = [...this.#requests.values()]
    this.#requests.clear()
    for (const request of requests) {
      clearTimeout(request.timer)
      request.settle({ kind: 'lost' })
    }
  }

  #scheduleRetry(): void {
    const delay = this.#delayMs
    this.#delayMs = Math.min(this.#delayMs * 2, this.#maxDelayMs)
    this.#retryTimer = setTimeout(() => this.#dial(), delay)
    // Reconnecting in the background alone does not keep the process alive; a waiting connect() does.
    if (!this.#waiting) this.#retryTimer.unref()
  }

  /** Sends a Message on `socket`; `settle` hears how it ended. False when it could not be sent. */
  #request(socket: WebSocket, protocolData: ProtocolData[], settle: (outcome: Outcome) => void): boolean {
    let requestId = this.#nextRequestId
    while (this.#requests.has(requestId)) requestId = (requestId + 1) >>> 0
    this.#nextRequestId = (requestId + 1) >>> 0
    try {
      socket.send(Btp.serialize({ type: Btp.TYPE_MESSAGE, requestId, data: { protocolData } }))
    } catch {
      return false
    }
    const timer = setTimeout(() => {
      if (this.#requests.get(requestId) !== request) return
      this.#requests.delete(requestId)
      settle({ kind: 'timeout' })
    }, this.#responseTimeoutMs)
    const request: Request = { timer, settle }
    this.#requests.set(requestId, request)
    return true
  }

  #receive(socket: WebSocket, bytes: Buffer): void {
    if (socket !== this.#socket) return
    let packet: ReturnType<typeof Btp.deserialize>
    try {
      packet = Btp.deserialize(bytes)
    } catch {
      // RFC 23: an unreadable packet gets no answer.
      return
    }
    switch (packet.type) {
      case Btp.TYPE_RESPONSE:
      case Btp.TYPE_ERROR: {
        const request = this.#requests.get(packet.requestId)
        // RFC 23: an answer to nothing we asked gets no answer.
        if (!request) return
        this.#requests.delete(packet.requestId)
        clearTimeout(request.timer)
        if (packet.type === Btp.TYPE_RESPONSE) {
          request.settle({ kind: 'response', protocolData: (packet.data as { protocolData: ProtocolData[] }).protocolData })
        } else {
          const { code, name, data } = packet.data as { code: string; name: string; data: string }
          request.settle({ kind: 'error', code, name, data })
        }
        return
      }
      case Btp.TYPE_MESSAGE:
        if (this.#open) void this.#answer(socket, packet.requestId, (packet.data as { protocolData: ProtocolData[] }).protocolData)
        return
      case Btp.TYPE_TRANSFER:
        if (this.#open) this.#reply(socket, btpError(packet.requestId, 'this client takes no settlement (BTP Transfer)'))
        return
      default:
      // Not a request this version of BTP defines: no answer.
    }
  }

  /** Answers the hub's Message with the data handler's answer to its ILP packet, as ilp-plugin-btp did. */
  async #answer(socket: WebSocket, requestId: number, protocolData: ProtocolData[]): Promise<void> {
    const ilp = protocolData.find((entry) => entry.protocolName === 'ilp')
    let reply: Buffer
    if (!ilp) {
      reply = Btp.serializeResponse(requestId, [])
    } else {
      try {
        const handler = this.#dataHandler
        if (!handler) throw new Error('no data handler registered')
        const response = await handler(ilp.data)
        if (!Buffer.isBuffer(response)) throw new Error('the data handler answered with no packet')
        reply = Btp.serializeResponse(requestId, [{ protocolName: 'ilp', contentType: Btp.MIME_APPLICATION_OCTET_STREAM, data: response }])
      } catch (err) {
        reply = btpError(requestId, this.#scrub(String((err as Error | undefined)?.message ?? err)))
      }
    }
    // An answer for a connection that has gone is nobody's.
    if (socket === this.#socket) this.#reply(socket, reply)
  }

  #reply(socket: WebSocket, bytes: Buffer): void {
    try {
      socket.send(bytes)
    } catch {
      // the socket is closing: its close event follows
    }
  }

  #settleWaiting(error?: Error): void {
    const waiting = this.#waiting
    this.#waiting = undefined
    if (!waiting) return
    if (error) waiting.reject(error)
    else waiting.resolve()
  }

  /** `text` without the token (the hub's refusal may quote it: mini-accounts' does). */
  #scrub(text: string): string {
    const short = text.length > 500 ? `${text.slice(0, 500)}…` : text
    const scrubbed = this.#token ? short.split(this.#token).join('***') : short
    return scrubbed.replace(/token=\S+/g, 'token=***')
  }

  #error(message: string): CogpayError {
    return new CogpayError(ErrorCodes.UPLINK_UNAVAILABLE, `BTP uplink ${this.#url}: ${message}`, { status: 503 })
  }
}

let agent: Agent | undefined
/** Uplink sockets go straight to the hub, as ilp-plugin-btp's did, whatever global dispatcher (proxy, mock) the app set. */
function dispatcher(): Agent {
  agent ??= new Agent()
  return agent
}

function closeQuietly(socket: WebSocket): void {
  try {
    socket.close()
  } catch {
    // already closing
  }
}

function btpError(requestId: number, message: string): Buffer {
  return Btp.serializeError(
    { code: 'F00', name: 'NotAcceptedError', triggeredAt: new Date().toISOString(), data: JSON.stringify({ message }) },
    requestId,
    [],
  )
}

/** What the text of a packet lost with its connection says: in-doubt accounting matches it exactly. */
function lostWithConnection(): Buffer {
  return IlpPacket.serializeIlpReject({ code: 'T00', message: LOST_WITH_CONNECTION, triggeredBy: '', data: Buffer.alloc(0) })
}

/** A packet that never left: no connection to the hub was up. No money moved. */
function notSent(): Buffer {
  return IlpPacket.serializeIlpReject({
    code: 'T00',
    message: 'the uplink is not connected: this packet was not sent',
    triggeredBy: '',
    data: Buffer.alloc(0),
  })
}
