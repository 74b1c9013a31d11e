import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { formatAmount, SpendLimitError } from '@cogpay/core'
import { createPaymentServer, createPayer } from '@cogpay/ilp'
import { createPayFetch, getPayment } from '@cogpay/fetch'
import { startTestnet } from '@cogpay/testnet'
import { createApp } from '@cogpay/example-express-basic'

/** What the demo moved. */
export interface DemoResult {
  /** Paid by the client, in its units. */
  spent: bigint
  /** Received by the server, in its units. */
  received: bigint
  /** One line per request. */
  requests: { path: string; status: number | string; spent: bigint }[]
}

/**
 * The demo: an embedded ILP network, the Express example as a paid API, and a client that pays
 * for several requests with `payFetch`, printing what each cost and the totals on both sides.
 */
export async function runDemo(print: (line: string) => void = console.log): Promise<DemoResult> {
  const testnet = await startTestnet()
  const receiver = createPaymentServer({ uplink: testnet.uri('api') })
  const payer = createPayer({ uplink: testnet.uri('client') })
  const server = createServer(createApp({ receiver }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const requests: DemoResult['requests'] = []
  try {
    await receiver.uplink.connect()
    const asset = await receiver.asset()
    const money = (amount: bigint) => `${amount} units (${formatAmount(amount, asset)})`
    print(`embedded ILP network on btp+ws://127.0.0.1:${testnet.port} (${asset.code}, scale ${asset.scale})`)
    print(`paid API on ${base}  (server ${receiver.uplink.address})`)

    const discovery = await fetch(`${base}/weather`)
    const offer = (await discovery.json()) as { accepts?: { amount: string }[] }
    print(`GET /weather without paying -> ${discovery.status}, price ${offer.accepts?.[0]?.amount} units`)

    const payFetch = createPayFetch({ payer, maxSpend: 1000n })
    for (const path of ['/weather', '/report/3', '/report/10', '/weather']) {
      const response = await payFetch(`${base}${path}`)
      const spent = getPayment(response)?.spent ?? 0n
      await response.arrayBuffer()
      requests.push({ path, status: response.status, spent })
      print(`GET ${path.padEnd(11)} -> ${response.status}, paid ${money(spent)}`)
    }
    const capped = createPayFetch({ payer, maxSpend: 50n })
    try {
      await capped(`${base}/report/4`)
    } catch (err) {
      if (!(err instanceof SpendLimitError)) throw err
      requests.push({ path: '/report/4', status: err.code, spent: err.spent })
      print(`GET /report/4   -> refused: price ${err.requirements?.amount} > maxSpend 50, paid ${money(err.spent)}`)
    }
    print(`client spent    ${money(payer.spent)}`)
    print(`server received ${money(receiver.received)} in ${receiver.paymentsCollected} payments over ${receiver.socketsOpened} socket(s)`)
    return { spent: payer.spent, received: receiver.received, requests }
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await payer.close()
    await receiver.close()
    await testnet.close()
  }
}
