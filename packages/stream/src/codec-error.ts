/** The stable codes of {@link StreamCodecError}; match on these, never on the message. */
export const StreamCodecErrorCodes = {
  /** The bytes are too short to hold an IV and a tag, or AES-256-GCM rejected them (wrong key, tampered bytes). */
  DECRYPT_FAILED: 'COGPAY_STREAM_DECRYPT_FAILED',
  /** The plaintext is not a STREAM packet: it ends inside a field, or a field is out of range. */
  MALFORMED: 'COGPAY_STREAM_MALFORMED',
  /** The packet's version byte is not 1, the only version this codec speaks. */
  UNSUPPORTED_VERSION: 'COGPAY_STREAM_UNSUPPORTED_VERSION',
  /** A packet or frame handed to the encoder holds a value its wire field cannot carry. */
  INVALID_FIELD: 'COGPAY_STREAM_INVALID_FIELD',
  /** A key or shared secret is not 32 bytes. */
  INVALID_KEY: 'COGPAY_STREAM_INVALID_KEY',
} as const

/** One of {@link StreamCodecErrorCodes}. */
export type StreamCodecErrorCode = (typeof StreamCodecErrorCodes)[keyof typeof StreamCodecErrorCodes]

/**
 * What the STREAM codec reports: returned (never thrown) by the decoders for bytes that came off
 * the wire, thrown by the encoders for values that a caller built wrong.
 */
export class StreamCodecError extends Error {
  override name = 'StreamCodecError'
  readonly code: StreamCodecErrorCode

  constructor(code: StreamCodecErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
  }
}
