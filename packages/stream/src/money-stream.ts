import { Buffer } from 'node:buffer'
import { EventEmitter } from 'node:events'
import { CloseCodes } from './close-codes.js'
import { MAX_U64 } from './oer.js'

/** How a stream or connection ended: an RFC 29 close code and message, and which side closed it. */
export interface CloseInfo {
  /** One of `CloseCodes` (`NoError` for a clean close). */
  readonly code: number
  readonly message: string
  /** True when the peer closed it (a close frame), false when this side did. */
  readonly byPeer: boolean
}

/**
 * Events of a {@link MoneyStream}. Listeners are optional: no event is `'error'`, so none can crash
 * a process. A listener that throws while a packet is answered (`'money'` above all) does not
 * change the answer: the error is rethrown on its own, as an uncaught exception.
 */
export interface MoneyStreamEvents {
  /** Money arrived on the stream (a fulfilled Prepare's share), in this side's units. */
  money: [amount: bigint]
  /** Money sent on the stream was fulfilled, in this side's units. */
  outgoingMoney: [amount: bigint]
  /** Bytes of the peer's data, in order. */
  data: [chunk: Buffer]
  /** The peer closed the stream (after all its data was handed on). */
  end: []
  /** The stream is closed, either side first. Its id is free again. */
  close: [info: CloseInfo]
  /**
   * MoneyBlocked, our side: this stream has money to send (its send max) but the peer's receive
   * max allows no more. Emitted when it becomes blocked.
   */
  moneyBlocked: [state: { readonly remoteReceiveMax: bigint; readonly remoteReceived: bigint }]
  /** MoneyBlocked, the peer's side: the peer says it wants to send more than our receive max (a StreamMoneyBlocked frame). */
  remoteMoneyBlocked: [state: { readonly sendMax: bigint; readonly totalSent: bigint }]
  /**
   * The peer's receive max asks for more than this stream's send max leaves, and nothing is in
   * flight: the stream will send nothing more until its send max is raised. (A payer at its cap.)
   */
  sendMaxReached: [state: { readonly remoteReceiveMax: bigint; readonly remoteReceived: bigint }]
  /** The peer changed its receive max or reported what it received (a StreamMaxMoney frame). */
  remoteReceiveMax: [state: { readonly remoteReceiveMax: bigint; readonly remoteReceived: bigint }]
  /** DataBlocked, our side: written bytes wait on the peer's max offset. */
  dataBlocked: [state: { readonly remoteMaxOffset: number; readonly writeOffset: number }]
  /** DataBlocked, the peer's side: it wants to send past our max offset (a StreamDataBlocked frame). */
  remoteDataBlocked: [state: { readonly maxOffset: bigint }]
  /** The peer sent a StreamReceipt (RFC 39) for this stream: its bytes, as {@link MoneyStream.receipt} now holds them. */
  receipt: [receipt: Buffer]
  /** Money could not be sent: the exchange rate fell below the minimum, or the path carries nothing. */
  moneyError: [message: string]
}

/** A slice of outgoing bytes at its offset in the stream. @internal */
export interface DataSegment {
  readonly offset: number
  readonly data: Buffer
}

/** What a connection tells a stream it owns. @internal */
export interface StreamOwner {
  /** Something changed that a packet should carry (money, data, a max, a close). */
  wake(stream: MoneyStream): void
  /** The stream handed on `bytes` of the peer's data (the connection's data limit counts them). */
  delivered(bytes: number): void
  /** The stream closed: free its id and forget it. */
  release(stream: MoneyStream): void
  /** Bytes each stream may hold out of order (its receive window). */
  readonly streamWindow: number
}

/**
 * One STREAM stream (RFC 29 §3): money and data, both ways, with flow control on each. A
 * {@link Connection} creates it (`createStream`, or the peer opening one, its `'stream'` event).
 *
 * Money out is bounded by `sendMax`, in this side's units, and nothing else can raise it: the
 * peer's receive max only lowers what is sent. Money in is bounded by `receiveMax`; a packet that
 * would pass it is turned away whole. Data in is handed on in order as `'data'`, at once, so the
 * receive window only holds bytes that arrived out of order.
 */
export class MoneyStream extends EventEmitter<MoneyStreamEvents> {
  // Money out
  #sendMax = 0n
  #totalSent = 0n
  /** In flight: sent in Prepares not yet answered. */
  #held = 0n
  /** Sent in Prepares whose outcome was never learned; counted as spent for `sendMax`. */
  #inDoubt = 0n
  #remoteReceiveMax = 0n
  #remoteReceived = 0n
  /** The peer's expected share of what is in flight, in its units. */
  #heldDestination = 0n
  #blockedAt: bigint | undefined
  #reachedAt: bigint | undefined
  #moneyError: string | undefined
  #fruitless = 0
  // Money in
  #receiveMax = 0n
  #totalReceived = 0n
  // Data out
  #pending: DataSegment[] = []
  #writeOffset = 0
  #unacked = 0
  #remoteMaxOffset = ASSUMED_MAX_OFFSET
  #dataBlockedAt = -1
  /** Highest offset ever loaded into a packet (for the connection's data limit). */
  sentOffset = 0
  // Data in
  #readOffset = 0
  /**
   * Bytes that arrived ahead of `#readOffset`, each at its offset modulo the length: a ring as
   * long as the most the stream accepts ahead (see `#earlyCapacity`), so whatever a peer sends,
   * it holds no more. Allocated while bytes wait, with `#earlyHeld` (1 where a byte is held).
   */
  #early: Buffer | undefined
  #earlyHeld: Uint8Array | undefined
  /** The end of the furthest byte held early. */
  #earlyEnd = 0
  #advertisedMaxOffset = 0
  #receipt: Buffer | undefined
  // Lifecycle
  #ending = false
  #remoteClosed = false
  #closed: CloseInfo | undefined
  /** Our max money or max data changed and the peer should hear it. @internal */
  dirty = false
  /**
   * For a receiver that raises its receive max in answer to the money, a few microtasks later
   * (a meter charging its next step after `await meter.charge()`): the answer to a Prepare that
   * pays this stream waits for the raise and carries it, when the connection's Prepares are
   * answered with `handleDataLater`. Off by default: an answer waits for nothing.
   */
  holdAnswers = false
  #flushWaiters: (() => void)[] = []

  /** @internal */
  constructor(
    /** The stream id: odd when the client opened it, even when the server did. */
    readonly id: number,
    private readonly owner: StreamOwner,
  ) {
    super()
    this.#advertisedMaxOffset = this.maxIncomingOffset
  }

  // --- money out -----------------------------------------------------------------------------

  /** The most this stream will ever send in all, in this side's units. */
  get sendMax(): bigint {
    return this.#sendMax
  }

  /** Sent and fulfilled, in this side's units. */
  get totalSent(): bigint {
    return this.#totalSent
  }

  /** Sent in Prepares not answered yet. */
  get inFlight(): bigint {
    return this.#held
  }

  /** Fulfilled shares of this stream in a row of which nothing arrived (as the receiver said). @internal */
  get fruitlessShares(): number {
    return this.#fruitless
  }

  /** Sent in Prepares whose outcome was never learned (no answer before expiry): may have arrived. Counted against `sendMax`. */
  get inDoubt(): bigint {
    return this.#inDoubt
  }

  /** What the peer accepts on this stream in total, in its units (0 until it says). */
  get remoteReceiveMax(): bigint {
    return this.#remoteReceiveMax
  }

  /** What the peer says it has received on this stream, in its units. */
  get remoteReceived(): bigint {
    return this.#remoteReceived
  }

  /** Why money can no longer be sent on this stream, if it cannot. */
  get moneyError(): string | undefined {
    return this.#moneyError
  }

  /**
   * Sets the most this stream sends in all. Lowering it below what is sent or in flight stops
   * sending at once (packets in flight are not recalled). Throws a RangeError for a negative value.
   */
  setSendMax(amount: bigint): void {
    checkAmount(amount, 'sendMax')
    this.#sendMax = amount
    this.#reachedAt = undefined
    this.owner.wake(this)
  }

  /** Money this stream may still put in packets: its send max less what is sent, in flight or in doubt. @internal */
  get sendable(): bigint {
    if (this.#ending || this.#closed || this.#moneyError) return 0n
    const left = this.#sendMax - this.#totalSent - this.#held - this.#inDoubt
    return left > 0n ? left : 0n
  }

  /** Room the peer's receive max leaves, in its units, less what is in flight to it. @internal */
  get remoteRoom(): bigint {
    const room = this.#remoteReceiveMax - this.#remoteReceived - this.#heldDestination
    return room > 0n ? room : 0n
  }

  /** @internal */
  hold(amount: bigint, destination: bigint): void {
    this.#held += amount
    this.#heldDestination += destination
  }

  /**
   * A Prepare carrying `amount` (expected to deliver `destination`) was fulfilled; `arrived`: the
   * peer's answer shows something arrived on this stream. @internal
   */
  settle(amount: bigint, destination: bigint, delivered: bigint, toldTotal: boolean, arrived = delivered > 0n): void {
    this.#held -= amount
    this.#heldDestination -= destination
    this.#totalSent += amount
    if (amount > 0n) this.#fruitless = arrived ? 0 : this.#fruitless + 1
    // The reply's StreamMaxMoney, when it had one, already counts this packet.
    if (!toldTotal) this.#remoteReceived += delivered
    this.emit('outgoingMoney', amount)
    this.#checkReached()
  }

  /** A Prepare carrying `amount` was rejected: nothing left. @internal */
  release(amount: bigint, destination: bigint): void {
    this.#held -= amount
    this.#heldDestination -= destination
    this.#checkReached()
  }

  /** A Prepare carrying `amount` was never answered: it may have arrived. @internal */
  doubt(amount: bigint, destination: bigint): void {
    this.#held -= amount
    this.#heldDestination -= destination
    this.#inDoubt += amount
  }

  /**
   * The peer's StreamMaxMoney. Frames cross on the way (a reply written before the peer raised
   * its max can arrive after the raise), and a frame carries no version but the peer's total
   * received, which only grows: a frame with a higher total is newer, and takes its max as it is
   * (lowered too); at the same total the higher max wins, unless `refused` (the peer just turned
   * money away for it: that max is as of now); a lower total is old news. @internal
   */
  remoteMoney(receiveMax: bigint, totalReceived: bigint, refused = false): void {
    const before = this.#remoteReceiveMax
    const receivedBefore = this.#remoteReceived
    if (totalReceived > this.#remoteReceived) {
      this.#remoteReceived = totalReceived
      this.#remoteReceiveMax = receiveMax
    } else if (totalReceived === this.#remoteReceived) {
      this.#remoteReceiveMax = refused || receiveMax > this.#remoteReceiveMax ? receiveMax : this.#remoteReceiveMax
    } else if (!refused) return
    else this.#remoteReceiveMax = receiveMax
    if (before === this.#remoteReceiveMax && receivedBefore === this.#remoteReceived) return
    this.#blockedAt = undefined
    this.emit('remoteReceiveMax', { remoteReceiveMax: this.#remoteReceiveMax, remoteReceived: this.#remoteReceived })
    this.#checkReached()
    this.owner.wake(this)
  }

  /** Called by the packet loader when this stream has money but the peer's max allows none. @internal */
  blocked(): boolean {
    if (this.#blockedAt === this.#remoteReceiveMax) return false
    this.#blockedAt = this.#remoteReceiveMax
    this.emit('moneyBlocked', { remoteReceiveMax: this.#remoteReceiveMax, remoteReceived: this.#remoteReceived })
    return true
  }

  /** @internal */
  failMoney(message: string): void {
    if (this.#moneyError || this.#closed) return
    this.#moneyError = message
    this.emit('moneyError', message)
  }

  #checkReached(): void {
    if (this.#held !== 0n || this.#closed) return
    if (this.#totalSent + this.#inDoubt < this.#sendMax) return
    if (this.#remoteReceiveMax <= this.#remoteReceived) return
    if (this.#reachedAt === this.#remoteReceiveMax) return
    this.#reachedAt = this.#remoteReceiveMax
    this.emit('sendMaxReached', { remoteReceiveMax: this.#remoteReceiveMax, remoteReceived: this.#remoteReceived })
  }

  // --- money in ------------------------------------------------------------------------------

  /** The most this stream accepts in all, in this side's units. */
  get receiveMax(): bigint {
    return this.#receiveMax
  }

  /** Received, in this side's units. */
  get totalReceived(): bigint {
    return this.#totalReceived
  }

  /**
   * Sets the most this stream accepts in all. It may be lowered (never below what has arrived):
   * a packet in flight that would pass it is turned away. Throws a RangeError for a negative value.
   */
  setReceiveMax(amount: bigint): void {
    checkAmount(amount, 'receiveMax')
    const next = amount < this.#totalReceived ? this.#totalReceived : amount
    if (next === this.#receiveMax) return
    this.#receiveMax = next
    this.dirty = true
    this.owner.wake(this)
  }

  /**
   * True when the stream may take `amount` more (which the sender paid `shares` of its own units
   * for; all of a packet's StreamMoney frames for the stream, summed). Never past 2^64-1 in all.
   * In one asset: only within its receive max. Across assets a sender cannot hit the max exactly
   * (one of its units may be worth many of ours, and it rounds up), so a packet that starts below
   * the max may pass it by 1 % of the max (as ilp-protocol-stream allows), or by less than one of
   * the sender's units as the packet prices it (`amount / shares`: a packet one unit smaller would
   * have left the max short), but never by more than the max itself. The shares are the peer's
   * word, so that last bound is ours: whatever it claims, a stream ends at most at twice its
   * receive max, and only when it was below it. @internal
   */
  canReceive(amount: bigint, shares: bigint, crossing: boolean): boolean {
    if (this.#closed || this.#remoteClosed) return false
    const after = this.#totalReceived + amount
    if (after > MAX_U64) return false
    if (after <= this.#receiveMax) return true
    if (!crossing || this.#totalReceived >= this.#receiveMax) return false
    const over = after - this.#receiveMax
    if (over <= this.#receiveMax / 100n) return true
    return shares > 0n && over * shares < amount && over <= this.#receiveMax
  }

  /**
   * Counts money in (checked by {@link canReceive}); the `'money'` event is {@link announceMoney},
   * once the packet's answer is final. Returns what undoes it, should that answer fail. @internal
   */
  credit(amount: bigint): () => void {
    const [received, max] = [this.#totalReceived, this.#receiveMax]
    this.#totalReceived += amount
    if (this.#totalReceived > this.#receiveMax) this.#receiveMax = this.#totalReceived
    return () => {
      this.#totalReceived = received
      this.#receiveMax = max
    }
  }

  /** Emits `'money'` for money {@link credit}ed. @internal */
  announceMoney(amount: bigint): void {
    if (amount > 0n) this.emit('money', amount)
  }

  // --- data out ------------------------------------------------------------------------------

  /** Bytes written and not yet acknowledged by the peer. */
  get writableLength(): number {
    return this.#unacked
  }

  /** Total bytes written. */
  get writeOffset(): number {
    return this.#writeOffset
  }

  /** The peer's max offset on this stream (its receive window's end). */
  get remoteMaxOffset(): number {
    return this.#remoteMaxOffset
  }

  /** Queues bytes (a string is UTF-8) for the peer. Returns false once the stream is ending or closed. */
  write(data: Uint8Array | string): boolean {
    if (this.#ending || this.#closed) return false
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    if (bytes.length === 0) return true
    this.#pending.push({ offset: this.#writeOffset, data: bytes })
    this.#writeOffset += bytes.length
    this.#unacked += bytes.length
    this.owner.wake(this)
    return true
  }

  /** Resolves once every byte written so far is acknowledged by the peer, or the stream has closed. */
  flushed(): Promise<void> {
    if (this.#unacked === 0 || this.#closed) return Promise.resolve()
    return new Promise((resolve) => this.#flushWaiters.push(resolve))
  }

  /** True when bytes wait to be put in a packet. @internal */
  get hasData(): boolean {
    return this.#pending.length > 0 && !this.#closed
  }

  /**
   * Takes up to `maxBytes` to send, within the peer's max offset and, for bytes never sent
   * before, `newBytesRoom` (the connection's limit). Returns undefined when none fits. @internal
   */
  takeData(maxBytes: number, newBytesRoom: number): DataSegment | undefined {
    const first = this.#pending[0]
    if (!first) return undefined
    // Bytes sent before (a resend) are not new to the connection's limit.
    maxBytes = Math.min(maxBytes, Math.max(0, this.sentOffset - first.offset) + Math.max(0, newBytesRoom))
    if (maxBytes <= 0) return undefined
    const room = this.#remoteMaxOffset - first.offset
    if (room <= 0) return undefined
    const size = Math.min(maxBytes, room, first.data.length)
    let segment: DataSegment
    if (size === first.data.length) {
      this.#pending.shift()
      segment = first
    } else {
      segment = { offset: first.offset, data: first.data.subarray(0, size) }
      this.#pending[0] = { offset: first.offset + size, data: first.data.subarray(size) }
    }
    const end = segment.offset + segment.data.length
    if (end > this.sentOffset) this.sentOffset = end
    return segment
  }

  /**
   * Called by the packet loader when bytes wait and none could go: true (and `'dataBlocked'`)
   * when they wait on the peer's max offset, once per max offset. @internal
   */
  dataBlocked(): boolean {
    const first = this.#pending[0]
    if (!first || first.offset < this.#remoteMaxOffset || this.#dataBlockedAt === this.#remoteMaxOffset) return false
    this.#dataBlockedAt = this.#remoteMaxOffset
    this.emit('dataBlocked', { remoteMaxOffset: this.#remoteMaxOffset, writeOffset: this.#writeOffset })
    return true
  }

  /** The peer acknowledged a segment. @internal */
  acked(segment: DataSegment): void {
    this.#unacked -= segment.data.length
    if (this.#unacked === 0) this.#flushedNow()
    this.#maybeClose()
  }

  /** A segment's packet was rejected or lost: send it again (before later bytes). @internal */
  requeue(segment: DataSegment): void {
    if (this.#closed) return
    let index = this.#pending.findIndex((pending) => pending.offset > segment.offset)
    if (index === -1) index = this.#pending.length
    this.#pending.splice(index, 0, segment)
    this.owner.wake(this)
  }

  /** The peer's StreamMaxData. @internal */
  remoteData(maxOffset: bigint): void {
    const offset = maxOffset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(maxOffset)
    if (offset <= this.#remoteMaxOffset) return
    this.#remoteMaxOffset = offset
    this.owner.wake(this)
  }

  #flushedNow(): void {
    const waiters = this.#flushWaiters
    this.#flushWaiters = []
    for (const resolve of waiters) resolve()
  }

  // --- data in -------------------------------------------------------------------------------

  /**
   * The max offset this side advertises: bytes handed on plus the window, and never below the
   * 16,384 bytes every sender assumes before it hears (RFC 29 §3.3), whatever the window. @internal
   */
  get maxIncomingOffset(): number {
    return Math.max(this.#readOffset + this.owner.streamWindow, ASSUMED_MAX_OFFSET)
  }

  /** The most bytes ever held ahead of the read offset (the span `maxIncomingOffset` allows). */
  get #earlyCapacity(): number {
    return Math.max(this.owner.streamWindow, ASSUMED_MAX_OFFSET)
  }

  /** Bytes handed on so far. @internal */
  get readOffset(): number {
    return this.#readOffset
  }

  /**
   * The latest StreamReceipt (RFC 39) the peer sent on this stream, as it sent it: opaque bytes
   * for a verifier that shares the receipt secret (nothing here reads or checks them). With
   * several packets in flight, the last to arrive. Undefined until one does.
   */
  get receipt(): Buffer | undefined {
    return this.#receipt
  }

  /** The peer's StreamReceipt, copied (never a view into its packet). @internal */
  remoteReceipt(receipt: Uint8Array): void {
    if (this.#closed) return
    this.#receipt = Buffer.from(receipt)
    this.emit('receipt', this.#receipt)
  }

  /**
   * The peer's bytes at `offset`. Duplicates (a resent packet) are dropped; bytes past the max
   * offset are a flow control error (returns false). Bytes ahead of the read offset are copied
   * into the window's ring (never kept as views into the packet), overlaps overwrite each other,
   * and each byte is handed on once: time and memory are linear in what arrives, the memory at
   * most the window, whatever the peer sends. @internal
   */
  pushData(offset: bigint, data: Uint8Array): boolean {
    if (this.#closed || this.#remoteClosed) return true
    const start = Number(offset)
    const end = start + data.length
    if (end > this.maxIncomingOffset) return false
    if (end <= this.#readOffset || data.length === 0) return true
    if (start > this.#readOffset) {
      this.#holdEarly(start, data)
      return true
    }
    const from = this.#readOffset
    // Those bytes may have come early too: the packet's copy goes on, the held one is forgotten.
    this.#markEarly(from, end, 0)
    this.#deliver(Buffer.from(data.buffer, data.byteOffset + (from - start), end - from))
    this.#deliverEarly()
    if (this.maxIncomingOffset - this.#advertisedMaxOffset >= this.owner.streamWindow / 2) this.dirty = true
    return true
  }

  #holdEarly(start: number, data: Uint8Array): void {
    const size = this.#earlyCapacity
    this.#early ??= Buffer.alloc(size)
    this.#earlyHeld ??= new Uint8Array(size)
    // `data` lies within (read offset, max offset]: shorter than the ring, so at most two pieces.
    const at = start % size
    const first = Math.min(data.length, size - at)
    this.#early.set(data.subarray(0, first), at)
    this.#early.set(data.subarray(first), 0)
    this.#markEarly(start, start + data.length, 1)
    if (start + data.length > this.#earlyEnd) this.#earlyEnd = start + data.length
  }

  /** Marks bytes `from` to `to` (offsets, less than the ring apart) as held or not. */
  #markEarly(from: number, to: number, mark: 0 | 1): void {
    const held = this.#earlyHeld
    if (!held || to <= from) return
    const size = held.length
    const at = from % size
    const first = Math.min(to - from, size - at)
    held.fill(mark, at, at + first)
    held.fill(mark, 0, to - from - first)
  }

  /** Hands on the held bytes that now follow on: each run once, copied out of the ring. */
  #deliverEarly(): void {
    const early = this.#early
    const held = this.#earlyHeld
    if (!early || !held) return
    const size = early.length
    while (!this.#closed && this.#readOffset < this.#earlyEnd) {
      const at = this.#readOffset % size
      if (held[at] !== 1) break
      const gap = held.indexOf(0, at)
      const stop = Math.min(gap === -1 ? size : gap, at + (this.#earlyEnd - this.#readOffset))
      held.fill(0, at, stop)
      this.#deliver(Buffer.from(early.subarray(at, stop)))
    }
    if (this.#readOffset >= this.#earlyEnd) this.#dropEarly()
  }

  #dropEarly(): void {
    this.#early = undefined
    this.#earlyHeld = undefined
    this.#earlyEnd = 0
  }

  /** @internal */
  advertised(): void {
    this.#advertisedMaxOffset = this.maxIncomingOffset
  }

  #deliver(chunk: Buffer): void {
    this.#readOffset += chunk.length
    this.owner.delivered(chunk.length)
    this.emit('data', chunk)
  }

  // --- lifecycle -----------------------------------------------------------------------------

  /** True until the stream closes. */
  get isOpen(): boolean {
    return !this.#closed
  }

  /** True once the peer closed the stream. */
  get remoteClosed(): boolean {
    return this.#remoteClosed
  }

  /** How the stream closed, once it has. */
  get closeInfo(): CloseInfo | undefined {
    return this.#closed
  }

  /**
   * Closes the stream cleanly: no new money leaves, the bytes written are delivered, then the
   * peer is told (StreamClose, NoError). Packets in flight are answered first.
   */
  end(): void {
    if (this.#ending || this.#closed) return
    this.#ending = true
    this.#maybeClose()
    // Closed at once (nothing left to deliver): the close is queued already, nothing to send.
    if (!this.#closed) this.owner.wake(this)
  }

  /**
   * Closes the stream now, with an error the peer is told (`ApplicationError` and `message`), or
   * cleanly without one. Bytes not yet delivered are dropped.
   */
  destroy(message?: string): void {
    if (this.#closed) return
    this.#ending = true
    this.#finish(
      message === undefined
        ? { code: CloseCodes.NoError, message: '', byPeer: false }
        : { code: CloseCodes.ApplicationError, message, byPeer: false },
    )
  }

  /** An ending stream closes once every byte is acknowledged and no money is in flight. */
  #maybeClose(): void {
    if (!this.#ending || this.#closed) return
    if (this.#unacked > 0 || this.#held > 0n) return
    this.#finish({ code: CloseCodes.NoError, message: '', byPeer: false })
  }

  /** Called after every answer: an ending stream may be ready to close now. @internal */
  answered(): void {
    this.#maybeClose()
  }

  /** The peer's StreamClose. @internal */
  remoteClose(code: number, message: string): void {
    if (this.#closed || this.#remoteClosed) return
    this.#remoteClosed = true
    this.emit('end')
    this.#finish({ code, message, byPeer: true })
  }

  /** The connection closed under the stream. @internal */
  connectionClosed(info: CloseInfo): void {
    this.#finish(info)
  }

  #finish(info: CloseInfo): void {
    if (this.#closed) return
    this.#closed = info
    this.#pending = []
    this.#dropEarly()
    this.#flushedNow()
    this.owner.release(this)
    this.emit('close', info)
  }
}

/** The max offset a sender assumes on a stream until the receiver says (RFC 29 §3.3). */
const ASSUMED_MAX_OFFSET = 16_384

function checkAmount(amount: bigint, name: string): void {
  if (typeof amount !== 'bigint' || amount < 0n || amount > MAX_U64) {
    throw new RangeError(`${name} must be a bigint from 0 to 2^64-1, got ${String(amount)}`)
  }
}
