import { connect, createServer, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { startTestnet } from '@cogpay/testnet'
import { side } from './support/stream-peers.ts'
import { sleep } from './support/wait.ts'

// The embedded network binds its own BTP server for mini-accounts (packages/testnet/src/btp-server.ts):
// its close() must free the port and end whatever is connected, BTP or not.

describe('testnet shutdown with its own BTP server', () => {
  /** Resolves with how long `work` took, or 'hung' after `ms`. */
  const within = async (ms: number, work: Promise<unknown>) => {
    const started = Date.now()
    let timer: NodeJS.Timeout | undefined
    const result = await Promise.race([
      work.then(() => Date.now() - started),
      new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms))),
    ])
    clearTimeout(timer)
    return result
  }
  /** A TCP client on `port` that has sent `bytes`, and whether the server closed it. */
  const rawClient = async (port: number, bytes: string) => {
    const socket: Socket = connect(port, '127.0.0.1')
    const state = { closed: false, socket }
    socket.on('close', () => (state.closed = true))
    socket.on('error', () => {})
    // Read (and drop) what comes: a paused socket never sees the server close it.
    socket.resume()
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    socket.write(bytes)
    await sleep(50)
    return state
  }
  const portFree = (port: number) =>
    new Promise<boolean>((resolve) => {
      const probe = createServer()
      probe.once('error', () => resolve(false))
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
    })

  it('pins: with a BTP client connected, close() frees the port and closes an idle keep-alive HTTP connection on it', async () => {
    const testnet = await startTestnet()
    const client = await side(testnet.uri('client'))
    const idle = await rawClient(testnet.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    const took = await within(5_000, testnet.close())
    const free = await portFree(testnet.port)
    for (let i = 0; i < 40 && !idle.closed; i++) await sleep(50)
    idle.socket.destroy()
    expect({ took: took === 'hung' ? took : 'ok', btp: client.plugin.isConnected(), free, idleClosed: idle.closed }).toEqual({
      took: 'ok',
      btp: false,
      free: true,
      idleClosed: true,
    })
  })

  it('close() hung while a client had sent half an HTTP request to the BTP port (mini-accounts waits on server.close(), and nothing cut the connection)', async () => {
    const testnet = await startTestnet()
    const half = await rawClient(testnet.port, 'GET / HTTP/1.1\r\nHost: x\r\n')
    const took = await within(5_000, testnet.close())
    half.socket.destroy()
    expect(took, `testnet.close() ${took === 'hung' ? 'had not resolved after 5 s' : `took ${took} ms`}`).not.toBe('hung')
  }, 15_000)
})

