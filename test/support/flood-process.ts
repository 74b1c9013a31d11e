// A flood of paid requests that never pay, from its own process (as an attacker would be): half
// to payer addresses under hub accounts that never answer a packet, half to STREAM payers that
// accept every connection and stream and never pay. Requests come from 20 loopback IPs.
// Usage: flood-process.ts <JSON { url, silent: uri[], stingy: uri[], childPrefix, requests, concurrency }>
// Prints `{ ready: true }` once set up, waits for a line on stdin, floods, then prints
// `{ statuses, elapsedMs }` and exits.
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { createRequire } from 'node:module'
import { Headers, SCHEME } from '@cogpay/core'
import { createPlugin } from '@cogpay/ilp'

const require = createRequire(import.meta.url)
const { createServer } = require('ilp-protocol-stream') as typeof import('ilp-protocol-stream')

const config = JSON.parse(process.argv[2]!) as {
  url: string
  silent: string[]
  stingy: string[]
  childPrefix: string
  requests: number
  concurrency: number
}
const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`)

const silent: string[] = []
for (const uri of config.silent) {
  const plugin = createPlugin(uri)
  await plugin.connect()
  plugin.registerDataHandler(() => new Promise<Buffer>(() => {}))
  silent.push(`${config.childPrefix}.${new URL(uri).username}`)
}
const stingy: Awaited<ReturnType<typeof createServer>>[] = []
for (const uri of config.stingy) {
  const server = await createServer({ plugin: createPlugin(uri), maxRemoteStreams: 100 })
  server.on('connection', (connection) => {
    connection.on('error', () => {})
    connection.on('stream', (stream: import('ilp-protocol-stream').DataAndMoneyStream) => stream.on('error', () => {}))
  })
  stingy.push(server)
}

function attack(from: string, address: string, secret: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = httpRequest(
      `${config.url}/paid`,
      {
        localAddress: from,
        headers: {
          [Headers.scheme]: SCHEME,
          [Headers.address]: address,
          [Headers.secret]: secret.toString('base64url'),
          [Headers.requestId]: randomBytes(12).toString('base64url'),
        },
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    // Bounded: a request the server never answers counts as status 0.
    req.setTimeout(15_000, () => req.destroy())
    req.once('error', () => resolve(0))
    req.end()
  })
}

print({ ready: true })
await new Promise((resolve) => process.stdin.once('data', resolve))
const started = Date.now()
const statuses: Record<number, number> = {}
let next = 0
const worker = async () => {
  while (next < config.requests) {
    const i = next++
    const from = `127.0.0.${2 + (i % 20)}`
    let status: number
    if (i % 2 === 0) {
      status = await attack(from, `${silent[i % silent.length]}.f${i}`, randomBytes(32))
    } else {
      const { destinationAccount, sharedSecret } = stingy[i % stingy.length]!.generateAddressAndSecret()
      status = await attack(from, destinationAccount, sharedSecret)
    }
    statuses[status] = (statuses[status] ?? 0) + 1
  }
}
await Promise.all(Array.from({ length: config.concurrency }, worker))
print({ statuses, elapsedMs: Date.now() - started })
process.exit(0)
