/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Waits until `condition()` holds, polling every 5 ms; throws after `ms` (a bounded loop). */
export async function until(condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`)
    await sleep(5)
  }
}
