/**
 * The floor under a paid request: raw ILP Prepare→Fulfill round trips through the same hub, with
 * no STREAM. Two BTP accounts on the hub (@cogpay/ilp's createPlugin, its own BTP client): the
 * receiver, in the paid server's process, fulfills every Prepare at once; the sender, in the load
 * generator's process, sends Prepares with a known condition to the receiver's address. The hops
 * are a paid request's: load generator → hub → server and back.
 */
import { Buffer } from 'node:buffer'
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { createPlugin, type IlpPlugin } from '@cogpay/ilp'
import { now, sequential, type Bounds, type Stats } from './stats.ts'

// ilp-packet is @cogpay/ilp's dependency, not the root's: load that very copy.
const IlpPacket = createRequire(new URL('../packages/ilp/package.json', import.meta.url))('ilp-packet') as {
  serializeIlpPrepare(prepare: {
    amount: string
    executionCondition: Buffer
    expiresAt: Date
    destination: string
    data: Buffer
  }): Buffer
  serializeIlpFulfill(fulfill: { fulfillment: Buffer; data: Buffer }): Buffer
  Type: { TYPE_ILP_FULFILL: number }
}

/** The fulfillment every floor Prepare is sent with (its SHA-256 is the condition). */
export const FLOOR_FULFILLMENT = Buffer.alloc(32, 7)

/** Connects a BTP account that fulfills every Prepare at once. Returns its plugin. */
export async function startFloorReceiver(uri: string): Promise<IlpPlugin> {
  const plugin = createPlugin(uri)
  const fulfill = IlpPacket.serializeIlpFulfill({ fulfillment: FLOOR_FULFILLMENT, data: Buffer.alloc(0) })
  plugin.registerDataHandler(async () => fulfill)
  await plugin.connect()
  return plugin
}

/** A sender of floor Prepares: one BTP account on the hub, sending to the receiver's address. */
export class FloorSender {
  readonly #plugin: IlpPlugin
  readonly #destination: string
  readonly #condition = createHash('sha256').update(FLOOR_FULFILLMENT).digest()

  private constructor(plugin: IlpPlugin, destination: string) {
    this.#plugin = plugin
    this.#destination = destination
  }

  static async connect(uri: string, destination: string): Promise<FloorSender> {
    const plugin = createPlugin(uri)
    await plugin.connect()
    return new FloorSender(plugin, destination)
  }

  /** One Prepare→Fulfill round trip; throws unless it was fulfilled. */
  readonly roundTrip = async (): Promise<void> => {
    const reply = await this.#plugin.sendData(
      IlpPacket.serializeIlpPrepare({
        amount: '1',
        executionCondition: this.#condition,
        expiresAt: new Date(Date.now() + 30_000),
        destination: this.#destination,
        data: Buffer.alloc(0),
      }),
    )
    if (reply[0] !== IlpPacket.Type.TYPE_ILP_FULFILL) throw new Error(`floor: the Prepare was not fulfilled (type ${reply[0]})`)
  }

  /** Sequential round trips: the latency of one. */
  sequential(bounds: Bounds): Promise<Stats> {
    return sequential(this.roundTrip, bounds)
  }

  /** `inFlight` senders at once for `durationMs`: packets per second through the hub. */
  async inFlight(options: { inFlight: number; durationMs: number }): Promise<{ inFlight: number; packetsPerSecond: number; errors: number }> {
    let packets = 0
    let errors = 0
    const start = now()
    const deadline = start + options.durationMs
    await Promise.all(
      Array.from({ length: options.inFlight }, async () => {
        while (now() < deadline) {
          try {
            await this.roundTrip()
            packets++
          } catch {
            errors++
          }
        }
      }),
    )
    return { inFlight: options.inFlight, packetsPerSecond: packets / ((now() - start) / 1000), errors }
  }

  close(): Promise<void> {
    return this.#plugin.disconnect()
  }
}
