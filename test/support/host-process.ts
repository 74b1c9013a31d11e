// A lease host in its own process, for the restart test: it opens one lease with a file store and
// prints each payment as a JSON line, until it is killed (no clean shutdown).
// Usage: host-process.ts <uplink> <storePath> <headers JSON> <amount> <intervalMs>
import { Buffer } from 'node:buffer'
import { FileLeaseStore } from '@cogpay/core/node'
import { createLeaseHost, createPaymentServer } from '@cogpay/ilp'

const [uplink, storePath, headers, amount, intervalMs] = process.argv.slice(2)
const { address, secret, requestId } = JSON.parse(headers!) as { address: string; secret: string; requestId: string }
const host = createLeaseHost({
  paymentServer: createPaymentServer({ uplink: uplink! }),
  store: new FileLeaseStore(storePath!),
  graceMs: 1000,
})
host.on('payment', (lease, paid) =>
  process.stdout.write(`${JSON.stringify({ id: lease.id, paid: paid.toString(), asked: lease.asked.toString() })}\n`),
)
const lease = await host.open(
  { address, secret: Buffer.from(secret, 'base64url'), requestId },
  { amount: BigInt(amount!), intervalMs: Number(intervalMs) },
)
process.stdout.write(`${JSON.stringify({ opened: lease.id })}\n`)
setInterval(() => {}, 1 << 30)
