export { StreamCodecError, StreamCodecErrorCodes, type StreamCodecErrorCode } from './codec-error.js'
export { CloseCodes, type CloseCode } from './close-codes.js'
export {
  FrameTypes,
  type Frame,
  type FrameType,
  type ConnectionCloseFrame,
  type ConnectionNewAddressFrame,
  type ConnectionMaxDataFrame,
  type ConnectionDataBlockedFrame,
  type ConnectionMaxStreamIdFrame,
  type ConnectionStreamIdBlockedFrame,
  type ConnectionAssetDetailsFrame,
  type StreamCloseFrame,
  type StreamMoneyFrame,
  type StreamMaxMoneyFrame,
  type StreamMoneyBlockedFrame,
  type StreamDataFrame,
  type StreamMaxDataFrame,
  type StreamDataBlockedFrame,
  type StreamReceiptFrame,
} from './frames.js'
export { MAX_U64 } from './oer.js'
export {
  STREAM_VERSION,
  IlpPacketTypes,
  encodePacket,
  decodePacket,
  type IlpPacketType,
  type StreamPacket,
  type DecodedPacket,
} from './packet.js'
export {
  KEY_LENGTH,
  ENCRYPTION_OVERHEAD,
  deriveKeys,
  encryptPacket,
  decryptPacket,
  fulfillmentFor,
  conditionFor,
  type StreamKeys,
} from './crypto.js'
export {
  ONE as RATE_ONE,
  exchangeRate,
  convertFloor,
  sourceFor,
  compareRates,
  formatRate,
  type ExchangeRate,
} from './exchange-rate.js'
export type { DataPlugin, IlpPrepare, IlpReply } from './ilp.js'
export { MoneyStream, type MoneyStreamEvents, type CloseInfo } from './money-stream.js'
export {
  Connection,
  ConnectionClosedError,
  StreamIdsExhaustedError,
  connect,
  createConnection,
  type ConnectionOptions,
  type ClientConnectionOptions,
  type ConnectionEvents,
  type StreamAsset,
} from './connection.js'
export { StreamListener, NO_SUCH_CONNECTION, type ListenerOptions, type ListenerEvents, type StreamCredentials } from './listener.js'
