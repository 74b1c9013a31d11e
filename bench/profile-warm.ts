/**
 * Where does a warm paid request spend its time? Runs N sequential paid requests on one reused
 * payment socket and records a timeline per request: HTTP phases, the server's collect(), the
 * payer's finish(), and every ILP packet each side sends or answers (through instrumented
 * plugins). Prints one timeline in full and the average of each phase.
 *
 *   node --import tsx bench/profile-warm.ts [requests]
 *
 * What-if switches (experiments only: they monkeypatch the libraries in this process, nothing on disk):
 *   BENCH_FAST_TIMERS=1       setTimeout(fn) / setTimeout(fn, 0) -> setImmediate (ilp-protocol-stream
 *                             yields with setTimeout(resolve) before every packet; Node clamps that to >= 1 ms)
 *   BENCH_NO_PAYER_PROBE=1    the payer's side skips its own 5-packet rate probe when the server's asset is its
 *                             own (exchange rate 1), as ilp-protocol-stream's `exchangeRate` option would
 *   BENCH_NO_SERVER_PROBE=1   the paid server's side (which only receives) skips its rate probe; its first packet
 *                             to the payer is then the hello
 *   BENCH_COLD=1              not a what-if: a new payer per request (cold path) instead of a reused socket
 *   BENCH_LAZY_PAYER_CLOSE=1  the payer does not destroy a fully paid stream in finish() (which sends a
 *                             StreamClose packet of its own); the server's close ends it instead
 */
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { Buffer } from 'node:buffer'
import { startTestnet } from '@cogpay/testnet'
import { createPaymentServer, createPayer, type IlpPlugin, type Payer } from '@cogpay/ilp'
import type { CollectRequest } from '@cogpay/core'
import { createPayFetch, type FetchFunction } from '@cogpay/fetch'
import { createBenchApp } from './app.ts'
import { listen } from './listen.ts'

if (process.env.BENCH_FAST_TIMERS === '1') {
  // What-if experiment only: the libraries yield with setTimeout(fn) (clamped to >= 1 ms by Node)
  // between packets. Turn zero-delay timeouts into setImmediate to see what that costs.
  const original = globalThis.setTimeout
  const patched = ((fn: (...args: unknown[]) => void, delay?: number, ...args: unknown[]) => {
    if (delay === undefined || delay === 0) {
      const immediate = setImmediate(fn, ...args)
      return { ref: () => immediate, unref: () => immediate, hasRef: () => true, refresh: () => immediate, [Symbol.toPrimitive]: () => 0, _immediate: immediate } as unknown as NodeJS.Timeout
    }
    return original(fn, delay, ...args)
  }) as unknown as typeof setTimeout
  const originalClear = globalThis.clearTimeout
  globalThis.setTimeout = patched
  globalThis.clearTimeout = ((t: unknown) => {
    const immediate = (t as { _immediate?: NodeJS.Immediate } | undefined)?._immediate
    if (immediate) clearImmediate(immediate)
    else originalClear(t as NodeJS.Timeout)
  }) as typeof clearTimeout
}

const require = createRequire(new URL('../packages/ilp/package.json', import.meta.url))
const streamRequire = createRequire(new URL('../node_modules/ilp-protocol-stream/package.json', import.meta.url))

if (process.env.BENCH_NO_PAYER_PROBE === '1' || process.env.BENCH_NO_SERVER_PROBE === '1') {
  const { Connection } = require('ilp-protocol-stream') as {
    Connection: { prototype: { determineExchangeRate(this: ProbeConnection): Promise<void> } }
  }
  const Rational = streamRequire('ilp-protocol-stream/dist/src/util/rational').default as {
    fromNumber(value: number, unsigned: boolean): unknown
  }
  type ProbeConnection = {
    isServer: boolean
    exchangeRate: unknown
    sourceAssetCode: string
    sourceAssetScale: number
    destinationAssetCode: string
    destinationAssetScale: number
  }
  const determine = Connection.prototype.determineExchangeRate
  Connection.prototype.determineExchangeRate = async function (this: ProbeConnection) {
    const sameAsset = this.destinationAssetCode === this.sourceAssetCode && this.destinationAssetScale === this.sourceAssetScale
    const payerSide = this.isServer && sameAsset && process.env.BENCH_NO_PAYER_PROBE === '1'
    // The paid server (the STREAM client) only receives on this socket: it needs no rate to send.
    const serverSide = !this.isServer && process.env.BENCH_NO_SERVER_PROBE === '1'
    if (payerSide || serverSide) {
      this.exchangeRate = Rational.fromNumber(1, true)
      return
    }
    return determine.call(this)
  }
}

if (process.env.BENCH_LAZY_PAYER_CLOSE === '1') {
  const { DataAndMoneyStream } = require('ilp-protocol-stream') as {
    DataAndMoneyStream: { prototype: { destroy(this: LazyStream, error?: Error): unknown } }
  }
  type LazyStream = {
    isServer: boolean
    destroyed: boolean
    _remoteReceived: { lessThan(other: unknown): boolean }
    _remoteReceiveMax: unknown
  }
  const destroy = DataAndMoneyStream.prototype.destroy
  DataAndMoneyStream.prototype.destroy = function (this: LazyStream, error?: Error) {
    // The payer is the STREAM server. A fully paid stream is left for the server's StreamClose to
    // end (it arrives with the server's next packet); destroy it later only if it never does.
    if (this.isServer && !error && !this._remoteReceived.lessThan(this._remoteReceiveMax)) {
      setTimeout(() => {
        if (!this.destroyed) destroy.call(this)
      }, 5000).unref()
      return this
    }
    return destroy.call(this, error)
  }
}
const IlpPacket = require('ilp-packet') as {
  deserializeIlpPrepare(data: Buffer): { amount: string; data: Buffer }
  deserializeIlpFulfill(data: Buffer): { data: Buffer }
  deserializeIlpReject(data: Buffer): { code: string; data: Buffer }
}
const undiciRequire = createRequire(new URL('../packages/fetch/package.json', import.meta.url))
const undici = undiciRequire('undici') as { fetch: FetchFunction }

const streamPacket = streamRequire('ilp-protocol-stream/dist/src/packet') as {
  Packet: { decryptAndDeserialize(key: Buffer, data: Buffer): Promise<{ frames: { type: number; [k: string]: unknown }[] }> }
  FrameType: Record<number, string>
}
const streamCrypto = streamRequire('ilp-protocol-stream/dist/src/crypto') as {
  generatePskEncryptionKey(secret: Buffer): Promise<Buffer>
}

type Event = { t: number; what: string; data?: Buffer | undefined }
let timeline: Event[] = []
let t0 = 0
const mark = (what: string, data?: Buffer) => timeline.push({ t: performance.now() - t0, what, data })

/** The STREAM frames inside an ILP packet (decrypted with the connection's shared secret). */
async function frames(data: Buffer, key: Buffer): Promise<string> {
  try {
    const inner =
      data[0] === 12
        ? IlpPacket.deserializeIlpPrepare(data).data
        : data[0] === 13
          ? IlpPacket.deserializeIlpFulfill(data).data
          : IlpPacket.deserializeIlpReject(data).data
    if (inner.length === 0) return ''
    const packet = await streamPacket.Packet.decryptAndDeserialize(key, inner)
    return packet.frames
      .map((f) => {
        const name = streamPacket.FrameType[f.type] ?? String(f.type)
        const id = f.streamId === undefined ? '' : `#${String(f.streamId)}`
        const extra =
          name === 'StreamMoney' ? `=${String(f.shares)}` : name === 'StreamMaxMoney' ? `(max ${String(f.receiveMax)}, got ${String(f.totalReceived)})` : ''
        return `${name}${id}${extra}`
      })
      .join(' ')
  } catch {
    return '(not STREAM)'
  }
}

function describe(data: Buffer): string {
  try {
    switch (data[0]) {
      case 12: {
        const p = IlpPacket.deserializeIlpPrepare(data)
        return `prepare amt=${p.amount}`
      }
      case 13:
        return 'fulfill'
      case 14: {
        const r = IlpPacket.deserializeIlpReject(data)
        return `reject ${r.code}`
      }
    }
  } catch {}
  return `type ${data[0]}`
}

function instrument(plugin: IlpPlugin, side: string): void {
  const send = plugin.sendData.bind(plugin)
  plugin.sendData = async (data) => {
    mark(`${side} -> ${describe(data)}`, data)
    const reply = await send(data)
    mark(`${side} <- ${describe(reply)}`, reply)
    return reply
  }
  const register = plugin.registerDataHandler.bind(plugin)
  plugin.registerDataHandler = (handler) =>
    register(async (data) => {
      mark(`${side} in  ${describe(data)}`, data)
      const reply = await handler(data)
      mark(`${side} out ${describe(reply)}`, reply)
      return reply
    })
}

const requests = Number(process.argv[2] ?? 300)
const cold = process.env.BENCH_COLD === '1'
const testnet = await startTestnet()
const receiver = createPaymentServer({ uplink: testnet.uri('server') })
instrument(receiver.uplink.plugin, 'S')
await receiver.uplink.connect()

let secret: Buffer | undefined
/** A started, instrumented payer. */
async function newPayer(): Promise<Payer> {
  const payer = createPayer({ uplink: testnet.uri('payer') })
  instrument(payer.plugin, 'P')
  await payer.start()
  const expect = payer.expect.bind(payer)
  payer.expect = async (origin, maxSpend) => {
    const pending = await expect(origin, maxSpend)
    secret = Buffer.from(pending.headers.secret)
    return pending
  }
  return payer
}
const payer = await newPayer()
const payers = [payer]
const collect = receiver.collect.bind(receiver)
receiver.collect = async (request: CollectRequest) => {
  mark('S collect() start')
  const collection = await collect(request)
  mark('S collect() resolved')
  return collection
}
const app = await listen(createBenchApp({ receiver }))
const timedFetch: FetchFunction = async (url, init) => {
  mark('C http request sent')
  const response = await undici.fetch(url, init)
  mark('C http response headers')
  return response
}
let payFetch = createPayFetch({ payer, maxSpend: 1000n, fetch: timedFetch })

const phases = new Map<string, number[]>()
const add = (name: string, value: number) => {
  const list = phases.get(name) ?? []
  list.push(value)
  phases.set(name, list)
}
const timelines: Event[][] = []
const secrets: (Buffer | undefined)[] = []
const totals: { i: number; total: number }[] = []
for (let i = 0; i < requests; i++) {
  if (cold) {
    // A new payer per request (started before the clock): a new STREAM connection + rate probe.
    const fresh = await newPayer()
    payers.push(fresh)
    payFetch = createPayFetch({ payer: fresh, maxSpend: 1000n, fetch: timedFetch })
  }
  timeline = []
  t0 = performance.now()
  const response = await payFetch(`${app.url}/paid`)
  mark('C finish() resolved (payFetch returned)')
  await response.text()
  mark('C body read')
  secrets[i] = secret
  const at = (what: string) => timeline.find((e) => e.what === what)?.t ?? NaN
  if (i >= 20) {
    add('total', at('C body read'))
    add('client -> server collect() start', at('S collect() start'))
    add('collect() (server)', at('S collect() resolved') - at('S collect() start'))
    add('collect() resolved -> response headers at client', at('C http response headers') - at('S collect() resolved'))
    add('finish() (payer settle)', at('C finish() resolved (payFetch returned)') - at('C http response headers'))
    // Warm: the first server packet after collect() began carries the hello. (Cold: the rate
    // probes come first, so these splits would mislead: read the timeline instead.)
    const start = cold ? NaN : at('S collect() start')
    const after = (from: number, re: RegExp) => timeline.find((e) => e.t >= from && re.test(e.what))?.t ?? NaN
    const helloOut = after(start, /^S -> prepare/)
    const helloIn = after(helloOut, /^P in  prepare/)
    const moneyOut = after(helloIn, /^P -> prepare amt=100/)
    const moneyIn = after(moneyOut, /^S in  prepare amt=100/)
    if (!cold) {
      add('  collect: start -> server sends hello packet', helloOut - start)
      add('  collect: hello packet S -> P (hub, one way)', helloIn - helloOut)
      add('  collect: payer reacts (stream, hello, setSendMax, loop)', moneyOut - helloIn)
      add('  collect: money packet P -> S (hub, one way)', moneyIn - moneyOut)
      add('  collect: money in -> collect() resolved', at('S collect() resolved') - moneyIn)
    }
    add('packets per request (both sides, sent)', timeline.filter((e) => / -> /.test(e.what)).length)
    totals.push({ i, total: at('C body read') })
  }
  timelines.push(timeline)
}
// Wait for the trailing packets of the last request, for the printed timeline.
await new Promise((resolve) => setTimeout(resolve, 50))

const median = [...totals].sort((a, b) => a.total - b.total)[Math.floor(totals.length / 2)]!
const sample = timelines[median.i]!
console.log(`timeline of request #${median.i}, the median one (ms since payFetch() was called; S = server uplink, P = payer uplink):`)
const sampleSecret = secrets[median.i]
const key = sampleSecret ? await streamCrypto.generatePskEncryptionKey(sampleSecret) : undefined
for (const e of sample) {
  const inside = e.data && key && !/ in | <- /.test(e.what) ? await frames(e.data, key) : e.data && key ? await frames(e.data, key) : ''
  console.log(`  ${e.t.toFixed(3).padStart(8)}  ${e.what.padEnd(40)} ${inside}`)
}
console.log(`\naverages over ${requests - 20} ${cold ? 'cold' : 'warm'} requests (ms):`)
for (const [name, values] of phases) {
  const sorted = [...values].sort((a, b) => a - b)
  const mean = values.reduce((a, b) => a + b, 0) / values.length
  console.log(`  ${name.padEnd(52)} mean ${mean.toFixed(3).padStart(7)}  p50 ${sorted[Math.floor(sorted.length / 2)]!.toFixed(3).padStart(7)}`)
}

await app.close()
await Promise.allSettled(payers.map((p) => p.close()))
await receiver.close()
await testnet.close()
