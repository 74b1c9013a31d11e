/**
 * The error codes of RFC 29 §5.4, carried by `ConnectionClose` and `StreamClose` frames. A
 * decoded frame may hold any UInt8: codes from a later version of STREAM pass through as numbers.
 */
export const CloseCodes = {
  /** The stream or connection closed normally. */
  NoError: 0x01,
  /** The endpoint encountered an unexpected error. */
  InternalError: 0x02,
  /** The endpoint is temporarily overloaded and unable to process the packet. */
  EndpointBusy: 0x03,
  /** The other endpoint exceeded the flow control limits advertised. */
  FlowControlError: 0x04,
  /** The other endpoint opened more streams than allowed. */
  StreamIdError: 0x05,
  /** The other endpoint sent frames for a stream that is already closed. */
  StreamStateError: 0x06,
  /** The other endpoint sent a frame with invalid syntax. */
  FrameFormatError: 0x07,
  /** The other endpoint sent invalid data or otherwise violated the protocol. */
  ProtocolViolation: 0x08,
  /** The application using STREAM closed the stream or connection with an error. */
  ApplicationError: 0x09,
} as const

/** One of the {@link CloseCodes} RFC 29 defines. */
export type CloseCode = (typeof CloseCodes)[keyof typeof CloseCodes]
