// Knowing a connection by its first bytes: the server name a TLS ClientHello
// or a QUIC Initial carries, the host an HTTP/1.x request names, and a bounded
// read of a stream's start that hands every byte back for replay.
export { sniffTlsClientHello, parseClientHelloMessage, MAX_HELLO_BYTES } from './tls';
export { sniffHttpHost, MAX_HTTP_HEAD_BYTES } from './http';
export { sniffQuicInitial, QUIC_V1, MAX_QUIC_DATAGRAMS } from './quic';
export { clientInitialKeys, clientInitialSecret, QUIC_V1_INITIAL_SALT, type InitialKeys } from './quic-keys';
export {
  sniffStream,
  sniffFirstBytes,
  DEFAULT_SNIFF_BYTES,
  DEFAULT_SNIFF_TIMEOUT_MS,
  type SniffStreamOptions,
  type StreamSniff,
  type StreamSniffResult,
  type StreamNoneReason,
} from './stream';
export type * from './result';
