import type { Buffer } from 'node:buffer'

/** The ILP plugin interface (RFC 24, v2) as cogpay uses it. */
export interface IlpPlugin {
  connect(): Promise<void>
  disconnect(): Promise<void>
  isConnected(): boolean
  sendData(data: Buffer): Promise<Buffer>
  sendMoney(amount: string): Promise<void>
  registerDataHandler(handler: (data: Buffer) => Promise<Buffer>): void
  deregisterDataHandler(): void
  registerMoneyHandler?(handler: (amount: string) => Promise<void>): void
  deregisterMoneyHandler?(): void
  on?(event: string, listener: (...args: unknown[]) => void): unknown
  removeListener?(event: string, listener: (...args: unknown[]) => void): unknown
}
