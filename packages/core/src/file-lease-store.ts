// Node only: the file system. Exported as `@cogpay/core/node`, so that the rest of core stays free
// of Node's modules and can run in a browser or an edge runtime.
import { mkdir, open, readFile, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import { CogpayError } from './errors/cogpay-error.js'
import { ErrorCodes } from './errors/codes.js'
import { leaseRecordFromJson, leaseRecordToJson, MemoryLeaseStore, type LeaseRecord } from './lease-store.js'

/**
 * Leases in one JSON file, so they survive a restart: each `put` resolves once the file holding it
 * has been written, synced and renamed into place (a crash leaves the old file or the new one,
 * never half of one). Writes are coalesced. The file is created with mode 0600: it holds payers'
 * secrets. Fine for one host process and thousands of leases; use a database beyond that.
 */
export class FileLeaseStore extends MemoryLeaseStore {
  #loaded: Promise<void> | undefined
  #dirty = false
  #writing: Promise<void> | undefined

  constructor(
    readonly path: string,
    maxRecords?: number,
  ) {
    super(maxRecords)
  }

  override async get(id: string): Promise<LeaseRecord | undefined> {
    await this.#load()
    return super.get(id)
  }

  override async list(): Promise<LeaseRecord[]> {
    await this.#load()
    return super.list()
  }

  override async put(record: LeaseRecord): Promise<void> {
    await this.#load()
    await super.put(record)
    this.#dirty = true
    while (this.#dirty) {
      if (this.#writing) {
        await this.#writing
        continue
      }
      this.#dirty = false
      this.#writing = this.#write().finally(() => (this.#writing = undefined))
      await this.#writing
    }
  }

  #load(): Promise<void> {
    this.#loaded ??= (async () => {
      let text: string
      try {
        text = await readFile(this.path, 'utf8')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
        throw err
      }
      let records: LeaseRecord[]
      try {
        const json = JSON.parse(text) as { v?: unknown; leases?: unknown }
        if (json.v !== 1 || !Array.isArray(json.leases)) throw new Error('not a cogpay lease file (v 1)')
        records = json.leases.map(leaseRecordFromJson)
      } catch (cause) {
        throw new CogpayError(
          ErrorCodes.INVALID_OPTIONS,
          `lease store ${this.path} is unreadable: ${(cause as Error).message}`,
          { cause },
        )
      }
      for (const record of records) await super.put(record)
    })()
    return this.#loaded
  }

  async #write(): Promise<void> {
    const leases = (await super.list()).map(leaseRecordToJson)
    const temp = `${this.path}.${process.pid}.tmp`
    await mkdir(dirname(this.path), { recursive: true })
    const file = await open(temp, 'w', 0o600)
    try {
      await file.writeFile(JSON.stringify({ v: 1, leases }))
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(temp, this.path)
  }
}
