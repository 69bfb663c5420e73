// The shapes every sniffer answers with: found (a name), need-more (a valid
// prefix: wait for more bytes), or none (and why). Never a throw for bad input.

/** A valid prefix so far: more bytes (or, for QUIC, more Initial packets) could complete it. */
export interface NeedMore {
  kind: 'need-more';
}

export interface None<Reason extends string = string> {
  kind: 'none';
  reason: Reason;
}

export type TlsNoneReason =
  | 'not-tls' // the first bytes are not a TLS handshake record
  | 'not-client-hello' // a handshake, but not a ClientHello
  | 'malformed' // a length or value that contradicts the structure
  | 'hello-too-long' // the hello claims more than MAX_HELLO_BYTES
  | 'no-server-name' // a well-formed hello without a host_name
  | 'bad-name' // a server name that is not a DNS host name
  | 'ip-literal'; // an IP address as server name, which RFC 6066 forbids

export interface TlsHelloFound {
  kind: 'found';
  protocol: 'tls';
  /** The server_name's host_name, lowercased. */
  name: string;
  /**
   * The hello carries encrypted_client_hello: `name` is then the outer,
   * public name (the ECH provider's), not the server the client asks for.
   */
  ech: boolean;
  /** The ALPN protocol names in the client's order (latin1); empty when not offered. */
  alpn: string[];
  /** supported_versions without GREASE (0x0304 is TLS 1.3); empty in a hello without the extension (TLS 1.2 or older). */
  versions: number[];
}

export type TlsHelloResult = TlsHelloFound | NeedMore | None<TlsNoneReason>;

export type HttpNoneReason =
  | 'not-http' // the first bytes do not begin an HTTP/1.0 or 1.1 request line
  | 'http2-preface' // HTTP/2 with prior knowledge (RFC 9113 3.4): no Host header to read
  | 'malformed' // a request line or header line HTTP/1.1 does not allow
  | 'head-too-long' // no end of the header section within MAX_HTTP_HEAD_BYTES
  | 'no-host' // a complete head without a host
  | 'duplicate-host' // two Host fields (RFC 9112 3.2: a 400)
  | 'bad-name'; // a host that is neither a DNS name nor an IP literal

export interface HttpHostFound {
  kind: 'found';
  protocol: 'http';
  /** The host, lowercased: a DNS name, a dotted quad, or an IPv6 address without its brackets. */
  name: string;
  hostKind: 'dns' | 'ipv4' | 'ipv6';
  /** The port written after the host, when there is one. */
  port: number | undefined;
  /** Where the host came from: an absolute-form or CONNECT target (which wins, RFC 9112 3.2.2), or the Host field. */
  from: 'request-target' | 'host-header';
  method: string;
  version: '1.0' | '1.1';
}

export type HttpHostResult = HttpHostFound | NeedMore | None<HttpNoneReason>;

export type QuicNoneReason =
  | 'short-header' // a 1-RTT packet: no Initial to read
  | 'version-negotiation'
  | 'unsupported-version' // a version other than 1 (QUIC v2 included), whose keys this does not derive
  | 'not-initial' // no Initial among the coalesced packets
  | 'malformed' // a header, frame or length that contradicts the datagram
  | 'decrypt-failed' // the payload does not authenticate with the Initial keys
  | 'unexpected-frame' // a frame a client Initial cannot carry, or CONNECTION_CLOSE
  | 'crypto-too-long' // CRYPTO data past the largest hello accepted
  | Exclude<TlsNoneReason, 'not-tls'>;

export interface QuicInitialFound extends Omit<TlsHelloFound, 'protocol'> {
  protocol: 'quic';
  version: 1;
  /** The client's Destination Connection ID, hex: what later Initials of this connection carry too. */
  dcid: string;
}

/** The CRYPTO data so far is a valid prefix of a ClientHello: pass this and later Initial datagrams of the same DCID together. */
export interface QuicNeedMore extends NeedMore {
  dcid: string;
  /** CRYPTO bytes received contiguously from offset 0. */
  cryptoBytes: number;
}

export interface QuicNone extends None<QuicNoneReason> {
  /** The version field, when the long header was read. */
  version?: number;
}

export type QuicInitialResult = QuicInitialFound | QuicNeedMore | QuicNone;
