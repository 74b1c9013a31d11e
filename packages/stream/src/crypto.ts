import { Buffer } from 'node:buffer'
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto'
import { StreamCodecError, StreamCodecErrorCodes } from './codec-error.js'
import { decodePacket, encodePacket, type DecodedPacket, type StreamPacket } from './packet.js'

/** Bytes of a shared secret and of each derived key. */
export const KEY_LENGTH = 32
const IV_LENGTH = 12
const TAG_LENGTH = 16
/** Bytes that encryption adds to a serialized packet: the 12-byte IV and the 16-byte tag (RFC 29 §5.1.1). */
export const ENCRYPTION_OVERHEAD = IV_LENGTH + TAG_LENGTH

const ENCRYPTION_KEY_INFO = Buffer.from('ilp_stream_encryption', 'ascii')
const FULFILLMENT_KEY_INFO = Buffer.from('ilp_stream_fulfillment', 'ascii')

/** The two keys a connection derives from its shared secret, once. */
export interface StreamKeys {
  /** HMAC-SHA256(sharedSecret, "ilp_stream_encryption"): the AES-256-GCM key of every packet, both ways. */
  readonly encryptionKey: Uint8Array
  /** HMAC-SHA256(sharedSecret, "ilp_stream_fulfillment"): the key of {@link fulfillmentFor}. */
  readonly fulfillmentKey: Uint8Array
}

function checkKey(key: Uint8Array, name: string): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_LENGTH) {
    const length = key instanceof Uint8Array ? `${key.length} bytes` : typeof key
    throw new StreamCodecError(StreamCodecErrorCodes.INVALID_KEY, `${name} is ${length}, expected ${KEY_LENGTH} bytes`)
  }
}

const hmac = (key: Uint8Array, message: Uint8Array): Buffer => createHmac('sha256', key).update(message).digest()

/**
 * Derives a connection's keys from its 32-byte shared secret (RFC 29 §5.1.2 and §6). Throws an
 * INVALID_KEY {@link StreamCodecError} for a secret of another length.
 */
export function deriveKeys(sharedSecret: Uint8Array): StreamKeys {
  checkKey(sharedSecret, 'sharedSecret')
  return { encryptionKey: hmac(sharedSecret, ENCRYPTION_KEY_INFO), fulfillmentKey: hmac(sharedSecret, FULFILLMENT_KEY_INFO) }
}

/**
 * Serializes and encrypts a packet: a fresh random 12-byte IV, then the 16-byte GCM tag, then the
 * ciphertext. The result is the `data` of the ILP packet. Throws INVALID_FIELD or INVALID_KEY
 * {@link StreamCodecError}s for a packet or key built wrong.
 */
export function encryptPacket(encryptionKey: Uint8Array, packet: StreamPacket): Uint8Array {
  checkKey(encryptionKey, 'encryptionKey')
  const plaintext = encodePacket(packet)
  const iv = randomBytes(IV_LENGTH)
  const cipher = createCipheriv('aes-256-gcm', encryptionKey, iv)
  const head = cipher.update(plaintext)
  const tail = cipher.final()
  return Buffer.concat([iv, cipher.getAuthTag(), head, tail])
}

/**
 * Decrypts and parses the `data` of an ILP packet. Bytes too short to be a STREAM packet, a
 * wrong key or a tampered byte give a DECRYPT_FAILED error (a receiver answers F06, RFC 29 §5.1),
 * a plaintext that is not a packet a MALFORMED or UNSUPPORTED_VERSION one; never an exception.
 */
export function decryptPacket(encryptionKey: Uint8Array, data: Uint8Array): DecodedPacket {
  if (!(encryptionKey instanceof Uint8Array) || encryptionKey.length !== KEY_LENGTH) {
    return { type: 'invalid', error: new StreamCodecError(StreamCodecErrorCodes.INVALID_KEY, `encryptionKey is not ${KEY_LENGTH} bytes`) }
  }
  if (!(data instanceof Uint8Array) || data.length < ENCRYPTION_OVERHEAD) {
    const length = data instanceof Uint8Array ? data.length : 0
    return {
      type: 'invalid',
      error: new StreamCodecError(
        StreamCodecErrorCodes.DECRYPT_FAILED,
        `data is ${length} bytes, shorter than the ${ENCRYPTION_OVERHEAD} bytes of IV and tag`,
      ),
    }
  }
  let plaintext: Buffer
  try {
    const decipher = createDecipheriv('aes-256-gcm', encryptionKey, data.subarray(0, IV_LENGTH), { authTagLength: TAG_LENGTH })
    decipher.setAuthTag(data.subarray(IV_LENGTH, ENCRYPTION_OVERHEAD))
    plaintext = Buffer.concat([decipher.update(data.subarray(ENCRYPTION_OVERHEAD)), decipher.final()])
  } catch (cause) {
    return {
      type: 'invalid',
      error: new StreamCodecError(
        StreamCodecErrorCodes.DECRYPT_FAILED,
        `AES-256-GCM rejected ${data.length} bytes: wrong key or tampered data`,
        { cause },
      ),
    }
  }
  return decodePacket(plaintext)
}

/**
 * The fulfillment of an ILP Prepare whose `data` is `data` (the encrypted STREAM packet):
 * HMAC-SHA256(fulfillmentKey, data) (RFC 29 §6.3). Throws INVALID_KEY for a key not 32 bytes.
 */
export function fulfillmentFor(fulfillmentKey: Uint8Array, data: Uint8Array): Uint8Array {
  checkKey(fulfillmentKey, 'fulfillmentKey')
  return hmac(fulfillmentKey, data)
}

/** The execution condition of a fulfillment: SHA-256(fulfillment) (RFC 29 §6.2). */
export function conditionFor(fulfillment: Uint8Array): Uint8Array {
  return createHash('sha256').update(fulfillment).digest()
}
