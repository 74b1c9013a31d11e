import { parseArgs } from 'node:util'
import { SingleBar } from 'cli-progress'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { createLeaseHost, createPaymentServer, redactedMessage, redactUplink } from '@cogpay/ilp'
import { createHosting, HostingIsolationError, type Hosting, type HostingLogger } from '@cogpay/hosting'
import { isCogpayError, parseAmount, PaymentRequiredError, SpendLimitError } from '@cogpay/core'
import { FileLeaseStore } from '@cogpay/core/node'
import { createPayFetch, getPayment } from '@cogpay/fetch'
import { startTestnet } from '@cogpay/testnet'

const USAGE = `usage:
  cogpay hub [--port 7768] [--host 127.0.0.1]
      run the embedded ILP network (a moneyd-local style hub) until Ctrl-C
  cogpay fetch <url> --max <amount> [--uplink btp+ws://…] [-X METHOD] [-H 'Name: value']… [-d body] [-o file] [--progress]
      fetch a paid URL, paying at most <amount> (your asset's smallest unit); on a terminal, a live
      bar shows spend against the cap; --progress also prints a line per payment
      uplink defaults to $COGPAY_UPLINK, then btp+ws://127.0.0.1:7768

  cogpay host serve [--port 7770] [--host 127.0.0.1] [--rate 10/s] [--dir ~/.cogpay/host] [--grace-ms 5000] [--isolation best-effort|strict] [--uplink …]
      run the hosting API (@cogpay/hosting): scripts billed --rate while they run; leases and runs
      are kept in --dir and resumed on restart; Ctrl-C stops it (runs resume on the next start).
      It prints how scripts are isolated here; --isolation strict refuses to start (exit 1) unless
      every mechanism is in force (as root on Linux: own uid, cgroups, tmpfs, no network)
  cogpay host run <script.js> --max-rate <amount>/<interval> --max <amount> [--url <host>] [--uplink …] [--progress]
      deploy a Node script to a cogpay host and pay for it while it runs: the host pulls at most
      --max-rate (e.g. 10/s, 5/500ms, 60/min) and --max in all; shows live spend; Ctrl-C stops the
      script and the payments. --url defaults to $COGPAY_HOST_URL, then http://127.0.0.1:7770

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
  console.log(`  clients connect with any name and secret (one name per process), e.g. COGPAY_UPLINK=btp+ws://<name>:<secret>@${values.host.includes(':') ? `[${values.host}]` : values.host}:${testnet.port}`)
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

/** Parses `--max-rate`: `<amount>/<interval>`, the interval `s`, `ms`, `min` with an optional count (`5/500ms`). */
export function parseRate(text: string, option = '--max-rate'): { amount: bigint; intervalMs: number } {
  const match = /^(\d+)\/(\d*)(ms|s|min)$/.exec(text.trim())
  const count = match?.[2] ? Number(match[2]) : 1
  if (!match || count <= 0) throw new Error(`${option} ${JSON.stringify(text)} is not <amount>/<interval>, e.g. 10/s or 5/500ms`)
  const unit = { ms: 1, s: 1000, min: 60_000 }[match[3] as 'ms' | 's' | 'min']
  const amount = parseAmount(match[1], option)
  if (amount === 0n) throw new Error(`${option} must allow more than 0`)
  return { amount, intervalMs: count * unit }
}

/** The CLI prints the isolation report itself, line by line, once the host listens; a run killed at a bound is a line too. */
const isolationLog: HostingLogger = {
  info() {},
  warn(fields, message) {
    if (fields.run !== undefined) console.log(`  ${message}`)
  },
}

async function hostServe(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: '7770' },
      host: { type: 'string', default: '127.0.0.1' },
      rate: { type: 'string', default: '10/s' },
      dir: { type: 'string', default: join(homedir(), '.cogpay', 'host') },
      'grace-ms': { type: 'string', default: '5000' },
      isolation: { type: 'string', default: 'best-effort' },
      uplink: { type: 'string' },
    },
  })
  const isolation = values.isolation
  if (isolation !== 'strict' && isolation !== 'best-effort') return usage(`--isolation must be strict or best-effort, got ${isolation}`)
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) return usage(`--port must be 0 to 65535, got ${values.port}`)
  const graceMs = Number(values['grace-ms'])
  if (!Number.isSafeInteger(graceMs) || graceMs <= 0) return usage(`--grace-ms must be a positive integer, got ${values['grace-ms']}`)
  let rate: { amount: bigint; intervalMs: number }
  try {
    rate = parseRate(values.rate, '--rate')
  } catch (err) {
    return usage((err as Error).message)
  }
  const paymentServer = createPaymentServer(values.uplink ? { uplink: values.uplink } : {})
  const host = createLeaseHost({ paymentServer, store: new FileLeaseStore(join(values.dir, 'leases.json')), graceMs })
  let hosting: Hosting
  try {
    hosting = createHosting({ host, amount: rate.amount, intervalMs: rate.intervalMs, runsDir: join(values.dir, 'runs'), isolation, logger: isolationLog })
  } catch (err) {
    await paymentServer.close()
    if (!(err instanceof HostingIsolationError)) throw err
    console.error(`cogpay host: ${err.message}`)
    return Exit.error
  }
  const server = createServer(hosting.app)
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, values.host, resolve)
    })
    const resumed = await hosting.resume()
    const { port: bound } = server.address() as AddressInfo
    const hostPart = values.host.includes(':') ? `[${values.host}]` : values.host
    console.log(`cogpay host: hosting API on http://${hostPart}:${bound}; scripts billed ${rate.amount} every ${rate.intervalMs} ms while they run`)
    console.log(`  leases and runs in ${values.dir}; ${resumed.length} run(s) resumed`)
    console.log(`  isolation (${hosting.isolation.mode}):`)
    for (const [name, { level, how }] of Object.entries(hosting.isolation.mechanisms)) console.log(`    ${name}: ${level}, ${how}`)
    host.on('stop', (lease, reason) => console.log(`  run ${lease.id}: stopped (${reason.code}), paid ${lease.paid}`))
    console.log('  Ctrl-C to stop')
    await stopped
    return Exit.ok
  } finally {
    await hosting.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await paymentServer.close()
  }
}

async function hostCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args
  if (sub === 'serve') return hostServe(rest)
  if (sub !== 'run') return usage(`unknown host command ${JSON.stringify(sub ?? '')}; try: cogpay host serve, cogpay host run`)
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      'max-rate': { type: 'string' },
      max: { type: 'string' },
      uplink: { type: 'string' },
      progress: { type: 'boolean', default: false },
    },
  })
  const file = positionals[0]
  if (!file || positionals.length > 1) return usage('give exactly one script')
  const base = values.url ?? process.env.COGPAY_HOST_URL ?? 'http://127.0.0.1:7770'
  if (values['max-rate'] === undefined) return usage('--max-rate is required: the most the host may pull, e.g. 10/s')
  if (values.max === undefined) return usage('--max is required: the most the run may cost in all')
  let rate: { amount: bigint; intervalMs: number }
  try {
    rate = parseRate(values['max-rate'])
  } catch (err) {
    return usage((err as Error).message)
  }
  const total = parseAmount(values.max, '--max')
  const script = await readFile(file)
  const origin = new URL(base).origin
  const payFetch = createPayFetch(values.uplink ? { maxSpend: 0n, uplink: values.uplink } : { maxSpend: 0n })
  const payer = payFetch.payer
  const stopping = new Promise<'interrupted'>((resolve) => {
    process.once('SIGINT', () => resolve('interrupted'))
    process.once('SIGTERM', () => resolve('interrupted'))
  })
  const bar = process.stderr.isTTY
    ? new SingleBar({ stream: process.stderr, format: 'cogpay {bar} {spent}/{max} paid to the host', hideCursor: true })
    : undefined
  try {
    await payer.start()
    payer.authorize(origin, { total, rate })
    const response = await payFetch(new URL('/run', base), { method: 'POST', body: script })
    const body = (await response.json().catch(() => ({}))) as { id?: string; error?: { code?: string; message?: string } }
    const lease = getPayment(response)?.lease
    if (response.status !== 201 || !body.id || !lease) {
      process.stderr.write(`cogpay: the host answered ${response.status}: ${body.error?.code ?? ''} ${body.error?.message ?? ''}
`)
      return Exit.error
    }
    const runUrl = new URL(`/run/${body.id}`, base).href
    process.stdout.write(`cogpay: running ${file} at ${runUrl}
`)
    process.stdout.write(`  paying at most ${rate.amount} per ${rate.intervalMs} ms and ${total} in all; Ctrl-C to stop
`)
    bar?.start(Number(total), 0, { spent: '0', max: total.toString() })
    payer.on('leaseSpend', ({ lease: id, spent }) => {
      if (id !== lease) return
      bar?.update(Number(spent), { spent: spent.toString(), max: total.toString() })
      if (values.progress || !bar) process.stdout.write(`cogpay: paid ${spent} of ${total}
`)
    })
    // Ends when Ctrl-C is pressed, or when the lease ends or stops on either side.
    const over = new Promise<'over'>((resolve) => {
      const poll = setInterval(() => {
        const view = payer.leases().find((l) => l.id === lease)
        if (view && view.status !== 'active' && view.status !== 'interrupted') {
          clearInterval(poll)
          resolve('over')
        }
      }, 50)
    })
    const why = await Promise.race([stopping, over])
    bar?.stop()
    if (why === 'interrupted') {
      const deleted = await fetch(runUrl, { method: 'DELETE' }).catch(() => undefined)
      process.stdout.write(`cogpay: stopped the run (host answered ${deleted?.status ?? 'nothing'})
`)
      // The host's final word on the lease, so the totals below are settled.
      const deadline = Date.now() + 2000
      while (payer.leases().find((l) => l.id === lease)?.status === 'active' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
    const view = payer.leases().find((l) => l.id === lease)
    const asset = payer.asset
    process.stdout.write(
      `cogpay: lease ${view?.status ?? 'unknown'}${view?.code ? ` (${view.code})` : ''}; paid ${view?.spent ?? 0n} of max ${total}${asset ? ` (${asset.code}, scale ${asset.scale})` : ''}\n`,
    )
    return why === 'interrupted' || view?.status === 'ended' ? Exit.ok : Exit.payment
  } catch (err) {
    if (err instanceof PaymentRequiredError) {
      process.stderr.write(`cogpay: the host refused (${err.serverCode ?? err.code}): ${err.message}\n`)
      return Exit.payment
    }
    throw err
  } finally {
    bar?.stop()
    await payer.close()
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
    if (command === 'host') return await hostCommand(rest)
    if (command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(`${USAGE}\n`)
      return Exit.ok
    }
    return usage(command ? `unknown command ${JSON.stringify(command)}` : undefined)
  } catch (err) {
    // Whatever failed, an uplink's secret (given with --uplink or COGPAY_UPLINK) is never printed.
    if (isCogpayError(err)) {
      process.stderr.write(`cogpay: ${err.code}: ${redactedMessage(err)}\n`)
      return Exit.error
    }
    if (err instanceof TypeError && (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      return usage(err.message)
    }
    // undici's "fetch failed" says nothing by itself: the cause (ECONNREFUSED, …) does.
    const cause = (err as { cause?: { message?: unknown } })?.cause
    const why = cause?.message ? `: ${String(cause.message)}` : ''
    process.stderr.write(`cogpay: ${redactedMessage(err)}${redactUplink(why)}\n`)
    return Exit.error
  }
}
