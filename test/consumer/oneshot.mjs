// A one-shot script as a user writes it: pay for one URL with the process-wide payer
// (COGPAY_UPLINK), close it, and exit by itself.
import { closePayFetch, getPayment, payFetch } from '@cogpay/fetch'

const response = await payFetch(process.argv[2], 150n)
console.log(`oneshot: ${response.status} ${await response.text()} spent ${getPayment(response)?.spent}`)
await closePayFetch()
