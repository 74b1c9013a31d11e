// A host in its own process, for tests that kill it (no clean shutdown). Two kinds:
//
// - A lease host: it opens one lease with a file store and prints each payment as a JSON line.
//   Usage: host-process.ts <uplink> <storePath> <headers JSON> <amount> <intervalMs>
// - A hosting API (@cogpay/hosting) on 127.0.0.1:0, its leases in <runsDir>/leases.json: it prints
//   `{ url, pid, isolation }` once it listens, or `{ error, message }` if it cannot start.
//   Usage: host-process.ts hosting <uplink> <runsDir> <options JSON>
import { Buffer } from 'node:buffer'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { FileLeaseStore } from '@cogpay/core/node'
import { createHosting, type HostingOptions } from '@cogpay/hosting'
import { createLeaseHost, createPaymentServer } from '@cogpay/ilp'

const print = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`)
const args = process.argv.slice(2)

if (args[0] === 'hosting') {
  const [, uplink, runsDir, json] = args
  const host = createLeaseHost({
    paymentServer: createPaymentServer({ uplink: uplink! }),
    store: new FileLeaseStore(join(runsDir!, 'leases.json')),
    graceMs: 1000,
  })
  try {
    const options = JSON.parse(json ?? '{}') as Omit<HostingOptions, 'host'>
    const hosting = createHosting({ ...options, host, runsDir: runsDir!, ratePerSecond: 100n, intervalMs: 100 })
    const server = createServer(hosting.app)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    print({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pid: process.pid, isolation: hosting.isolation })
  } catch (err) {
    print({ error: (err as { code?: string }).code, message: (err as Error).message })
    process.exit(1)
  }
} else {
  const [uplink, storePath, headers, amount, intervalMs] = args
  const { address, secret, requestId } = JSON.parse(headers!) as { address: string; secret: string; requestId: string }
  const host = createLeaseHost({
    paymentServer: createPaymentServer({ uplink: uplink! }),
    store: new FileLeaseStore(storePath!),
    graceMs: 1000,
  })
  host.on('payment', (lease, paid) => print({ id: lease.id, paid: paid.toString(), asked: lease.asked.toString() }))
  const lease = await host.open(
    { address, secret: Buffer.from(secret, 'base64url'), requestId },
    { amount: BigInt(amount!), intervalMs: Number(intervalMs) },
  )
  print({ opened: lease.id })
}
setInterval(() => {}, 1 << 30)
