import { Buffer } from 'node:buffer'
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { CloseCodes } from './close-codes.js'
import { decryptPacket, deriveKeys, encryptPacket, conditionFor, fulfillmentFor, ENCRYPTION_OVERHEAD, type StreamKeys } from './crypto.js'
import {
  ONE,
  compareRates,
  convertFloor,
  exchangeRate,
  formatRate,
  lessSlippage,
  sourceFor,
  sourceWithin,
  type ExchangeRate,
} from './exchange-rate.js'
import { frameSize, type Frame } from './frames.js'
import {
  deserializePrepare,
  deserializeReply,
  maxPacketAmountFromF08,
  serializeFulfill,
  serializePrepare,
  serializeReject,
  type DataPlugin,
  type IlpPrepare,
  type IlpReply,
} from './ilp.js'
import { MoneyStream, type CloseInfo, type DataSegment, type StreamOwner } from './money-stream.js'
import { MAX_U64 } from './oer.js'
import { IlpPacketTypes, type StreamPacket } from './packet.js'

/** An asset: its code and scale (RFC 29's ConnectionAssetDetails). */
export interface StreamAsset {
  readonly code: string
  readonly scale: number
}

/** Options every connection takes, in either role. */
export interface ConnectionOptions {
  /** Sends this side's Prepares. Incoming Prepares are handed to the connection by its owner (see {@link Connection.handlePrepare}). */
  readonly plugin: DataPlugin
  /** The connection's 32-byte shared secret. */
  readonly sharedSecret: Uint8Array
  /** This side's ILP address (told to the peer in ConnectionNewAddress by a client). */
  readonly sourceAccount: string
  /** This side's asset. */
  readonly asset: StreamAsset
  /** Close the connection after this long with no packet answered either way. Default 60,000 ms; 0 never. */
  readonly idleTimeoutMs?: number
  /** Each Prepare expires this long after it is sent; an unanswered one is then in doubt. Default 30,000 ms. */
  readonly packetTimeoutMs?: number
  /** Prepares in flight at once on this connection. Default 16. */
  readonly maxPacketsInFlight?: number
  /** Streams the peer may have open at once. Default 100. Ids come back as streams close, whichever side closes first. */
  readonly maxRemoteStreams?: number
  /**
   * Bytes a stream accepts beyond what it has handed on (and the most it holds out of order).
   * Default 16,384. A smaller window still takes bytes up to offset 16,384, which every sender
   * assumes before it hears the stream's max (RFC 29): a stream's first packet is never refused.
   */
  readonly streamWindow?: number
  /**
   * The least exchange rate money may be sent at (destination units per source unit, each in its
   * asset's smallest unit). Default: the rate learned for the connection, less `slippage`. A
   * packet that would arrive below it is turned away by the receiver, and the connection stops
   * sending money with a `moneyError`.
   */
  readonly minExchangeRate?: string | ExchangeRate
  /** Used when no `minExchangeRate` is given: how far below the learned rate money may still go. Default `'0.01'`. */
  readonly slippage?: string
  /** The longest wait before sending again after a temporary reject (T-family). Default 1,000 ms. */
  readonly maxRetryDelayMs?: number
  /**
   * Packets a connection carries each way (RFC 29 §5.1.3: both sides encrypt under one key, and
   * AES-GCM is safe for so many). The connection closes (InternalError) before it would send a
   * Prepare with this sequence number, its ConnectionClose the last it sends, and when the peer
   * sends one. An integer from 3 to 2^31; default 2^31.
   */
  readonly packetLimit?: number
}

/** A client connection: it knows the peer's address and opens the connection. */
export interface ClientConnectionOptions extends ConnectionOptions {
  readonly destinationAccount: string
}

/** Events of a {@link Connection}. None is `'error'`: a failure is a `'close'` with its code and message. */
export interface ConnectionEvents {
  /** The peer opened a stream. */
  stream: [stream: MoneyStream]
  /** The connection closed, either side first (or idle). Every stream is closed. */
  close: [info: CloseInfo]
  /** The peer wants to open more streams than we allow (ConnectionStreamIdBlocked). */
  remoteStreamIdsBlocked: [maxStreamId: bigint]
  /** The peer wants to send more data than the connection allows (ConnectionDataBlocked). */
  remoteDataBlocked: [maxOffset: bigint]
  /**
   * DataBlocked, our side: bytes written on the open streams (`writeOffset`, in all) wait on the
   * peer's ConnectionMaxData (`remoteMaxOffset`). Once per limit; the peer is told as well.
   */
  dataBlocked: [state: { readonly remoteMaxOffset: number; readonly writeOffset: number }]
}

/** The money, data and control one Prepare carries, remembered until it is answered. */
interface Outgoing {
  readonly frames: Frame[]
  readonly amount: bigint
  readonly minimumDestination: bigint
  readonly shares: { stream: MoneyStream; amount: bigint; destination: bigint }[]
  readonly data: { stream: MoneyStream; segment: DataSegment }[]
  readonly dirty: MoneyStream[]
  readonly control: Frame[]
  readonly unfulfillable: boolean
  /** It names this side to the peer (a client's first packets). */
  readonly announce?: boolean
  /** What the connection knew of the rate when it was sent (`#rateEpoch`): its answer may only teach that. */
  readonly rateEpoch?: number
}

/** The largest STREAM packet (the ILP data limit): data frames fill up to this. */
const MAX_PACKET_BYTES = 32_767
/** The bytes of a packet that frames may fill: the limit less encryption (28) and the header (at most 23). */
const FRAMES_ROOM = MAX_PACKET_BYTES - 64
/** Room kept for the non-data frames of a packet. */
const CONTROL_ROOM = 2_048
/** The most one stream's non-data frames take in a packet (StreamMaxMoney, StreamMaxData, StreamMoney or StreamMoneyBlocked). */
const STREAM_FRAMES_ROOM = 128
/** A StreamData frame's bytes besides its data (type, length, stream id, offset, data length). */
const DATA_FRAME_OVERHEAD = 32
/** Stream ids above this are refused (closed) before they become a `number`. */
const MAX_STREAM_ID = BigInt(Number.MAX_SAFE_INTEGER)
/** The max offset a sender assumes of a stream until the receiver says (RFC 29 leaves it to implementations; both use 16,384). */
const ASSUMED_STREAM_DATA = 16_384
/** The ConnectionMaxData a sender assumes until the receiver says (ilp-protocol-stream's: two ILP packets of data). */
const ASSUMED_MAX_DATA = 65_534
/** The most packets a connection carries each way (RFC 29 §5.1.3). */
const MAX_PACKETS = 2 ** 31
/** Close messages we send are cut to this many characters, so a close always fits a packet. */
const MAX_CLOSE_MESSAGE = 1_000
const FIRST_RETRY_DELAY_MS = 50
/** Rejects in a row that moved nothing before the connection waits as for a temporary one. */
const FRUITLESS_LIMIT = 8
const PROBE_AMOUNTS = [1_000n, 1_000_000n, 1_000_000_000n, 1_000_000_000_000n]
const PROBE_ATTEMPTS = 10
/** Fulfilled shares in a row with nothing arriving after which a stream's money stops. */
const FRUITLESS_SHARES = 3
/** Units that must arrive in a fulfilled packet for the rate it shows to be what money is sized by (1 %). */
const RATE_SAMPLE = 100n
/** Units that must arrive from a test packet for the rate it shows to be taken at once (0.1 % rounding). */
const PROBE_PRECISION = 1_000n
/**
 * The longest a stream close waits for a packet to ride in: long enough that under a steady flow
 * of requests a close rides in the next one's packet (no packet of its own), short enough that a
 * stream id comes back to the peer at once for a person's eye.
 */
const LAZY_MS = 20

/**
 * A STREAM connection (RFC 29), either role, over one plugin. Money and data flow both ways on
 * any number of streams; several Prepares are in flight at once (`maxPacketsInFlight`), each
 * carrying what every stream has ready. Wire-compatible with ilp-protocol-stream.
 *
 * - Money out never passes a stream's `sendMax`, in this side's units, whatever the peer or a
 *   connector claims: what is in flight and what is in doubt count against it.
 * - Across assets the sender learns the rate with unfulfillable test packets before the first
 *   money, and every money Prepare names the least that must arrive (the minimum rate): a
 *   receiver turns away less, and a rate that falls below the minimum stops the money.
 * - A stream id comes back as soon as the stream closes, whichever side closes it first: a
 *   connection can run any number of streams in its life, in bounded memory.
 * - Whatever a peer sends, answering it never throws and no packet passes ILP's 32,767 bytes:
 *   an expired Prepare is turned away (R00), money is credited only with the Fulfill that takes
 *   it, and a listener that throws while a packet is handled cannot change its answer (its
 *   error is rethrown on its own, as an uncaught exception).
 */
export class Connection extends EventEmitter<ConnectionEvents> implements StreamOwner {
  readonly role: 'client' | 'server'
  readonly sourceAccount: string
  readonly asset: StreamAsset
  readonly streamWindow: number
  readonly #plugin: DataPlugin
  readonly #keys: StreamKeys
  readonly #idleTimeoutMs: number
  readonly #packetTimeoutMs: number
  readonly #window: number
  readonly #maxRemoteStreams: number
  readonly #maxRetryDelayMs: number
  /** The sequence of the last Prepare this side may send (its ConnectionClose), and the highest it accepts. */
  readonly #lastSequence: bigint
  readonly #configuredMinRate: ExchangeRate | undefined
  readonly #slippage: ExchangeRate
  #destination: string | undefined
  #remoteAsset: StreamAsset | undefined
  #rate: ExchangeRate | undefined
  #minRate: ExchangeRate | undefined
  #probing = false
  /** Counts the times the rate was forgotten (`#failMoney`): answers to Prepares sent before teach nothing. */
  #rateEpoch = 0
  #maxPacketAmount = MAX_U64
  /** The most a packet carries while the path is short of liquidity (T04): halved on each, doubled on each Fulfill. */
  #congestionMax = MAX_U64
  // Streams
  readonly #streams = new Map<number, MoneyStream>()
  #nextStreamId: number
  #remoteMaxStreamId = 20
  #remoteMaxStreamIdKnown = false
  /**
   * Remote ids below the highest the peer opened that it has not opened yet: its streams' first
   * packets may arrive out of order (several in flight). Every other id up to the highest that is
   * not open is closed. At most `maxRemoteStreams` (the peer can skip no more ids than it may open).
   */
  readonly #remoteSkipped = new Set<number>()
  #remoteStreamsClosed = 0
  /** The stream id limit at which the peer last said it is blocked (the event fires once per limit). */
  #remoteBlockedAt = -1
  // Sending
  readonly #wanting = new Set<MoneyStream>()
  #control: Frame[] = []
  /** Frames that need not go at once (stream closes): they ride in the next packet, or go after LAZY_MS. */
  #lazy: Frame[] = []
  #lazyTimer: NodeJS.Timeout | undefined
  #lazyDue = false
  /** A ConnectionMaxStreamId is due (one frame however many streams closed), and a ConnectionStreamIdBlocked. */
  #limitDue = false
  #idsBlockedDue = false
  /** Calls of `wake` so far: how `answer` sees that a `'money'` listener changed a stream. */
  #wakes = 0
  #highestRemoteId = 0
  #peerKnowsUs: boolean
  /** Packets in flight that name this side. */
  #announcing = 0
  #inFlight = 0
  #sequence = 1n
  #scheduled = false
  #retryAt = 0
  #retryDelay = 0
  #retryTimer: NodeJS.Timeout | undefined
  #fruitless = 0
  #remoteMaxData = ASSUMED_MAX_DATA
  /** A ConnectionDataBlocked went for this `#remoteMaxData` (once per limit). */
  #dataBlockedAt = -1
  #openSentBytes = 0
  /** Bytes the open streams have handed on (ConnectionMaxData counts them). */
  #readOpen = 0
  /** The highest ConnectionMaxData this side advertised, and never less than a sender assumes: it never falls (RFC 29 §4.4.4). */
  #maxData = ASSUMED_MAX_DATA
  /** Why the last Prepare that got no answer got none (the plugin's error). */
  #lossReason: string | undefined
  /** Prepares from the peer that decrypted. */
  #prepares = 0
  /** The execution condition of the first of them: the same again is that packet replayed, not a new connection. */
  #openingCondition: Buffer | undefined
  /** Ends the rate probe's wait between attempts (on close). */
  #probeWake: (() => void) | undefined
  /** Prepares in a row that could not be built (see `#unsent`). */
  #unsentInRow = 0
  // Totals
  #totalSent = 0n
  #totalReceived = 0n
  #inDoubt = 0n
  // Lifecycle
  #lastActive = Date.now()
  #idleTimer: NodeJS.Timeout | undefined
  #closed: CloseInfo | undefined
  #connected = false
  /** The answer last written to a Prepare that brought money, until answerLater takes it. */
  #lastAnswer: { rebuild: () => Buffer; wakes: number; streams: MoneyStream[] } | undefined
  /** Answers held by answerLater; while any is, packets wait (#heldSchedule: one is due). */
  #holds = 0
  #heldSchedule = false
  #whenConnected: Promise<void>
  #onConnected!: () => void
  #onConnectFailed!: (error: Error) => void
  readonly whenClosed: Promise<CloseInfo>
  #onClosed!: (info: CloseInfo) => void

  /** @internal Use {@link connect} or a {@link StreamListener}. */
  constructor(options: ConnectionOptions & { role: 'client' | 'server'; destinationAccount?: string }) {
    super()
    this.role = options.role
    this.#plugin = options.plugin
    this.#keys = deriveKeys(options.sharedSecret)
    this.sourceAccount = options.sourceAccount
    this.asset = options.asset
    this.#destination = options.destinationAccount
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 60_000
    this.#packetTimeoutMs = options.packetTimeoutMs ?? 30_000
    this.#window = positive(options.maxPacketsInFlight ?? 16, 'maxPacketsInFlight')
    this.#maxRemoteStreams = positive(options.maxRemoteStreams ?? 100, 'maxRemoteStreams')
    this.streamWindow = positive(options.streamWindow ?? 16_384, 'streamWindow')
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 1000
    this.#lastSequence = BigInt(packetLimit(options.packetLimit ?? MAX_PACKETS)) - 1n
    this.#configuredMinRate = options.minExchangeRate === undefined ? undefined : exchangeRate(options.minExchangeRate)
    this.#slippage = exchangeRate(options.slippage ?? '0.01')
    if (this.#slippage.numerator >= this.#slippage.denominator) throw new RangeError('slippage must be below 1')
    this.#nextStreamId = this.role === 'client' ? 1 : 2
    // A server never names itself: the client dialled its address.
    this.#peerKnowsUs = this.role === 'server'
    this.#whenConnected = new Promise((resolve, reject) => {
      this.#onConnected = resolve
      this.#onConnectFailed = reject
    })
    this.#whenConnected.catch(() => {})
    this.whenClosed = new Promise((resolve) => (this.#onClosed = resolve))
    this.#armIdleTimer()
  }

  // --- what it is ----------------------------------------------------------------------------

  /** The peer's address: given to a client, learned by a server from the peer's first packet. */
  get destinationAccount(): string | undefined {
    return this.#destination
  }

  /** The peer's asset, once it said (ConnectionAssetDetails). */
  get remoteAsset(): StreamAsset | undefined {
    return this.#remoteAsset
  }

  /** The rate money is sent at, once known (1 for the same asset, else learned). */
  get exchangeRate(): ExchangeRate | undefined {
    return this.#rate
  }

  /** The least rate money is sent at, once known. */
  get minExchangeRate(): ExchangeRate | undefined {
    return this.#minRate
  }

  /** The most one Prepare carries, as learned from F08 rejects (2^64-1 until one). */
  get maxPacketAmount(): bigint {
    return this.#maxPacketAmount
  }

  /** Money sent and fulfilled on every stream, in this side's units. */
  get totalSent(): bigint {
    return this.#totalSent
  }

  /** Money received on every stream, in this side's units. */
  get totalReceived(): bigint {
    return this.#totalReceived
  }

  /** Money sent in Prepares never answered before they expired: it may have arrived. */
  get inDoubt(): bigint {
    return this.#inDoubt
  }

  /** Prepares in flight now. */
  get packetsInFlight(): number {
    return this.#inFlight
  }

  /** True until the connection closes. */
  get isOpen(): boolean {
    return this.#closed === undefined
  }

  /** How it closed, once it has. */
  get closeInfo(): CloseInfo | undefined {
    return this.#closed
  }

  /** Open streams. */
  get streamCount(): number {
    return this.#streams.size
  }

  /** True while the peer allows another stream of ours. */
  get canCreateStream(): boolean {
    return !this.#closed && this.#nextStreamId <= this.#remoteMaxStreamId
  }

  // --- streams -------------------------------------------------------------------------------

  /**
   * Opens a stream. Its frames go out in the next packet (a client's first packet carries them
   * with its address, so a stream costs no round trip of its own). Throws a `StreamIdsExhaustedError`
   * when the peer allows no more open streams (it raises the limit as streams close).
   */
  createStream(): MoneyStream {
    if (this.#closed) throw new ConnectionClosedError(this.#closed)
    if (this.#nextStreamId > this.#remoteMaxStreamId) {
      // One notice goes however often this is called.
      this.#idsBlockedDue = true
      this.#schedule()
      throw new StreamIdsExhaustedError(this.#remoteMaxStreamId)
    }
    const stream = new MoneyStream(this.#nextStreamId, this)
    this.#nextStreamId += 2
    this.#streams.set(stream.id, stream)
    stream.dirty = true
    this.wake(stream)
    return stream
  }

  /** @internal A stream has something to send. */
  wake(stream: MoneyStream): void {
    this.#wakes++
    // A closed stream has nothing to send (its close is queued apart).
    if (this.#closed || !stream.isOpen) return
    this.#wanting.add(stream)
    this.#schedule()
  }

  /** @internal A stream closed: its id is free again, and the peer is told unless it closed it. */
  release(stream: MoneyStream): void {
    if (!this.#streams.delete(stream.id)) return
    this.#wanting.delete(stream)
    this.#openSentBytes -= stream.sentOffset
    this.#readOpen -= stream.readOffset
    const info = stream.closeInfo
    // Closed now: an id up to the highest the peer opened, neither open nor skipped.
    if (this.#isRemoteId(stream.id)) this.#remoteStreamsClosed++
    // With no address for the peer (a send-only client), nothing is queued: it hears in replies
    // (a StreamClose when it names the stream again, the stream id limit in every reply).
    if (this.#closed || !info || this.#destination === undefined) return
    // The peer hears of the close in the next packet that goes anyway, or within LAZY_MS.
    if (!info.byPeer) {
      this.#queueLazy({ type: 'StreamClose', streamId: BigInt(stream.id), errorCode: info.code, errorMessage: brief(info.message) })
    }
    // Every close of a stream the peer opened raises what it may open, whichever side closed.
    // Every reply carries the limit; a packet of its own goes only when the peer is near it.
    if (this.#isRemoteId(stream.id) && this.#maxRemoteStreamId - this.#highestRemoteId < this.#maxRemoteStreams / 2) {
      this.#limitDue = true
      this.#schedule()
    }
  }

  #queueLazy(frame: Frame): void {
    this.#lazy.push(frame)
    this.#lazyTimer ??= setTimeout(() => {
      this.#lazyTimer = undefined
      this.#lazyDue = true
      this.#schedule()
    }, LAZY_MS).unref()
  }

  #isRemoteId(id: number): boolean {
    return (id % 2 === 1) === (this.role === 'server')
  }

  /** A remote id that is not open: closed when the peer opened it or a higher one, unless it skipped it. */
  #isClosedRemoteId(id: number): boolean {
    return id <= this.#highestRemoteId && !this.#remoteSkipped.has(id)
  }

  /** The peer opens `id`: ids it skipped on the way stay openable (their first packets may come late). */
  #openedRemoteId(id: number): void {
    if (id < this.#highestRemoteId) {
      this.#remoteSkipped.delete(id)
      return
    }
    // Bounded: the peer can skip no more ids than it may have open (`#maxRemoteStreamId`).
    for (let skipped = this.#highestRemoteId === 0 ? (this.role === 'server' ? 1 : 2) : this.#highestRemoteId + 2; skipped < id; skipped += 2) {
      this.#remoteSkipped.add(skipped)
    }
    this.#highestRemoteId = id
  }

  /** The open stream a frame names, if any (an id too large for a `number` names none). */
  #stream(streamId: bigint): MoneyStream | undefined {
    return streamId > MAX_STREAM_ID ? undefined : this.#streams.get(Number(streamId))
  }

  get #maxRemoteStreamId(): number {
    return 2 * (this.#maxRemoteStreams + this.#remoteStreamsClosed)
  }

  #maxStreamIdFrame(): Frame {
    return { type: 'ConnectionMaxStreamId', maxStreamId: BigInt(this.#maxRemoteStreamId) }
  }

  #maxDataFrame(): Frame {
    return { type: 'ConnectionMaxData', maxOffset: BigInt(this.#maxDataNow()) }
  }

  /**
   * The connection's data limit as ilp-protocol-stream counts it: bytes handed on by the streams
   * still open, plus room for a window on each (kept as a running total: no walk over the streams);
   * never less than before, nor than the 65,534 bytes a sender assumes. It covers every open
   * stream's own limit (each at least offset 16,384), so those limits enforce it (RFC 29 §4.5):
   * a sender within them is never past it, whatever the order its packets and closes arrive in.
   */
  #maxDataNow(): number {
    // Each stream takes bytes up to offset 16,384 whatever its window (every sender assumes so).
    const now = this.#readOpen + Math.max(this.streamWindow, ASSUMED_STREAM_DATA) * Math.max(4, this.#streams.size + 1)
    if (now > this.#maxData) this.#maxData = now
    return this.#maxData
  }

  /** @internal */
  delivered(bytes: number): void {
    this.#readOpen += bytes
  }

  /** What the open streams want to send in all (a ConnectionDataBlocked says it). */
  #written(): number {
    let total = 0
    for (const stream of this.#streams.values()) total += stream.writeOffset
    return total
  }

  // --- connecting ----------------------------------------------------------------------------

  /**
   * A client's first packet: its address, asset and limits (with any streams opened already).
   * Resolves once the peer answered it. @internal
   */
  open(): Promise<void> {
    this.#schedule()
    return this.#whenConnected
  }

  /**
   * Resolves once the peer has answered a packet of this connection (a client's first one);
   * rejects when the connection closes first. Sends nothing: a client's first packet goes with
   * its first stream, or on {@link open}.
   */
  get whenConnected(): Promise<void> {
    return this.#whenConnected
  }

  #connected_(): void {
    if (this.#connected) return
    this.#connected = true
    this.#onConnected()
  }

  // --- sending -------------------------------------------------------------------------------

  #schedule(): void {
    if (this.#holds > 0) {
      // An answer is held for what listeners change (answerLater): the packet waits for it.
      this.#heldSchedule = true
      return
    }
    if (this.#scheduled || this.#closed) return
    this.#scheduled = true
    // A microtask, not a timer: frames from the same turn (a stream, its hello, its receive max)
    // share one packet, and nothing waits on the event loop.
    queueMicrotask(() => {
      this.#scheduled = false
      this.#pump()
    })
  }

  #pump(): void {
    if (this.#closed || this.#destination === undefined) return
    const wait = this.#retryAt - Date.now()
    if (wait > 0) {
      this.#retryTimer ??= setTimeout(() => {
        this.#retryTimer = undefined
        this.#pump()
      }, wait).unref()
      return
    }
    while (this.#inFlight < this.#window && !this.#closed) {
      if (this.#sequence >= this.#lastSequence) return this.#packetsSpent()
      const outgoing = this.#load()
      if (!outgoing) break
      this.#inFlight++
      void this.#send(outgoing)
    }
  }

  /** Only the last sequence is left: the connection closes, its ConnectionClose taking it (RFC 29 §5.1.3). */
  #packetsSpent(): void {
    const message = `sent ${this.#sequence - 1n} packets, and a connection sends fewer than ${this.#lastSequence + 1n} (RFC 29 §5.1.3)`
    this.#close({ code: CloseCodes.InternalError, message, byPeer: false }, true)
  }

  /**
   * True once money may leave: the peer's asset and the rate are known, and the rate is above the
   * minimum. Across assets, starts a probe when the rate is not known (yet, or any more).
   */
  #moneyReady(): boolean {
    if (this.#rate) return true
    if (!this.#remoteAsset) return false
    if (this.#remoteAsset.code === this.asset.code && this.#remoteAsset.scale === this.asset.scale) {
      this.#setRate(ONE)
      return this.#rate !== undefined
    }
    if (!this.#probing) void this.#probe()
    return false
  }

  #setRate(rate: ExchangeRate): void {
    this.#rate = rate
    this.#minRate ??= this.#configuredMinRate ?? lessSlippage(rate, this.#slippage)
    if (compareRates(rate, this.#minRate) < 0) {
      this.#failMoney(`the exchange rate ${formatRate(rate)} is below the minimum ${formatRate(this.#minRate)}`)
    }
  }

  /**
   * Money stops, for good, on every stream that has money to send or in flight now (its
   * `sendable` is 0 from here), with `message` as its `moneyError`. What the connection knew of
   * the rate is forgotten: a stream that wants money later learns it again (a new probe, and a
   * minimum from it), so a rate that dipped does not fail every later payment on the connection.
   */
  #failMoney(message: string): void {
    for (const stream of this.#streams.values()) if (stream.sendable > 0n || stream.inFlight > 0n) stream.failMoney(message)
    this.#rate = undefined
    this.#minRate = this.#configuredMinRate
    this.#rateEpoch++
  }

  /** What a client says of itself until the peer has answered: its address and its asset. */
  #nameFrames(): Frame[] {
    return [
      { type: 'ConnectionNewAddress', sourceAccount: this.sourceAccount },
      { type: 'ConnectionAssetDetails', sourceAssetCode: this.asset.code, sourceAssetScale: this.asset.scale },
    ]
  }

  /** Builds the next Prepare from what the streams have ready, or undefined when nothing is. */
  #load(): Outgoing | undefined {
    const frames: Frame[] = []
    // What frames may still take of the packet (ILP data is at most 32,767 bytes).
    let space = FRAMES_ROOM
    /** StreamMoneyBlocked and DataBlocked frames of this load: they wait for a later packet (see below). */
    const blockedFrames: Frame[] = []
    const add = (frame: Frame): void => {
      frames.push(frame)
      space -= frameSize(frame)
    }
    // A client names itself until the peer has answered; only one packet goes for that alone.
    const announce = !this.#peerKnowsUs && this.role === 'client'
    if (announce) {
      for (const frame of this.#nameFrames()) add(frame)
      add(this.#maxStreamIdFrame())
      add(this.#maxDataFrame())
    }
    const urgent = this.#control.length > 0 || this.#limitDue || this.#idsBlockedDue
    const control: Frame[] = []
    if (this.#limitDue) control.push(this.#maxStreamIdFrame())
    if (this.#idsBlockedDue) control.push({ type: 'ConnectionStreamIdBlocked', maxStreamId: BigInt(this.#nextStreamId) })
    this.#limitDue = false
    this.#idsBlockedDue = false
    for (const frame of control) add(frame)
    // Queued frames while they fit (leaving the streams room); the rest go in the next packet.
    for (const queue of [this.#control, this.#lazy]) {
      let taken = 0
      while (taken < queue.length && frameSize(queue[taken]!) <= space - CONTROL_ROOM) add(queue[taken++]!)
      control.push(...queue.splice(0, taken))
    }
    const dirty: MoneyStream[] = []
    const shares: Outgoing['shares'] = []
    const data: Outgoing['data'] = []
    let amount = 0n
    // Known once a stream has money to send (a probe starts only then), with what follows from it.
    let moneyReady: boolean | undefined
    let rate = this.#rate ?? ONE
    let minRate = this.#minRate ?? rate
    let mostAmount = 0n
    const ready = (): boolean => {
      if (moneyReady !== undefined) return moneyReady
      moneyReady = this.#moneyReady()
      rate = this.#rate ?? ONE
      minRate = this.#minRate ?? rate
      // Whatever rate the peer claims, what must arrive (and what each share is expected to
      // bring) stays a u64: past that the Prepare could not be written.
      mostAmount = min(min(this.#maxPacketAmount, this.#congestionMax), min(sourceWithin(MAX_U64, rate), sourceWithin(MAX_U64, minRate)))
      return moneyReady
    }
    let dataRoom = this.#remoteMaxData - this.#openSentBytes
    // Streams that still want to send after this packet go to the back: each gets its turn.
    const again: MoneyStream[] = []
    for (const stream of this.#wanting) {
      // No room for another stream's frames: it waits for the next packet, still wanting.
      if (space < STREAM_FRAMES_ROOM) break
      let busy = false
      if (stream.dirty && stream.isOpen) {
        stream.dirty = false
        stream.advertised()
        dirty.push(stream)
        const id = BigInt(stream.id)
        add({ type: 'StreamMaxMoney', streamId: id, receiveMax: stream.receiveMax, totalReceived: stream.totalReceived })
        add({ type: 'StreamMaxData', streamId: id, maxOffset: BigInt(stream.maxIncomingOffset) })
      }
      const sendable = stream.sendable
      if (sendable > 0n) {
        if (ready()) {
          const room = stream.remoteRoom
          const fits = mostAmount - amount
          const byRoom = sourceFor(room, rate) ?? 0n
          let take = min(min(sendable, byRoom), fits)
          // A share whose least must-arrive rounds down to 0 may deliver nothing and still be
          // fulfilled: at a rate a little worse than the one learned (within the slippage), the
          // last units of a payment were paid again and again for nothing, to the end of the cap.
          // Such a share carries one of the receiver's units at the minimum rate instead, when the
          // stream can send that and, at the rate learned, it stays within the peer's room.
          if (take > 0n && minRate.numerator > 0n && convertFloor(take, minRate) === 0n) {
            const least = sourceFor(1n, minRate)!
            if (least <= min(sendable, fits) && convertFloor(least, rate) <= room) take = least
          }
          if (take > 0n) {
            const destination = convertFloor(take, rate)
            stream.hold(take, destination)
            shares.push({ stream, amount: take, destination })
            add({ type: 'StreamMoney', streamId: BigInt(stream.id), shares: take })
            amount += take
            // More to send later: once this packet is answered, or the peer raises its max.
            if (take < sendable && fits > take) busy = false
            else if (take < sendable) busy = true
          } else if (room === 0n && stream.inFlight === 0n && stream.blocked()) {
            // Information for the peer, not worth a packet of its own at once (a payer with a cap
            // above the price is "blocked" after every request): it rides in the next packet that
            // goes anyway, or goes after LAZY_MS.
            blockedFrames.push({ type: 'StreamMoneyBlocked', streamId: BigInt(stream.id), sendMax: stream.sendMax, totalSent: stream.totalSent })
          } else if (fits === 0n) busy = true
        } else busy = true
      }
      // Data fills the packet but the room kept for other streams' frames.
      while (stream.hasData && space - CONTROL_ROOM > DATA_FRAME_OVERHEAD) {
        const before = stream.sentOffset
        const segment = stream.takeData(space - CONTROL_ROOM - DATA_FRAME_OVERHEAD, dataRoom)
        if (!segment) break
        this.#openSentBytes += stream.sentOffset - before
        dataRoom -= stream.sentOffset - before
        data.push({ stream, segment })
        add({ type: 'StreamData', streamId: BigInt(stream.id), offset: BigInt(segment.offset), data: segment.data })
      }
      if (stream.hasData && space - CONTROL_ROOM > DATA_FRAME_OVERHEAD) {
        // Bytes wait on the peer's limits: it hears so once per limit, in the next packet that
        // goes anyway, as for money (RFC 29 §4.4.4).
        if (stream.dataBlocked()) blockedFrames.push({ type: 'StreamDataBlocked', streamId: BigInt(stream.id), maxOffset: BigInt(stream.writeOffset) })
        if (dataRoom <= 0 && this.#dataBlockedAt !== this.#remoteMaxData) {
          this.#dataBlockedAt = this.#remoteMaxData
          const written = this.#written()
          blockedFrames.push({ type: 'ConnectionDataBlocked', maxOffset: BigInt(written) })
          this.emit('dataBlocked', { remoteMaxOffset: this.#remoteMaxData, writeOffset: written })
        }
      }
      if (stream.hasData && (space - CONTROL_ROOM <= DATA_FRAME_OVERHEAD || dataRoom <= 0)) busy = true
      if (!busy) this.#wanting.delete(stream)
      else again.push(stream)
    }
    for (const stream of again) {
      this.#wanting.delete(stream)
      this.#wanting.add(stream)
    }
    const carried = frames.length - control.length - (announce ? 4 : 0)
    const needed = carried > 0 || urgent || (this.#lazyDue && control.length > 0) || (announce && this.#announcing === 0)
    if (!needed) {
      // Nothing worth a packet of its own yet: the frames wait.
      this.#lazy = control.concat(this.#lazy)
      for (const frame of blockedFrames) this.#queueLazy(frame)
      return undefined
    }
    // Frames that did not fit go in the next packet, at once.
    this.#lazyDue = this.#lazy.length > 0
    if (this.#lazyTimer && control.length > 0) {
      clearTimeout(this.#lazyTimer)
      this.#lazyTimer = undefined
    }
    for (const frame of blockedFrames) this.#queueLazy(frame)
    const minimumDestination = amount > 0n ? convertFloor(amount, this.#minRate ?? rate) : 0n
    return { frames, amount, minimumDestination, shares, data, dirty, control, unfulfillable: false, announce, rateEpoch: this.#rateEpoch }
  }

  /**
   * Sends a Prepare and settles what it carried. Never rejects: a Prepare that could not be
   * built gives its money and frames back (`#unsent`), and an error thrown while settling (a
   * listener's) surfaces on its own, after the packet's streams are released.
   */
  async #send(outgoing: Outgoing): Promise<void> {
    let reply: IlpReply | undefined | typeof UNSENT = UNSENT
    if (outgoing.announce) this.#announcing++
    const sequence = this.#sequence++
    try {
      reply = await this.#exchange(sequence, outgoing)
    } catch {
      reply = UNSENT
    } finally {
      this.#inFlight--
      if (outgoing.announce) this.#announcing--
    }
    try {
      if (reply === UNSENT) this.#unsent(outgoing)
      else {
        this.#unsentInRow = 0
        if (reply === undefined) this.#lost(outgoing)
        else this.#answered(outgoing, sequence, reply)
      }
    } catch (error) {
      surface(error)
    }
    try {
      // Answered, the packet's share no longer holds the peer's room: its streams may send again.
      for (const { stream } of outgoing.shares) {
        stream.answered()
        if (stream.isOpen && stream.sendable > 0n) this.wake(stream)
      }
      for (const { stream } of outgoing.data) stream.answered()
    } catch (error) {
      surface(error)
    }
    this.#schedule()
  }

  /**
   * A Prepare could not be built or handed to the plugin (it never left): its money is released,
   * its frames go again, after a wait as for a temporary reject. A connection that cannot build
   * a packet FRUITLESS_LIMIT times in a row closes rather than try for ever.
   */
  #unsent(outgoing: Outgoing): void {
    for (const { stream, amount, destination } of outgoing.shares) stream.release(amount, destination)
    this.#resend(outgoing)
    if (++this.#unsentInRow < FRUITLESS_LIMIT) return this.#backOff()
    this.#close({ code: CloseCodes.InternalError, message: `could not build a Prepare ${this.#unsentInRow} times in a row`, byPeer: false }, true)
  }

  /**
   * Sends one Prepare and waits for its answer until it expires. Resolves with the reply, or
   * undefined when none came in time or the plugin failed (the outcome is then unknown).
   */
  async #exchange(sequence: bigint, outgoing: Outgoing): Promise<IlpReply | undefined | typeof UNSENT> {
    let bytes: Buffer
    let fulfillment: Buffer | undefined
    let condition: Buffer
    try {
      const packet: StreamPacket = {
        ilpPacketType: IlpPacketTypes.Prepare,
        sequence,
        prepareAmount: outgoing.minimumDestination,
        frames: outgoing.frames,
      }
      const data = Buffer.from(encryptPacket(this.#keys.encryptionKey, packet))
      fulfillment = outgoing.unfulfillable ? undefined : Buffer.from(fulfillmentFor(this.#keys.fulfillmentKey, data))
      condition = fulfillment ? Buffer.from(conditionFor(fulfillment)) : randomBytes(32)
      bytes = serializePrepare({
        destination: this.#destination!,
        amount: outgoing.amount,
        executionCondition: condition,
        expiresAt: new Date(Date.now() + this.#packetTimeoutMs),
        data,
      })
    } catch {
      return UNSENT
    }
    let timer: NodeJS.Timeout | undefined
    try {
      const answer = await Promise.race([
        this.#plugin.sendData(bytes),
        new Promise<undefined>((resolve) => {
          // The expiry keeps no process alive: a closed connection leaves nothing to wait for.
          timer = setTimeout(() => resolve(undefined), this.#packetTimeoutMs).unref()
        }),
      ])
      if (!answer) return undefined
      const reply = deserializeReply(answer)
      if (reply?.type === 'fulfill') {
        // A fulfillment that does not hash to the condition: the money's fate is unknown.
        if (!fulfillment || !equalBytes(createHash('sha256').update(reply.fulfillment).digest(), condition)) {
          this.#lossReason = 'a Fulfill whose fulfillment does not match the condition'
          return undefined
        }
      }
      return reply
    } catch (err) {
      this.#lossReason = err instanceof Error ? err.message : String(err)
      return undefined
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * A Prepare was never answered (its expiry passed, or the plugin failed: the uplink gave up on
   * it): its money may have arrived, so it stays counted, in doubt. The path or the peer is gone,
   * and the connection closes with it, as ilp-protocol-stream's does: its owner opens a new one
   * rather than wait on this one (a lost Prepare is not a temporary reject to retry).
   */
  #lost(outgoing: Outgoing): void {
    for (const { stream, amount, destination } of outgoing.shares) {
      stream.doubt(amount, destination)
      this.#inDoubt += amount
    }
    const reason = this.#lossReason ?? `no answer within ${this.#packetTimeoutMs} ms`
    this.#lossReason = undefined
    if (this.role === 'client' && !this.#connected) this.#onConnectFailed(new Error(`no answer to the first packet: ${reason}`))
    this.#close({ code: CloseCodes.InternalError, message: `A Prepare was not answered: ${reason}`, byPeer: false }, true)
  }

  #resend(outgoing: Outgoing): void {
    // Money that did not go is still to send: its streams load again.
    for (const { stream } of outgoing.shares) if (stream.isOpen) this.wake(stream)
    for (const { stream, segment } of outgoing.data) stream.requeue(segment)
    for (const stream of outgoing.dirty) {
      if (!stream.isOpen) continue
      stream.dirty = true
      this.wake(stream)
    }
    for (const frame of outgoing.control) {
      // Stream ids: only the latest limit matters, and it is built anew; a blocked notice likewise.
      if (frame.type === 'ConnectionMaxStreamId') this.#limitDue = true
      else if (frame.type === 'ConnectionStreamIdBlocked') this.#idsBlockedDue = true
      else this.#control.push(frame)
    }
  }

  #backOff(): void {
    this.#retryDelay = Math.min(Math.max(FIRST_RETRY_DELAY_MS, this.#retryDelay * 2), this.#maxRetryDelayMs)
    this.#retryAt = Date.now() + this.#retryDelay
  }

  #answered(outgoing: Outgoing, sequence: bigint, reply: IlpReply): void {
    const response = this.#readReply(reply, sequence)
    // What the peer had said each stream received, before this answer says more.
    const receivedBefore = outgoing.shares.map((share) => share.stream.remoteReceived)
    if (response) {
      this.#bumpIdle()
      if (!this.#peerKnowsUs) this.#peerKnowsUs = true
      this.#handleFrames(response.frames, false, undefined, reply.type === 'reject' && outgoing.amount > 0n)
    }
    const told = new Set<number>()
    for (const frame of response?.frames ?? []) if (frame.type === 'StreamMaxMoney' && frame.streamId <= MAX_STREAM_ID) told.add(Number(frame.streamId))
    if (reply.type === 'fulfill') {
      this.#bumpIdle()
      this.#retryDelay = 0
      this.#fruitless = 0
      if (outgoing.amount > 0n && this.#congestionMax < MAX_U64) {
        const grown = this.#congestionMax * 2n
        this.#congestionMax = grown > MAX_U64 ? MAX_U64 : grown
      }
      const delivered = response ? response.prepareAmount : outgoing.minimumDestination
      if (response) this.#learnRate(outgoing, response.prepareAmount, true)
      outgoing.shares.forEach((share, index) => {
        const part = outgoing.amount === 0n ? 0n : (delivered * share.amount) / outgoing.amount
        const toldTotal = told.has(share.stream.id)
        // Arrived, as far as this side can tell: its part of what the answer says arrived, or
        // (a part rounded down to 0 beside larger shares) the stream's total, told, grew.
        const arrived = part > 0n || (toldTotal && share.stream.remoteReceived > receivedBefore[index]!)
        share.stream.settle(share.amount, share.destination, part, toldTotal, arrived)
        this.#totalSent += share.amount
        // Paid, and nothing arrived (as the receiver says of this packet): again and again, the
        // money goes for nothing (a rate that rounds each share to 0, a receiver that keeps it).
        if (share.stream.fruitlessShares >= FRUITLESS_SHARES) {
          share.stream.failMoney(`${FRUITLESS_SHARES} packets in a row were fulfilled with nothing arriving on the stream (the last sent ${share.amount}): money stops`)
        }
      })
      for (const { stream, segment } of outgoing.data) stream.acked(segment)
      if (this.role === 'client') this.#connected_()
      return
    }
    for (const { stream, amount, destination } of outgoing.shares) stream.release(amount, destination)
    this.#resend(outgoing)
    if (response) {
      if (this.role === 'client') this.#connected_()
      // The receiver read the packet and turned it away (F99): what arrived says if the rate held.
      if (this.#learnRate(outgoing, response.prepareAmount, false) === 'failed') return
      if (++this.#fruitless >= FRUITLESS_LIMIT) this.#backOff()
      return
    }
    if (reply.type !== 'reject') return
    if (reply.code === 'F08') {
      // Less than was sent fits, whatever the F08 says (one saying more lies): every F08 shrinks
      // the packets, and F08s in a row back off like other fruitless rejects.
      if (outgoing.amount > 0n) {
        this.#maxPacketAmount = min(this.#maxPacketAmount, fitsAfterF08(reply.data, outgoing.amount))
        if (this.#maxPacketAmount === 0n) this.#failMoney(`the path carries no money: F08, the largest packet is 0`)
      }
      if (++this.#fruitless >= FRUITLESS_LIMIT) this.#backOff()
      return
    }
    if (reply.code.startsWith('T')) {
      // Insufficient liquidity: smaller packets may get through (halved, grown back as they are fulfilled).
      if (reply.code === 'T04' && outgoing.amount > 1n) this.#congestionMax = outgoing.amount / 2n
      this.#backOff()
      return
    }
    const message = `Unexpected error while sending packet. Code: ${reply.code}, triggered by: ${reply.triggeredBy}, message: ${reply.message}`
    if (this.role === 'client' && !this.#connected) this.#onConnectFailed(new Error(message))
    this.#close({ code: CloseCodes.InternalError, message, byPeer: false }, false)
  }

  /**
   * What the answer to a money Prepare says of the rate, `arrived` being what it says arrived:
   * only when the connection still knows what it knew when the Prepare went (its rate epoch).
   * - Turned away with less than its minimum: the rate fell. Below the minimum rate, money
   *   stops (`'failed'`); else money is sized by it.
   * - Turned away with more arrived than the rate promised (past the receiver's room, say): the
   *   rate is better, and packets sized by the old one would be turned away again and again.
   * - Fulfilled: money is sized by what arrived once enough did to tell (a spread on one asset, a
   *   rate that moved within the slippage), or at once when less arrived than the rate promised
   *   (a small price through a spread, whose last unit would go as shares that deliver nothing);
   *   never below the minimum rate, which a few units rounded down, or a receiver saying nothing
   *   arrived, would show.
   */
  #learnRate(outgoing: Outgoing, arrived: bigint, fulfilled: boolean): 'failed' | undefined {
    if (outgoing.amount === 0n || outgoing.rateEpoch !== this.#rateEpoch) return
    // Unreduced: compared first, reduced only when it is kept.
    const observed: ExchangeRate = { numerator: arrived, denominator: outgoing.amount }
    if (!fulfilled && arrived < outgoing.minimumDestination) {
      if (this.#minRate && compareRates(observed, this.#minRate) < 0) {
        this.#failMoney(`the exchange rate fell to ${formatRate(observed)}, below the minimum ${formatRate(this.#minRate)}: ${outgoing.amount} sent, ${arrived} arrived`)
        return 'failed'
      }
      this.#rate = exchangeRate(observed)
      return
    }
    if (!this.#rate) return
    const against = compareRates(observed, this.#rate)
    if (!fulfilled) {
      if (against > 0) this.#rate = exchangeRate(observed)
      return
    }
    if (against === 0 || (against > 0 && arrived < RATE_SAMPLE)) return
    const sized = this.#minRate && compareRates(observed, this.#minRate) < 0 ? this.#minRate : observed
    if (sized.numerator > 0n) this.#rate = exchangeRate(sized)
  }

  /** The STREAM packet inside a Fulfill or Reject, when it is one for `sequence`. */
  #readReply(reply: IlpReply, sequence: bigint): StreamPacket | undefined {
    if (reply.data.length < ENCRYPTION_OVERHEAD) return undefined
    const decoded = decryptPacket(this.#keys.encryptionKey, reply.data)
    if (decoded.type !== 'valid') return undefined
    const packet = decoded.packet
    const type = reply.type === 'fulfill' ? IlpPacketTypes.Fulfill : IlpPacketTypes.Reject
    if (packet.sequence !== sequence || packet.ilpPacketType !== type) return undefined
    return packet
  }

  /**
   * Learns the exchange rate with unfulfillable test packets of growing size (nothing can be
   * lost: their condition has no fulfillment), keeping the most precise answer.
   */
  async #probe(): Promise<void> {
    this.#probing = true
    try {
      for (let attempt = 0; attempt < PROBE_ATTEMPTS && !this.#rate && !this.#closed; attempt++) {
        const amounts = this.#probeAmounts()
        const largestBefore = this.#maxPacketAmount
        if (amounts.length === 0) return this.#failMoney('the path carries no money: F08, the largest packet is 0')
        const results = await Promise.all(amounts.map((amount) => this.#testPacket(amount)))
        let best: { arrived: bigint; sent: bigint } | undefined
        let temporary = false
        for (const result of results) {
          if (result.type === 'arrived' && (!best || result.arrived > best.arrived)) best = result
          if (result.type === 'f08') this.#maxPacketAmount = min(this.#maxPacketAmount, result.fits)
          if (result.type === 'temporary') temporary = true
          if (result.type === 'final') {
            this.#close({ code: CloseCodes.InternalError, message: result.message, byPeer: false }, false)
            return
          }
        }
        if (best && best.arrived > 0n) {
          // What arrived is rounded down: the rate learned is up to 1/arrived low, and the
          // minimum with it (2 units of 2.475 made a 1 % slippage a 20 % one). Under 1,000 units
          // (0.1 %), a larger test packet goes first when the path takes one (an F08 said so).
          const largest = this.#probeAmounts().at(-1) ?? 0n
          if (best.arrived < PROBE_PRECISION && this.#maxPacketAmount < largestBefore && largest > best.sent) continue
          this.#setRate(exchangeRate({ numerator: best.arrived, denominator: best.sent }))
          this.#schedule()
          return
        }
        if (best && !temporary && best.sent === amounts[amounts.length - 1]) {
          return this.#failMoney(`the exchange rate is 0: ${best.sent} sent, nothing arrived`)
        }
        // A wait that keeps no process alive, and ends when the connection closes.
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer)
            this.#probeWake = undefined
            resolve()
          }
          const timer = setTimeout(done, FIRST_RETRY_DELAY_MS * 2 ** attempt).unref()
          this.#probeWake = done
        })
      }
      if (!this.#rate && !this.#closed) this.#failMoney('could not learn the exchange rate: no test packet was answered')
    } catch (error) {
      // Never a rejection nobody handles: money stops, and the error surfaces.
      if (!this.#rate && !this.#closed) this.#failMoney(`could not learn the exchange rate: ${error instanceof Error ? error.message : String(error)}`)
      surface(error)
    } finally {
      this.#probing = false
    }
  }

  /** The test packets of a probe, smallest first: each of PROBE_AMOUNTS, or the largest packet the path takes. */
  #probeAmounts(): bigint[] {
    return [...new Set(PROBE_AMOUNTS.map((amount) => min(amount, this.#maxPacketAmount)))].filter((amount) => amount > 0n)
  }

  async #testPacket(
    amount: bigint,
  ): Promise<
    | { type: 'arrived'; arrived: bigint; sent: bigint }
    | { type: 'f08'; fits: bigint }
    | { type: 'temporary' }
    | { type: 'final'; message: string }
    | { type: 'none' }
  > {
    if (this.#sequence >= this.#lastSequence) {
      this.#packetsSpent()
      return { type: 'none' }
    }
    const sequence = this.#sequence++
    const outgoing = unfulfillable(this.#peerKnowsUs ? [] : this.#nameFrames(), amount)
    const reply = await this.#exchange(sequence, outgoing)
    if (!reply || reply === UNSENT) return { type: 'none' }
    const response = this.#readReply(reply, sequence)
    if (response) {
      this.#bumpIdle()
      this.#peerKnowsUs = true
      this.#handleFrames(response.frames, false)
      return { type: 'arrived', arrived: response.prepareAmount, sent: amount }
    }
    if (reply.type === 'reject' && reply.code === 'F08') return { type: 'f08', fits: fitsAfterF08(reply.data, amount) }
    if (reply.type === 'reject' && reply.code.startsWith('T')) return { type: 'temporary' }
    if (reply.type === 'reject') {
      return { type: 'final', message: `Unexpected error while sending packet. Code: ${reply.code}, triggered by: ${reply.triggeredBy}, message: ${reply.message}` }
    }
    return { type: 'none' }
  }

  // --- receiving -----------------------------------------------------------------------------

  /** Answers one serialized ILP Prepare (a client registers this as its plugin's data handler). Never throws. */
  handleData(data: Buffer): Buffer {
    const prepare = deserializePrepare(data)
    if (!prepare) return serializeReject('F01', this.sourceAccount, 'expected an ILP Prepare')
    return this.handlePrepare(prepare)
  }

  /**
   * Like {@link handleData}, for a plugin whose data handler may answer later: when the Prepare
   * brought money to a stream that holds its answers (`MoneyStream.holdAnswers`), what its
   * listeners do within the next few microtasks (a meter that charges
   * its next step once this one is paid, after an `await`) rides in the answer, so a raise of a
   * receive max goes back in the Fulfill instead of in a Prepare of its own, a round trip later.
   * Never rejects.
   */
  handleDataLater(data: Buffer): Promise<Buffer> {
    return this.answerLater(this.handleData(data))
  }

  /**
   * Gives listeners of the money the answer just written took a few microtasks to raise their
   * limits, and writes the answer again with them if they did. Only the answer written last
   * (synchronously before this call) is held. @internal
   */
  async answerLater(answer: Buffer): Promise<Buffer> {
    const open = this.#lastAnswer
    this.#lastAnswer = undefined
    if (!open) return answer
    // Answered as soon as a listener raised something, else after ANSWER_TURNS.
    this.#holds++
    try {
      for (let turn = 0; turn < ANSWER_TURNS && this.#wakes === open.wakes; turn++) await null
    } finally {
      this.#holds--
    }
    try {
      if (this.#wakes !== open.wakes && !this.#closed) {
        answer = open.rebuild()
        // What the answer now says of its streams need not go in a Prepare as well.
        for (const stream of open.streams) stream.dirty = false
      }
    } catch (error) {
      // The answer written first stands.
      surface(error)
    }
    if (this.#holds === 0 && this.#heldSchedule) {
      this.#heldSchedule = false
      this.#schedule()
    }
    return answer
  }

  /**
   * Answers a Prepare addressed to this connection (its owner routes them here), with the
   * serialized Fulfill or Reject. Synchronous; never throws. `F06` for bytes that are not a
   * STREAM packet under this key, `F99` with an encrypted reply for one it turns away, `R00`
   * (with one) for an expired Prepare, `T00` should handling it fail.
   */
  handlePrepare(prepare: IlpPrepare): Buffer {
    const answer = this.answer(prepare)
    return answer === RESTART ? serializeReject('F99', this.sourceAccount, 'the peer opened a new connection') : answer
  }

  /**
   * Answers a Prepare, or says {@link RESTART} when it opens a new connection under the same
   * credentials: a client that started again (a restarted server) names itself at sequence 1,
   * in a Prepare that has not expired and is not this connection's first one again (a connector
   * replaying it is answered as a duplicate). Its listener then drops this connection and gives
   * the packet to a new one. Never throws. @internal
   */
  answer(prepare: IlpPrepare): Buffer | typeof RESTART {
    try {
      return this.#answer(prepare)
    } catch (error) {
      // Nothing was credited (money counts only once its answer is written): the packet is
      // turned away as a temporary failure, and the error (a listener's, or a bug) surfaces.
      surface(error)
      return serializeReject('T00', this.sourceAccount, 'internal error')
    }
  }

  #answer(prepare: IlpPrepare): Buffer | typeof RESTART {
    const decoded = decryptPacket(this.#keys.encryptionKey, prepare.data)
    if (decoded.type !== 'valid' || decoded.packet.ilpPacketType !== IlpPacketTypes.Prepare) {
      return serializeReject('F06', this.sourceAccount, '')
    }
    const request = decoded.packet
    const expired = prepare.expiresAt.getTime() <= Date.now()
    // A client that started again names itself at sequence 1. Not this connection's own first
    // Prepare again (the same condition: a connector replaying it), nor an expired one: those
    // are answered here, and the live connection stays.
    if (
      this.role === 'server' &&
      this.#prepares > 0 &&
      request.sequence === 1n &&
      !expired &&
      !(this.#openingCondition && equalBytes(this.#openingCondition, prepare.executionCondition)) &&
      request.frames.some((frame) => frame.type === 'ConnectionNewAddress')
    ) {
      return RESTART
    }
    if (this.#prepares++ === 0) this.#openingCondition = Buffer.from(prepare.executionCondition)
    const respond = (frames: Frame[], accept: Buffer | undefined, code = 'F99'): Buffer =>
      streamReply(this.#keys.encryptionKey, prepare, request.sequence, fitFrames(frames, FRAMES_ROOM), this.sourceAccount, accept, code)
    if (this.#closed) {
      return respond([{ type: 'ConnectionClose', errorCode: CloseCodes.NoError, errorMessage: '' }], undefined)
    }
    if (request.sequence > this.#lastSequence) {
      const message = `the peer sent packet ${request.sequence}, and a connection carries fewer than ${this.#lastSequence + 1n} (RFC 29 §5.1.3)`
      this.#close({ code: CloseCodes.InternalError, message, byPeer: false }, true)
      return respond([{ type: 'ConnectionClose', errorCode: CloseCodes.InternalError, errorMessage: message }], undefined)
    }
    this.#bumpIdle()
    const replyFrames: Frame[] = []
    let refuse = false
    // Streams this packet names: created when new, answered with their state.
    const named = new Map<number, MoneyStream>()
    const refused = new Set<bigint>()
    for (const frame of request.frames) {
      if (frame.type !== 'StreamMoney' && frame.type !== 'StreamData' && frame.type !== 'StreamMaxMoney' && frame.type !== 'StreamMaxData') continue
      if (refused.has(frame.streamId) || (frame.streamId <= MAX_STREAM_ID && named.has(Number(frame.streamId)))) continue
      const stream = this.#streamFor(frame.streamId, frame.type === 'StreamMoney' || frame.type === 'StreamData', replyFrames)
      if (stream === 'refuse') {
        refuse = true
        refused.add(frame.streamId)
      } else if (stream) named.set(stream.id, stream)
    }
    this.#handleFrames(request.frames, true, replyFrames)
    // (Read through the getter: handling the frames may have closed the connection.)
    const info = this.closeInfo
    if (info) {
      // Closed by this side for what the packet did (a flow control error): the reply says why.
      if (!info.byPeer) replyFrames.push({ type: 'ConnectionClose', errorCode: info.code, errorMessage: brief(info.message) })
      return respond(replyFrames, undefined)
    }
    // Money
    const amount = prepare.amount
    let accept: Buffer | undefined
    let code = 'F99'
    const credits: { stream: MoneyStream; amount: bigint }[] = []
    if (!refuse && amount >= request.prepareAmount) {
      const fulfillment = Buffer.from(fulfillmentFor(this.#keys.fulfillmentKey, prepare.data))
      // Expired, a Prepare is never fulfilled (the connector that sent it would not pay for it).
      if (expired) code = 'R00'
      else if (equalBytes(conditionFor(fulfillment), prepare.executionCondition)) {
        const moneyFrames = request.frames.filter((frame) => frame.type === 'StreamMoney')
        let total = 0n
        for (const frame of moneyFrames) total += frame.shares
        if (amount > 0n && total === 0n) refuse = true
        // Each frame's part of the amount (the last takes the remainder, so the parts add up to
        // the Prepare), summed per stream: a stream named twice is checked once, with all it gets.
        const perStream = new Map<bigint, { amount: bigint; shares: bigint }>()
        let given = 0n
        moneyFrames.forEach((frame, index) => {
          const part = total === 0n ? 0n : index === moneyFrames.length - 1 ? amount - given : (amount * frame.shares) / total
          given += part
          const sum = perStream.get(frame.streamId) ?? { amount: 0n, shares: 0n }
          perStream.set(frame.streamId, { amount: sum.amount + part, shares: sum.shares + frame.shares })
        })
        const crossing = this.#crossing()
        for (const [streamId, { amount: part, shares }] of perStream) {
          const stream = streamId <= MAX_STREAM_ID ? named.get(Number(streamId)) : undefined
          if (stream?.canReceive(part, shares, crossing)) {
            credits.push({ stream, amount: part })
            continue
          }
          refuse = true
          if (stream) replyFrames.push({ type: 'StreamMaxMoney', streamId, receiveMax: stream.receiveMax, totalReceived: stream.totalReceived })
        }
        if (!refuse) accept = fulfillment
      }
    }
    const undo: (() => void)[] = []
    if (accept) {
      for (const { stream, amount: part } of credits) {
        undo.push(stream.credit(part))
        this.#totalReceived += part
      }
    }
    const reply = (): Buffer => {
      const frames = [...replyFrames]
      for (const stream of named.values()) {
        if (!stream.isOpen) continue
        stream.advertised()
        const id = BigInt(stream.id)
        frames.push(
          { type: 'StreamMaxMoney', streamId: id, receiveMax: stream.receiveMax, totalReceived: stream.totalReceived },
          { type: 'StreamMaxData', streamId: id, maxOffset: BigInt(stream.maxIncomingOffset) },
        )
      }
      frames.push(this.#maxStreamIdFrame(), this.#maxDataFrame())
      return respond(frames, accept, code)
    }
    let answer: Buffer
    try {
      answer = reply()
    } catch (error) {
      // Money counts only with the answer that takes it.
      for (const rollback of undo) rollback()
      if (accept) for (const { amount: part } of credits) this.#totalReceived -= part
      throw error
    }
    if (!accept) return answer
    // The answer is final: listeners hear of the money now, and whatever they do cannot change
    // it. One that raised a receive max (a metered payee) is answered with the new max at once.
    const wakes = this.#wakes
    for (const { stream, amount: part } of credits) {
      try {
        stream.announceMoney(part)
      } catch (error) {
        surface(error)
      }
    }
    if (this.#wakes !== wakes) {
      try {
        answer = reply()
      } catch {
        // The answer written first stands.
      }
    }
    // A later change by the listeners may still ride in it (answerLater), for a stream that asks.
    if (credits.some(({ stream }) => stream.holdAnswers)) {
      this.#lastAnswer = { rebuild: reply, wakes: this.#wakes, streams: [...named.values()] }
    }
    return answer
  }

  /** True across assets, where a sender cannot hit a receive max exactly (see `MoneyStream.canReceive`). */
  #crossing(): boolean {
    const remote = this.#remoteAsset
    return remote !== undefined && (remote.code !== this.asset.code || remote.scale !== this.asset.scale)
  }

  /**
   * The stream a frame names, created when the peer opens it. 'refuse' when money or data names
   * one that is closed or past the limit (the reply says so with a StreamClose).
   */
  #streamFor(streamId: bigint, carries: boolean, replyFrames: Frame[]): MoneyStream | 'refuse' | undefined {
    // An id too large for a `number` is past any limit: refused before it is one (never rounded).
    const id = streamId <= MAX_STREAM_ID ? Number(streamId) : undefined
    const known = id === undefined ? undefined : this.#streams.get(id)
    if (known) return known
    const remote = id !== undefined && this.#isRemoteId(id)
    const closed = id !== undefined && (remote ? this.#isClosedRemoteId(id) : id < this.#nextStreamId)
    if (id === undefined || closed || !remote || id > this.#maxRemoteStreamId) {
      if (!carries) return undefined
      const message = closed
        ? 'Stream is already closed'
        : id !== undefined && !remote
          ? `Invalid stream id ${streamId}`
          : `Stream id ${streamId} is past the maximum ${this.#maxRemoteStreamId}`
      const code = closed ? CloseCodes.StreamStateError : CloseCodes.StreamIdError
      replyFrames.push({ type: 'StreamClose', streamId, errorCode: code, errorMessage: message })
      return 'refuse'
    }
    const stream = new MoneyStream(id, this)
    this.#streams.set(id, stream)
    this.#openedRemoteId(id)
    this.emit('stream', stream)
    return stream.isOpen ? stream : 'refuse'
  }

  /**
   * Control and data frames from the peer, in a Prepare (`incoming`) or in a reply (`refused`:
   * a reject in which the peer turned our money away).
   */
  #handleFrames(frames: readonly Frame[], incoming: boolean, replyFrames?: Frame[], refused = false): void {
    let closeFrame: { code: number; message: string } | undefined
    let assetTold = false
    for (const frame of frames) {
      switch (frame.type) {
        case 'ConnectionNewAddress':
          if (this.role === 'server' && incoming) {
            const first = this.#destination === undefined
            this.#destination = frame.sourceAccount
            // Once per reply, however many times the packet says it.
            if (!assetTold) {
              replyFrames?.push({ type: 'ConnectionAssetDetails', sourceAssetCode: this.asset.code, sourceAssetScale: this.asset.scale })
              assetTold = true
            }
            if (first) this.#schedule()
          }
          break
        case 'ConnectionAssetDetails':
          // An asset never changes during a connection (RFC 29 §5.3.7): the first word holds.
          this.#remoteAsset ??= { code: frame.sourceAssetCode, scale: frame.sourceAssetScale }
          break
        case 'ConnectionClose':
          closeFrame = { code: frame.errorCode, message: frame.errorMessage }
          break
        case 'ConnectionMaxData': {
          const max = frame.maxOffset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(frame.maxOffset)
          if (max > this.#remoteMaxData) {
            this.#remoteMaxData = max
            this.#schedule()
          }
          break
        }
        case 'ConnectionMaxStreamId': {
          const max = frame.maxStreamId > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(frame.maxStreamId)
          // The first word replaces the assumed default (20); after it, the limit only grows.
          if (!this.#remoteMaxStreamIdKnown || max > this.#remoteMaxStreamId) this.#remoteMaxStreamId = max
          this.#remoteMaxStreamIdKnown = true
          break
        }
        case 'ConnectionDataBlocked':
          this.emit('remoteDataBlocked', frame.maxOffset)
          break
        case 'ConnectionStreamIdBlocked':
          // Once per limit: the peer saying it again tells nothing new until the limit moves.
          if (this.#remoteBlockedAt !== this.#maxRemoteStreamId) {
            this.#remoteBlockedAt = this.#maxRemoteStreamId
            this.emit('remoteStreamIdsBlocked', frame.maxStreamId)
          }
          break
        case 'StreamClose':
          this.#stream(frame.streamId)?.remoteClose(frame.errorCode, frame.errorMessage)
          break
        case 'StreamMaxMoney':
          this.#stream(frame.streamId)?.remoteMoney(frame.receiveMax, frame.totalReceived, refused)
          break
        case 'StreamMoneyBlocked':
          this.#stream(frame.streamId)?.emit('remoteMoneyBlocked', { sendMax: frame.sendMax, totalSent: frame.totalSent })
          break
        case 'StreamData': {
          const stream = this.#stream(frame.streamId)
          if (!stream) break
          if (!stream.pushData(frame.offset, frame.data)) {
            // RFC 29 §4.4.4: a sender past a stream's advertised limit loses the connection (its
            // Prepare is turned away, and nothing in it is credited).
            const message = `flow control: stream ${stream.id} got bytes up to ${frame.offset + BigInt(frame.data.length)}, past its max offset ${stream.maxIncomingOffset}`
            this.#close({ code: CloseCodes.FlowControlError, message, byPeer: false }, true)
            return
          }
          // (The connection's max data covers every open stream's limit: see #maxDataNow.)
          break
        }
        case 'StreamMaxData':
          this.#stream(frame.streamId)?.remoteData(frame.maxOffset)
          break
        case 'StreamDataBlocked':
          this.#stream(frame.streamId)?.emit('remoteDataBlocked', { maxOffset: frame.maxOffset })
          break
        case 'StreamReceipt':
          this.#stream(frame.streamId)?.remoteReceipt(frame.receipt)
          break
        default:
          // StreamMoney is handled with the amount.
          break
      }
    }
    if (closeFrame) this.#close({ ...closeFrame, byPeer: true }, false)
  }

  // --- lifecycle -----------------------------------------------------------------------------

  #bumpIdle(): void {
    this.#lastActive = Date.now()
  }

  #armIdleTimer(): void {
    if (this.#idleTimeoutMs === 0) return
    const wait = this.#lastActive + this.#idleTimeoutMs - Date.now()
    this.#idleTimer = setTimeout(() => {
      if (Date.now() - this.#lastActive >= this.#idleTimeoutMs) {
        this.#close({ code: CloseCodes.NoError, message: `idle for ${this.#idleTimeoutMs} ms`, byPeer: false }, true)
      } else this.#armIdleTimer()
    }, Math.max(wait, 1))
    this.#idleTimer.unref()
  }

  /**
   * Closes the connection cleanly: streams stop, the bytes they wrote are delivered, then the peer
   * is told. Resolves once closed, at the latest after `timeoutMs` (default 2,000 ms).
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#closed) return
    for (const stream of [...this.#streams.values()]) stream.end()
    const deadline = Date.now() + timeoutMs
    while (this.#streams.size > 0 && Date.now() < deadline && !this.#closed) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    this.destroy()
  }

  /**
   * Closes the connection now: every stream closes, and the peer is told in one packet (not
   * waited for). With `message`, the peer hears ApplicationError and the message.
   */
  destroy(message?: string): void {
    const info: CloseInfo =
      message === undefined
        ? { code: CloseCodes.NoError, message: '', byPeer: false }
        : { code: CloseCodes.ApplicationError, message, byPeer: false }
    this.#close(info, true)
  }

  /** Closes without a word to the peer (it started a new connection at the same address). @internal */
  drop(message: string): void {
    this.#close({ code: CloseCodes.NoError, message, byPeer: false }, false)
  }

  #close(info: CloseInfo, tellPeer: boolean): void {
    if (this.#closed) return
    this.#closed = info
    clearTimeout(this.#idleTimer)
    clearTimeout(this.#retryTimer)
    clearTimeout(this.#lazyTimer)
    this.#probeWake?.()
    this.#wanting.clear()
    this.#control = []
    this.#lazy = []
    for (const stream of [...this.#streams.values()]) stream.connectionClosed(info)
    this.#streams.clear()
    if (!this.#connected) this.#onConnectFailed(new ConnectionClosedError(info))
    // The last sequence is kept for this close (RFC 29 §5.1.3).
    if (tellPeer && this.#destination !== undefined && this.#peerKnowsUs && this.#sequence <= this.#lastSequence) {
      const outgoing = unfulfillable([{ type: 'ConnectionClose', errorCode: info.code, errorMessage: brief(info.message) }], 0n)
      void this.#exchange(this.#sequence++, outgoing).catch(() => {})
    }
    this.#onClosed(info)
    this.emit('close', info)
  }
}

/**
 * Throws the RangeError a connection's constructor would for these options: how a
 * {@link StreamListener} refuses bad options when it is built, not on its first packet. @internal
 */
export function checkConnectionOptions(options: Omit<ConnectionOptions, 'plugin' | 'sharedSecret' | 'sourceAccount' | 'asset'>): void {
  positive(options.maxPacketsInFlight ?? 16, 'maxPacketsInFlight')
  positive(options.maxRemoteStreams ?? 100, 'maxRemoteStreams')
  positive(options.streamWindow ?? 16_384, 'streamWindow')
  packetLimit(options.packetLimit ?? MAX_PACKETS)
  if (options.minExchangeRate !== undefined) exchangeRate(options.minExchangeRate)
  const slippage = exchangeRate(options.slippage ?? '0.01')
  if (slippage.numerator >= slippage.denominator) throw new RangeError('slippage must be below 1')
}

/** What `#exchange` returns for a Prepare that never left (it could not be built). */
const UNSENT = Symbol('unsent')

/** What {@link Connection.answer} returns for the first packet of a new connection under the same credentials. @internal */
export const RESTART = Symbol('restart')

/** The connection is closed: no stream can be opened on it. */
export class ConnectionClosedError extends Error {
  readonly code = 'COGPAY_STREAM_CONNECTION_CLOSED'
  constructor(readonly info: CloseInfo) {
    super(`the STREAM connection is closed${info.message ? `: ${info.message}` : ''}`)
    this.name = 'ConnectionClosedError'
  }
}

/** The peer allows no more open streams right now; it raises the limit as streams close. */
export class StreamIdsExhaustedError extends Error {
  readonly code = 'COGPAY_STREAM_IDS_EXHAUSTED'
  constructor(readonly maxStreamId: number) {
    super(`the peer allows stream ids up to ${maxStreamId}, and all are open`)
    this.name = 'StreamIdsExhaustedError'
  }
}

/**
 * Opens a client connection to `destinationAccount`: the first packet carries this side's
 * address and asset. Resolves once the peer answered it; rejects (and closes the connection) on a
 * final reject or when the peer closes it first.
 */
export async function connect(options: ClientConnectionOptions): Promise<Connection> {
  const connection = new Connection({ ...options, role: 'client' })
  await connection.open()
  return connection
}

/**
 * The answer to `prepare`, the STREAM packet of `sequence`: a Fulfill with `fulfillment`, else a
 * Reject with `code` from `triggeredBy`, carrying `frames` encrypted. @internal
 */
export function streamReply(
  encryptionKey: Uint8Array,
  prepare: IlpPrepare,
  sequence: bigint,
  frames: Frame[],
  triggeredBy: string,
  fulfillment?: Buffer,
  code = 'F99',
): Buffer {
  const packet: StreamPacket = {
    ilpPacketType: fulfillment ? IlpPacketTypes.Fulfill : IlpPacketTypes.Reject,
    sequence,
    prepareAmount: prepare.amount > MAX_U64 ? MAX_U64 : prepare.amount,
    frames,
  }
  const data = Buffer.from(encryptPacket(encryptionKey, packet))
  return fulfillment ? serializeFulfill(fulfillment, data) : serializeReject(code, triggeredBy, '', data)
}

/**
 * Microtask turns an answer is held for its listeners (answerLater): a promise's continuation
 * takes one, an async function's return one or two, so a meter's next charge after
 * `await meter.charge()` is in well within it.
 */
const ANSWER_TURNS = 6

/** A client connection that is not yet open: streams opened on it ride in its first packet. Call `open()` to send it. */
export function createConnection(options: ClientConnectionOptions): Connection {
  return new Connection({ ...options, role: 'client' })
}

/** What fits the path after an F08 for `sent` (> 0): what the F08 says, and less than `sent` in any case. */
function fitsAfterF08(data: Buffer, sent: bigint): bigint {
  return min(maxPacketAmountFromF08(data, sent) ?? sent / 2n, sent - 1n)
}

/** Rethrows an error on its own (an uncaught exception), out of a packet's handling: a listener's bug surfaces, the packet's answer stands. */
function surface(error: unknown): void {
  queueMicrotask(() => {
    throw error
  })
}

/**
 * A reply's frames within `room` bytes: all of them when they fit; else the connection's first,
 * then the streams' in order, while they fit (a peer naming thousands of streams gets a reply
 * ILP can carry).
 */
function fitFrames(frames: Frame[], room: number): Frame[] {
  let size = 0
  for (const frame of frames) size += frameSize(frame)
  if (size <= room) return frames
  const kept: Frame[] = []
  for (const connectionFrames of [true, false]) {
    for (const frame of frames) {
      if (frame.type.startsWith('Connection') !== connectionFrames) continue
      const bytes = frameSize(frame)
      if (bytes > room) break
      kept.push(frame)
      room -= bytes
    }
  }
  return kept
}

/** A close message we send, cut so the frame always fits a packet. */
function brief(message: string): string {
  return message.length > MAX_CLOSE_MESSAGE ? message.slice(0, MAX_CLOSE_MESSAGE) : message
}

/** A Prepare that carries only `frames` and can never be fulfilled (a rate probe, a last close). */
function unfulfillable(frames: Frame[], amount: bigint): Outgoing {
  return { frames, amount, minimumDestination: 0n, shares: [], data: [], dirty: [], control: [], unfulfillable: true }
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`)
  return value
}

function packetLimit(value: number): number {
  if (!Number.isSafeInteger(value) || value < 3 || value > MAX_PACKETS) throw new RangeError(`packetLimit must be an integer from 3 to 2^31, got ${value}`)
  return value
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}
