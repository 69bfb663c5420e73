// Every public export used the way a TypeScript consumer would, compiled by
// test/types.test.ts under the strictest settings a consumer may have
// (strict, exactOptionalPropertyTypes, no ambient types). Each
// `@ts-expect-error` is a mistake the types must refuse: if one compiles, the
// directive is unused and the compile fails.
import net from 'node:net';
import {
  AF_INET,
  AF_INET6,
  connectRedirected,
  createRedirectUdpSocket,
  decodeSockaddr,
  encodeSockaddr,
  getOriginalDestination,
  getSocketHandle,
  isSupported,
  MAX_BLOB_SIZE,
  originalDestinationFromContext,
  queryRedirectContext,
  queryRedirectContextSync,
  queryRedirectRecords,
  queryRedirectRecordsSync,
  RedirectUdpSocket,
  setRedirectRecords,
  setRedirectRecordsSync,
  SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT,
  SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS,
  SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
  SOCKADDR_STORAGE_SIZE,
  TransparentProxy,
  UdpRelay,
  WfpRedirectError,
  type ConnectionLog,
  type ConnectRedirectedOptions,
  type Destination,
  type DestinationSource,
  type FlowEnd,
  type FlowLog,
  type IoctlName,
  type OriginalDestination,
  type OriginalDestinationOptions,
  type ProxyOptions,
  type RedirectedRemoteInfo,
  type RedirectUdpSocketOptions,
  type RouteAnswer,
  type RouteRequest,
  type SocketAddressInfo,
  type SystemErrorCode,
  type UdpDestinationSource,
  type UdpRelayOptions,
  type UdpRelayStats,
  type UdpSendOptions,
  type UdpSocketStats,
  type UdpSocketType,
  type WfpRedirectErrorCode,
  type WfpRedirectErrorFields,
  type WsaErrorCode,
  lookupProcess,
  describeProcess,
  ProcessLookup,
  type ProcessInfo,
  type ProcessLookupQuery,
  type ProcessLookupStats,
} from 'wfp-redirect';

export async function everyExport(socket: net.Socket, maybeRecords: Buffer | undefined): Promise<void> {
  const numbers: number[] = [AF_INET, AF_INET6, MAX_BLOB_SIZE, SOCKADDR_IN_SIZE, SOCKADDR_IN6_SIZE, SOCKADDR_STORAGE_SIZE];
  const codes: number[] = [SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS, SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT, SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS];
  const ioctl: IoctlName = 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS';
  void [numbers, codes, ioctl, isSupported()];

  const records: Buffer = await queryRedirectRecords(socket);
  const context: Buffer = await queryRedirectContext(socket);
  void [queryRedirectRecordsSync(socket), queryRedirectContextSync(socket), getSocketHandle(socket)];
  await setRedirectRecords(3, records);
  setRedirectRecordsSync(3, records);

  const info: SocketAddressInfo = decodeSockaddr(context);
  const bytes: Buffer = encodeSockaddr({ address: info.address, port: info.port, flowInfo: info.flowInfo, scopeId: info.scopeId }, 'storage');
  const original: OriginalDestination = await getOriginalDestination(socket, { contextOffset: 0, decode: undefined });
  const options: OriginalDestinationOptions = { decode: (blob) => ({ address: '10.0.0.1', port: blob.length }) };
  void [bytes, original, originalDestinationFromContext(context, options)];

  // Optional options may be given as undefined (exactOptionalPropertyTypes), as a variable that may hold nothing.
  const connectOptions: ConnectRedirectedOptions = { host: original.address, port: original.port, redirectRecords: maybeRecords, mark: undefined };
  const outbound: net.Socket = connectRedirected(connectOptions, () => {});
  outbound.destroy();

  try {
    await queryRedirectRecords(socket);
  } catch (error) {
    if (error instanceof WfpRedirectError) {
      const code: WfpRedirectErrorCode = error.code;
      if (code === 'ERR_NOT_REDIRECTED' || code === 'WSAEINVAL' || code === 'EMFILE') void code;
      // @ts-expect-error a misspelt code is not a code
      if (error.code === 'ERR_NOT_REDIRECTD') void code;
      const wsa: WsaErrorCode = 'WSAEOPNOTSUPP';
      const system: SystemErrorCode = 'EADDRINUSE';
      const fields: WfpRedirectErrorFields = { code: 'ERR_WFP_SOCKET_CLOSED', errno: undefined, cause: error };
      void [wsa, system, new WfpRedirectError('x', fields)];
    }
  }

  // UDP, as dgram.
  const type: UdpSocketType = 'udp6';
  const udpOptions: RedirectUdpSocketOptions = { type, transparent: false, mark: undefined };
  const udp = createRedirectUdpSocket(udpOptions, (data: Buffer, rinfo: RedirectedRemoteInfo) => {
    const send: UdpSendOptions = { redirectRecords: rinfo.redirectRecords, from: undefined };
    udp.send(data, rinfo.port, rinfo.address, send, (error: Error | null) => void error);
  });
  const plain = new RedirectUdpSocket('udp4');
  plain.bind(0, '127.0.0.1', () => {
    const stats: UdpSocketStats = plain.stats;
    void stats;
    plain.close();
  });
  udp.close();

  // The proxy, its hooks and logs.
  const route = ({ destination }: RouteRequest): RouteAnswer => (destination.port === 25 ? null : undefined);
  const source: DestinationSource = { kind: 'resolver', resolve: (accepted) => getOriginalDestination(accepted) };
  const proxyOptions: ProxyOptions = {
    listen: { host: '127.0.0.1', port: 0 },
    destination: source,
    route,
    log: (entry: ConnectionLog) => void entry.error,
    logStart: undefined,
    idleTimeout: undefined,
    mark: undefined,
  };
  const proxy = new TransparentProxy(proxyOptions);
  const upstream: Destination = { host: 'example.com', port: 80 };
  const relaySource: UdpDestinationSource = { kind: 'upstream', upstream };
  const relayOptions: UdpRelayOptions = { listen: { host: '127.0.0.1', port: 0 }, destination: relaySource, log: (entry: FlowLog) => void entry.end };
  const relay = new UdpRelay(relayOptions);
  const stats: UdpRelayStats = relay.stats;
  const end: FlowEnd = 'evicted';
  void [stats, end, await proxy.listen(), await relay.listen()];
  const query: ProcessLookupQuery = { protocol: 'tcp', local: { address: '127.0.0.1', port: 40000 }, remote: undefined };
  const found: ProcessInfo | undefined = await lookupProcess(query);
  const lookup = new ProcessLookup({ budget: 1000, cacheSize: undefined });
  const lookupStats: ProcessLookupStats = lookup.stats;
  const path: string | undefined = (await describeProcess(1))?.path;
  void [found?.name, await lookup.lookup(query), lookupStats.exhausted, path, new TransparentProxy({ ...proxyOptions, processLookup: true })];
  await Promise.all([proxy.shutdown(0), relay.shutdown()]);
}
