import { parseArgs } from 'node:util'
import { SingleBar } from 'cli-progress'
import { writeFile } from 'node:fs/promises'
import { isCogpayError, parseAmount, PaymentRequiredError, SpendLimitError } from '@cogpay/core'
import { createPayFetch, getPayment } from '@cogpay/fetch'
import { startTestnet } from '@cogpay/testnet'

const USAGE = `usage:
  cogpay hub [--port 7768] [--host 127.0.0.1]
      run the embedded ILP network (a moneyd-local style hub) until Ctrl-C
  cogpay fetch <url> --max <amount> [--uplink btp+ws://…] [-X METHOD] [-H 'Name: value']… [-d body] [-o file] [--progress]
      fetch a paid URL, paying at most <amount> (your asset's smallest unit); on a terminal, a live
      bar shows spend against the cap; --progress also prints a line per payment
      uplink defaults to $COGPAY_UPLINK, then btp+ws://127.0.0.1:7768

exit codes: 0 ok, 1 error, 2 usage, 3 payment refused (402 or over --max)`

/** Exit codes of the CLI. */
const Exit = { ok: 0, error: 1, usage: 2, payment: 3 } as const

async function hub(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { port: { type: 'string', default: '7768' }, host: { type: 'string', default: '127.0.0.1' } },
  })
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) return usage(`--port must be 0 to 65535, got ${values.port}`)
  const testnet = await startTestnet({ port, host: values.host })
  // Listen for Ctrl-C before saying it works: whoever reads the line may signal at once.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  console.log(`cogpay hub: ILP connector on btp+ws://${values.host}:${testnet.port} (${testnet.assetCode}, scale ${testnet.assetScale})`)
  console.log(`  clients connect with any name and secret, e.g. COGPAY_UPLINK=${testnet.uri('me')}`)
  console.log('  Ctrl-C to stop')
  await stopped
  await testnet.close()
  return Exit.ok
}

async function fetchCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      max: { type: 'string' },
      uplink: { type: 'string' },
      request: { type: 'string', short: 'X', default: 'GET' },
      header: { type: 'string', short: 'H', multiple: true, default: [] },
      data: { type: 'string', short: 'd' },
      output: { type: 'string', short: 'o' },
      progress: { type: 'boolean', default: false },
    },
  })
  const url = positionals[0]
  if (!url || positionals.length > 1) return usage('give exactly one URL')
  if (values.max === undefined) return usage('--max is required: the most this request may cost')
  const maxSpend = parseAmount(values.max, '--max')
  const headers = new Headers()
  for (const header of values.header) {
    const colon = header.indexOf(':')
    if (colon < 1) return usage(`-H ${JSON.stringify(header)} is not "Name: value"`)
    headers.append(header.slice(0, colon).trim(), header.slice(colon + 1).trim())
  }
  // A live bar of spend against the cap, on stderr when it is a terminal (never mixed into the body).
  const bar = process.stderr.isTTY
    ? new SingleBar({
        stream: process.stderr,
        format: 'cogpay {bar} {spent}/{max} spent, server asks {asked}',
        hideCursor: true,
        clearOnComplete: false,
      })
    : undefined
  bar?.start(Number(maxSpend), 0, { spent: '0', max: maxSpend.toString(), asked: '0' })
  const hooks = {
    onSpend: [
      ({ spent, asked }: { spent: bigint; asked: bigint }) => {
        // The bar draws with numbers; the labels show the exact bigints.
        bar?.update(Number(spent), { spent: spent.toString(), max: maxSpend.toString(), asked: asked.toString() })
        if (values.progress) process.stderr.write(`cogpay: spent ${spent} of ${maxSpend}; server asks ${asked}\n`)
      },
    ],
  }
  const payFetch = createPayFetch(values.uplink ? { maxSpend, uplink: values.uplink, hooks } : { maxSpend, hooks })
  try {
    const response = await payFetch(url, {
      method: values.request,
      headers,
      ...(values.data === undefined ? {} : { body: values.data }),
    })
    const body = Buffer.from(await response.arrayBuffer())
    if (values.output) await writeFile(values.output, body)
    else process.stdout.write(body)
    const payment = getPayment(response)
    const asset = payFetch.payer.asset
    process.stderr.write(
      `cogpay: ${response.status} ${url} spent ${payment?.spent ?? 0n} of max ${maxSpend}${asset ? ` (${asset.code}, scale ${asset.scale})` : ''}\n`,
    )
    return response.ok ? Exit.ok : Exit.error
  } catch (err) {
    if (err instanceof SpendLimitError) {
      process.stderr.write(`cogpay: ${url} costs ${err.requirements?.amount ?? 'more'}, above --max ${maxSpend}; spent ${err.spent}\n`)
      return Exit.payment
    }
    if (err instanceof PaymentRequiredError) {
      process.stderr.write(`cogpay: ${url} answered 402 (${err.serverCode ?? err.code}): ${err.message}; spent ${err.spent}\n`)
      return Exit.payment
    }
    throw err
  } finally {
    bar?.stop()
    await payFetch.payer.close()
  }
}

function usage(problem?: string): number {
  if (problem) process.stderr.write(`cogpay: ${problem}\n`)
  process.stderr.write(`${USAGE}\n`)
  return Exit.usage
}

/** Runs the CLI with `argv` (without node and script) and returns its exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === 'hub') return await hub(rest)
    if (command === 'fetch') return await fetchCommand(rest)
    if (command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(`${USAGE}\n`)
      return Exit.ok
    }
    return usage(command ? `unknown command ${JSON.stringify(command)}` : undefined)
  } catch (err) {
    if (isCogpayError(err)) {
      process.stderr.write(`cogpay: ${err.code}: ${err.message}\n`)
      return Exit.error
    }
    if (err instanceof TypeError && (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      return usage(err.message)
    }
    process.stderr.write(`cogpay: ${(err as Error)?.message ?? err}\n`)
    return Exit.error
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('cogpay.js')) {
  process.exitCode = await main(process.argv.slice(2))
}
