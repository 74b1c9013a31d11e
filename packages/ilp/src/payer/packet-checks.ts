import type { Connection } from 'ilp-protocol-stream'

/**
 * Checks that run after every incoming packet of one connection. A server raising its receive
 * max arrives as a frame in an incoming packet, and STREAM emits no event for it; a payer already
 * at its cap sends nothing more, so no `outgoing_money` event fires either. So the caps are
 * checked after every incoming packet, or the server would wait for its stall timeout instead of
 * hearing "cap reached" at once.
 */
export class PacketChecks {
  readonly #checks = new Set<() => void>()
  #closed = false

  constructor(connection: Connection) {
    connection.once('close', () => (this.#closed = true))
    const handlePrepare = connection.handlePrepare.bind(connection)
    connection.handlePrepare = async (prepare) => {
      try {
        return await handlePrepare(prepare)
      } finally {
        for (const check of this.#checks) check()
      }
    }
  }

  /** Runs `check` after every incoming packet from now on; nothing once the connection has closed. */
  add(check: () => void): void {
    if (!this.#closed) this.#checks.add(check)
  }

  delete(check: () => void): void {
    this.#checks.delete(check)
  }
}
