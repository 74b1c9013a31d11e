import { Server, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { AddressInfo } from 'node:net'

/**
 * The node:http server one mini-accounts account takes its BTP clients on. The testnet binds it
 * itself and hands it to mini-accounts in `wsOpts.server`, which mini-accounts passes to
 * `new WebSocket.Server(wsOpts)` (ws's documented `server` option): so the port is known as soon
 * as it is bound (port 0 included), and a bind error (the port in use) rejects `open()` instead of
 * arriving as an unhandled error event, as it does when mini-accounts binds a port itself.
 */
export class BtpServer extends Server {
  /** Binds a new server to `host:port` (`0`: the system picks a free port). Rejects with the bind error. */
  static async open(host: string, port: number): Promise<BtpServer> {
    const server = new BtpServer((_req, res) => {
      // What ws answers a plain HTTP request on a server it made itself: only WebSocket upgrades belong here.
      res.writeHead(426, { 'Content-Type': 'text/plain' }).end('Upgrade Required')
    })
    server.#track()
    await server.#bind(host, port)
    return server
  }

  /** The port it is bound to. */
  get port(): number {
    return (this.address() as AddressInfo).port
  }

  /**
   * Does nothing. mini-accounts calls `listen(port)` on a server it was handed when it connects,
   * which would bind every interface (and throw, this one being bound already): this server is
   * bound by {@link BtpServer.open}, to the host and port the testnet was asked for.
   */
  override listen(): this {
    return this
  }

  /**
   * Closes the server and every connection still on it. mini-accounts closes the server it was
   * handed when it disconnects; this is for one it never connected, or that is still open after.
   */
  async shut(): Promise<void> {
    // Connections can outlive the listening socket (mini-accounts closed the server, and an idle
    // keep-alive is still open): they are cut whether or not it still listens.
    const closed = this.listening ? new Promise<void>((resolve) => super.close(() => resolve())) : Promise.resolve()
    for (const socket of this.#sockets) socket.destroy()
    await closed
  }

  /**
   * Cuts the connections that are not BTP (never upgraded to a WebSocket): half a request, an
   * idle keep-alive. They would hold up `close()`, which mini-accounts waits on as it disconnects.
   */
  cutPlainConnections(): void {
    for (const socket of this.#sockets) if (!this.#upgraded.has(socket)) socket.destroy()
  }

  /** Every socket accepted and not closed yet, and those a WebSocket upgrade took (BTP). */
  readonly #sockets = new Set<Duplex>()
  readonly #upgraded = new WeakSet<Duplex>()

  #track(): void {
    this.on('connection', (socket: Duplex) => {
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
    })
    this.prependListener('upgrade', (_request: IncomingMessage, socket: Duplex) => this.#upgraded.add(socket))
  }

  #bind(host: string, port: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const failed = (error: Error) => reject(error)
      this.once('error', failed)
      super.listen(port, host, () => {
        this.removeListener('error', failed)
        resolve()
      })
    })
  }
}
