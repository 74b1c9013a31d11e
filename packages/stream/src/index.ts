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
