// A payer in its own process, for tests where the payer dies: it authorizes a host to pull over
// time, prints the payment headers of one request in flight as a JSON line, and keeps paying
// until it is killed. Usage: payer-process.ts <uplink> <origin> <total> <rateAmount> <rateIntervalMs>
import { createPayer } from '@cogpay/ilp'

const [uplink, origin, total, amount, intervalMs] = process.argv.slice(2)
const payer = createPayer({ uplink: uplink! })
payer.authorize(origin!, { total: BigInt(total!), rate: { amount: BigInt(amount!), intervalMs: Number(intervalMs) } })
const pending = await payer.expect(origin!, 0n)
const { address, secret, requestId } = pending.headers
process.stdout.write(`${JSON.stringify({ address, secret: Buffer.from(secret).toString('base64url'), requestId })}\n`)
payer.on('leaseSpend', ({ spent }) => process.stdout.write(`${JSON.stringify({ spent: spent.toString() })}\n`))
setInterval(() => {}, 1 << 30)
