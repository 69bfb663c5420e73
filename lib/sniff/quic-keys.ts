// QUIC v1 client Initial keys (RFC 9001 5.2): HKDF-SHA256 over the client's
// Destination Connection ID with a published salt, so anyone on the path can
// read an Initial; that is what lets a proxy see the server name.
import { createCipheriv, createHmac } from 'node:crypto';

/** RFC 9001 5.2, QUIC version 1's initial_salt. */
export const QUIC_V1_INITIAL_SALT = Buffer.from('38762cf7f55934b34d179ae6a4c80cadccbb7f0a', 'hex');

export interface InitialKeys {
  /** AES-128-GCM key for the payload. */
  key: Buffer;
  /** 12 bytes; XORed with the packet number to make the nonce. */
  iv: Buffer;
  /** AES-128 key for the header protection mask. */
  hp: Buffer;
}

function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Buffer {
  return createHmac('sha256', salt).update(ikm).digest();
}

/** HKDF-Expand-Label (RFC 8446 7.1) with an empty context, for lengths of at most one SHA-256 block. */
export function hkdfExpandLabel(secret: Uint8Array, label: string, length: number): Buffer {
  const fullLabel = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, fullLabel.length]), fullLabel, Buffer.from([0])]);
  // HKDF-Expand's T(1) = HMAC(PRK, info || 0x01): enough, as every length here is <= 32.
  return createHmac('sha256', secret).update(info).update(Buffer.from([1])).digest().subarray(0, length);
}

/** client_initial_secret for a Destination Connection ID (RFC 9001 5.2). */
export function clientInitialSecret(dcid: Uint8Array): Buffer {
  return hkdfExpandLabel(hkdfExtract(QUIC_V1_INITIAL_SALT, dcid), 'client in', 32);
}

/** The client's Initial packet protection keys for a Destination Connection ID. */
export function clientInitialKeys(dcid: Uint8Array): InitialKeys {
  const secret = clientInitialSecret(dcid);
  return { key: hkdfExpandLabel(secret, 'quic key', 16), iv: hkdfExpandLabel(secret, 'quic iv', 12), hp: hkdfExpandLabel(secret, 'quic hp', 16) };
}

/** The header protection mask (RFC 9001 5.4.3): AES-128-ECB of the 16-byte sample. */
export function headerProtectionMask(hp: Uint8Array, sample: Uint8Array): Buffer {
  const cipher = createCipheriv('aes-128-ecb', hp, null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(sample), cipher.final()]);
}
