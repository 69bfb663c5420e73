// The package's entry. Its declarations use Node's types (Buffer, net.Socket):
// the reference below brings them to a consumer whose tsconfig lists no types.
/// <reference types="node" preserve="true" />
export {
  SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS,
  SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT,
  SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS,
  MAX_BLOB_SIZE,
  type IoctlName,
} from './constants';
export {
  WfpRedirectError,
  type WfpRedirectErrorCode,
  type WfpRedirectErrorFields,
  type WsaErrorCode,
  type SystemErrorCode,
} from './errors';
export { getSocketHandle } from './socket-handle';
export {
  isSupported,
  queryRedirectRecords,
  queryRedirectRecordsSync,
  queryRedirectContext,
  queryRedirectContextSync,
  setRedirectRecords,
  setRedirectRecordsSync,
} from './redirect';
export { connectRedirected, type ConnectRedirectedOptions } from './connect';
export {
  decodeSockaddr,
  encodeSockaddr,
  AF_INET,
  AF_INET6,
  SOCKADDR_IN_SIZE,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_STORAGE_SIZE,
  type SocketAddressInfo,
} from './sockaddr';
export {
  getOriginalDestination,
  originalDestinationFromContext,
  type OriginalDestination,
  type OriginalDestinationOptions,
} from './original-destination';
export {
  RedirectUdpSocket,
  createRedirectUdpSocket,
  type RedirectUdpSocketOptions,
  type RedirectedRemoteInfo,
  type UdpSendOptions,
  type UdpSocketStats,
  type UdpSocketType,
} from './udp-socket';
export {
  TransparentProxy,
  type ProxyOptions,
  type Destination,
  type DestinationSource,
  type ConnectionLog,
  type RouteRequest,
  type RouteAnswer,
  type RuleSource,
  type RelayEngine,
} from './proxy/tcp-proxy';
export {
  RuleSet,
  RuleMatcher,
  loadConfig,
  checkConfig,
  ConfigError,
  parseExplainQuery,
  describeVerdict,
  type RulesConfig,
  type Rule,
  type RuleAction,
  type MatchFacts,
  type Verdict,
} from './proxy/rules/index';
export {
  UdpRelay,
  type UdpRelayOptions,
  type UdpDestinationSource,
  type UdpRelayStats,
  type FlowLog,
  type FlowEnd,
} from './proxy/udp-relay';
export {
  sniffTlsClientHello,
  parseClientHelloMessage,
  sniffHttpHost,
  sniffQuicInitial,
  sniffStream,
  sniffFirstBytes,
  MAX_HELLO_BYTES,
  MAX_HTTP_HEAD_BYTES,
  MAX_QUIC_DATAGRAMS,
  DEFAULT_SNIFF_BYTES,
  DEFAULT_SNIFF_TIMEOUT_MS,
  type TlsHelloResult,
  type TlsHelloFound,
  type TlsNoneReason,
  type HttpHostResult,
  type HttpHostFound,
  type HttpNoneReason,
  type QuicInitialResult,
  type QuicInitialFound,
  type QuicNeedMore,
  type QuicNone,
  type QuicNoneReason,
  type NeedMore,
  type None,
  type SniffStreamOptions,
  type StreamSniff,
  type StreamSniffResult,
  type StreamNoneReason,
} from './sniff';
export {
  decodeContext,
  parseContextLayout,
  encodeWfpSamplerContext,
  encodeWfprContext,
  CONTEXT_LAYOUT_NAMES,
  WFPR_MAGIC,
  WFPR_VERSION,
  WFPR_V1_SIZE,
  WFPR_FLAG_PROCESS_ID,
  type ContextLayout,
  type ContextEndpoint,
  type DecodedContext,
  type EndpointInput,
} from './context-layouts';
export {
  lookupProcess,
  describeProcess,
  ProcessLookup,
  type ProcessInfo,
  type ProcessEndpoint,
  type ProcessLookupQuery,
  type ProcessLookupOptions,
  type ProcessLookupStats,
} from './process';
export { WFP_HRESULT_CODES, type WfpHresultCode } from './errors';
export { connectVia, type ConnectViaOptions, type UpstreamDestination } from './upstream/connect-via';
export { parseUpstream, Upstream, type UpstreamInit, type UpstreamProtocol, type ParseUpstreamOptions } from './upstream/url';
export { UpstreamError, UPSTREAM_ERROR_CODES, type UpstreamErrorCode, type UpstreamErrorFields } from './upstream/errors';
export {
  associateUdp,
  Socks5UdpAssociation,
  type UdpAssociationStats,
  type UdpAssociationRemoteInfo,
} from './upstream/socks5-udp';
export { DEFAULT_HANDSHAKE_TIMEOUT, type UpstreamSocketOptions } from './upstream/tunnel';
