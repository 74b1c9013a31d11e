import type { Buffer } from 'node:buffer'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const IlpPacket = require('ilp-packet') as typeof import('ilp-packet')

/** What the reject that cogpay's uplink writes for a packet lost with a dropped connection says. */
export const LOST_WITH_CONNECTION = 'the uplink reconnected: this packet was lost with the old connection'

/**
 * Money in doubt: Prepares sent through an uplink whose outcome was never learned, because the
 * network gave no answer (the plugin's response timeout), or the connection to the hub dropped
 * while they were in flight (cogpay answers those itself, with a T00). The hub may have forwarded
 * such a Prepare and its Fulfill been lost: the receiver then has money the sender never counted.
 * So the sender's count plus what is in doubt bounds what the receiver got. In the sender's units.
 */
export class InDoubt {
  #amount = 0n
  /** Prepares counted. */
  packets = 0

  get amount(): bigint {
    return this.#amount
  }

  /** Sends `data` with `send`, and counts its amount when its outcome is unknown. */
  async send(data: Buffer, send: (data: Buffer) => Promise<Buffer>): Promise<Buffer> {
    let response: Buffer
    try {
      response = await send(data)
    } catch (err) {
      this.#count(data)
      throw err
    }
    if (isLostWithConnection(response)) this.#count(data)
    return response
  }

  #count(data: Buffer): void {
    if (data[0] !== IlpPacket.Type.TYPE_ILP_PREPARE) return
    try {
      const amount = BigInt(IlpPacket.deserializeIlpPrepare(data).amount)
      if (amount === 0n) return
      this.#amount += amount
      this.packets++
    } catch {
      // not a Prepare we can read: nothing to count
    }
  }
}

function isLostWithConnection(response: Buffer): boolean {
  if (response[0] !== IlpPacket.Type.TYPE_ILP_REJECT) return false
  try {
    const reject = IlpPacket.deserializeIlpReject(response)
    return reject.code === 'T00' && reject.triggeredBy === '' && reject.message === LOST_WITH_CONNECTION
  } catch {
    return false
  }
}
