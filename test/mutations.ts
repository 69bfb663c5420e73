// Deliberate mistakes, each of which the named test files must catch: the
// proof that those tests can fail. `npm run test:mutations` applies one at a
// time to the working tree, rebuilds what it touched, runs the tests, and
// requires them to fail; a mutation they survive fails the check
// (scripts/test-mutations.js). CI runs the ones marked `short`.
//
// A mutation names the exact text it replaces, which must occur once: when the
// code moves on and the text is gone, the check fails as stale instead of
// passing on a mutation that no longer mutates anything.

export interface Mutation {
  /** kebab-case, unique. */
  name: string;
  /** The behaviour broken, in one line. */
  intent: string;
  /** Path from the package root. */
  file: string;
  /** Each `find` must occur exactly once in the file. */
  edits: Array<{ find: string; replace: string }>;
  /** Test files (compiled names, in dist-test/) that must fail. */
  specs: string[];
  /** Where the tests run: the newest Linux line, the newest node.exe under Wine, or a renamed copy of it. */
  runtime: 'linux' | 'win32' | 'win32-renamed';
  /** In the short set CI runs. */
  short?: boolean;
}

// Mistakes run against more than one suite or runtime, written once.
const DROP_MANUAL_START = [{ find: '    manualStart: true,\n', replace: '' }];
const NO_RETRY = [{ find: 'const uint32_t next = NextBlobSize(last_error, size, returned);', replace: 'const uint32_t next = 0 * NextBlobSize(last_error, size, returned);' }];
const STALE_HANDLE = [
  {
    find: "  if (socket.destroyed) throw stateError('ERR_WFP_SOCKET_CLOSED', ioctl);\n",
    replace: "  const cached = resolvedSockets.get(socket);\n  if (cached !== undefined) return cached.handle;\n  if (socket.destroyed) throw stateError('ERR_WFP_SOCKET_CLOSED', ioctl);\n",
  },
];
const CAP_1K = [{ find: 'constexpr uint32_t kMaxBlobSize = 64 * 1024;', replace: 'constexpr uint32_t kMaxBlobSize = 1024;' }];

export const MUTATIONS: Mutation[] = [
  {
    name: 'connect-without-manual-start',
    intent: 'connectRedirected builds its net.Socket without manualStart',
    file: 'lib/connect.ts',
    edits: DROP_MANUAL_START,
    specs: ['connect.test.js', 'node-internals.test.js'],
    runtime: 'linux',
    short: true,
  },
  {
    name: 'connect-without-manual-start-win32',
    intent: 'the same, in Windows node.exe',
    file: 'lib/connect.ts',
    edits: DROP_MANUAL_START,
    specs: ['connect.test.js', 'node-internals.test.js', 'windows.test.js'],
    runtime: 'win32',
  },
  {
    name: 'internals-open-unchecked',
    intent: 'TCP.prototype.open is used without checking it exists',
    file: 'lib/node-internals.ts',
    edits: [{ find: "  if (typeof wrap.TCP.prototype.open !== 'function') return internalsError('TCP.prototype.open (uv_tcp_open)');\n", replace: '' }],
    specs: ['node-internals.test.js'],
    runtime: 'linux',
  },
  {
    name: 'proxy-drops-records',
    intent: "the proxy's outbound connection is opened without the inbound connection's records",
    file: 'lib/proxy/tcp-proxy.ts',
    edits: [{ find: 'redirectRecords: records, ', replace: '' }],
    specs: ['transparent-proxy.test.js'],
    runtime: 'linux',
    short: true,
  },
  {
    name: 'records-set-after-connect',
    intent: 'connectRedirected sets the records once the socket has connected, not before',
    file: 'lib/connect.ts',
    edits: [
      { find: '    if (records) binding.setRedirectRecords(osSocket, records);\n', replace: '    void records;\n' },
      {
        find: "  socket.prependOnceListener('connect', () => {\n",
        replace: "  socket.prependOnceListener('connect', () => {\n    if (records) binding.setRedirectRecords((handle as unknown as { fd: number }).fd, records);\n",
      },
    ],
    specs: ['connect.test.js', 'transparent-proxy.test.js'],
    runtime: 'linux',
  },
  {
    name: 'connect-without-set-win32',
    intent: 'connectRedirected never gives its socket the records (Windows node.exe, simulated WFP service)',
    file: 'lib/connect.ts',
    edits: [{ find: '    if (records) binding.setRedirectRecords(osSocket, records);\n', replace: '    void records;\n' }],
    specs: ['wfp-sim.test.js'],
    runtime: 'win32',
    short: true,
  },
  {
    name: 'records-set-after-connect-win32',
    intent: 'connectRedirected sets the records once the socket has connected (Windows node.exe, simulated WFP service)',
    file: 'lib/connect.ts',
    edits: [
      { find: "import { checkRecords } from './redirect';\n", replace: "import { checkRecords } from './redirect';\nimport { resolveSocketHandle } from './socket-handle';\n" },
      { find: '    if (records) binding.setRedirectRecords(osSocket, records);\n', replace: '    void records;\n' },
      {
        find: "  socket.prependOnceListener('connect', () => {\n",
        replace: "  socket.prependOnceListener('connect', () => {\n    if (records) binding.setRedirectRecords(resolveSocketHandle(socket), records);\n",
      },
    ],
    specs: ['wfp-sim.test.js'],
    runtime: 'win32',
  },
  {
    name: 'proxy-drops-records-win32',
    intent: "the proxy's outbound connection is opened without the records (the CLI in Windows node.exe, simulated WFP service)",
    file: 'lib/proxy/tcp-proxy.ts',
    edits: [{ find: 'redirectRecords: records, ', replace: '' }],
    specs: ['wfp-sim.test.js'],
    runtime: 'win32',
  },
  {
    name: 'blob-cap-1k-win32',
    intent: 'queries are capped at 1 KiB (the production addon in Windows node.exe, simulated WFP service)',
    file: 'native/redirect_protocol.h',
    edits: CAP_1K,
    specs: ['wfp-sim.test.js'],
    runtime: 'win32',
  },
  {
    name: 'context-offset-ignored',
    intent: 'getOriginalDestination reads the SOCKADDR at byte 0 whatever contextOffset says',
    file: 'lib/original-destination.ts',
    edits: [{ find: 'decodeSockaddr(context, options.contextOffset ?? 0)', replace: 'decodeSockaddr(context, 0)' }],
    specs: ['wfp-sim.test.js'],
    runtime: 'win32',
  },
  {
    name: 'original-destination-drops-scope',
    intent: "a link-local original destination loses its interface, so the proxy cannot reach it",
    file: 'lib/original-destination.ts',
    edits: [{ find: "const linkLocal = family === 'IPv6' &&", replace: "const linkLocal = (false as boolean) && family === 'IPv6' &&" }],
    specs: ['wfp-sim.test.js'],
    runtime: 'win32',
  },
  {
    name: 'addon-imports-node-exe',
    intent: 'the Windows addon imports Node-API from a DLL named node.exe (and the build no longer refuses that), so it cannot load in Electron or a single-executable app',
    file: 'scripts/build-win32.js',
    edits: [
      { find: "run(DLLTOOL, ['-d', def, '--output-delaylib', importLib]);", replace: "run(DLLTOOL, ['-d', def, '-l', importLib]);" },
      { find: "  if (named('node.exe')) throw", replace: "  if (named('node.exe') && false) throw" },
    ],
    specs: ['windows.test.js'],
    runtime: 'win32-renamed',
  },
  {
    name: 'stale-handle-after-destroy',
    intent: 'a destroyed socket is answered with its cached OS socket, which may by now be another connection',
    file: 'lib/socket-handle.ts',
    edits: STALE_HANDLE,
    specs: ['socket-handle.test.js'],
    runtime: 'linux',
    short: true,
  },
  {
    name: 'stale-handle-after-destroy-races',
    intent: 'the same stale handle, against the races of the reliability suite',
    file: 'lib/socket-handle.ts',
    edits: STALE_HANDLE,
    specs: ['reliability.test.js'],
    runtime: 'linux',
  },
  {
    name: 'query-awaits-before-the-call',
    intent: 'the async query lets other code run between finding the OS socket and asking it, so a destroy in between sends the query to a closed or reused number',
    file: 'lib/redirect.ts',
    edits: [
      {
        find: 'export async function queryRedirectRecords(socket: Socket): Promise<Buffer> {\n  return queryRedirectRecordsSync(socket);\n}',
        replace: 'export async function queryRedirectRecords(socket: Socket): Promise<Buffer> {\n  const osSocket = resolveSocketHandle(socket, QUERY_RECORDS);\n  await null;\n  return binding.queryRedirectRecords(osSocket);\n}',
      },
    ],
    specs: ['reliability.test.js'],
    runtime: 'linux',
  },
  {
    name: 'query-no-retry',
    intent: 'a query never retries with a larger buffer after "too small"',
    file: 'native/redirect_protocol.h',
    edits: NO_RETRY,
    specs: ['conformance.test.js'],
    runtime: 'linux',
    short: true,
  },
  {
    name: 'wsaeinval-grows-geometrically',
    intent: 'a socket nobody redirected costs seven calls, the buffer doubling each time, instead of two',
    file: 'native/redirect_protocol.h',
    edits: [{ find: 'return size < kMaxBlobSize ? kMaxBlobSize : doubled;', replace: 'return doubled;' }],
    specs: ['conformance.test.js'],
    runtime: 'linux',
  },
  {
    name: 'posix-socket-number-unchecked',
    intent: 'a raw socket number past an int reaches the OS truncated (2^32 + fd acts on fd)',
    file: 'native/posix/os_socket.cc',
    edits: [{ find: 'const uint64_t kMaxOsSocket = INT_MAX;', replace: 'const uint64_t kMaxOsSocket = (uint64_t{1} << 53) - 1;' }],
    specs: ['bad-input.test.js'],
    runtime: 'linux',
  },
  {
    name: 'syscall-without-a-call',
    intent: "errors name WSAIoctl as the failed call where none was made (ERR_WFP_UNSUPPORTED_PLATFORM)",
    file: 'native/js_errors.cc',
    edits: [{ find: '  if (call_failed) fields.Set("syscall", "WSAIoctl");', replace: '  (void)call_failed;\n  fields.Set("syscall", "WSAIoctl");' }],
    specs: ['redirect.test.js', 'conformance.test.js'],
    runtime: 'linux',
  },
  {
    name: 'uv-tcp-open-negative-errno',
    intent: "a uv_tcp_open failure carries libuv's negative code as errno",
    file: 'lib/connect.ts',
    edits: [{ find: '{ ...fields, errno: -status }', replace: '{ ...fields, errno: status }' }],
    specs: ['connect.test.js'],
    runtime: 'linux',
  },
  {
    name: 'proxy-not-redirected-as-wsaeinval',
    intent: "with the destination from the redirect, a connection nobody redirected is logged WSAEINVAL, not ERR_NOT_REDIRECTED",
    file: 'lib/proxy/tcp-proxy.ts',
    edits: [{ find: "      if (error.code === 'WSAEINVAL') throw notRedirected(", replace: '      if (false as boolean) throw notRedirected(' }],
    specs: ['transparent-proxy.test.js'],
    runtime: 'linux',
  },
  {
    name: 'shutdown-counts-sockets',
    intent: 'the shutdown reports sockets cut (two per connection) as connections',
    file: 'lib/proxy/tcp-proxy.ts',
    edits: [{ find: '    const cut = this.clients.size;', replace: '    const cut = this.open.size;' }],
    specs: ['proxy.test.js'],
    runtime: 'linux',
  },
  {
    name: 'route-hook-refusal-ignored',
    intent: "a route hook's null (refuse the connection) is taken as \"go on\"",
    file: 'lib/proxy/tcp-proxy.ts',
    edits: [{ find: '  if (answer === undefined) return planned;', replace: '  if (answer === undefined || answer === null) return planned;' }],
    specs: ['transparent-proxy.test.js'],
    runtime: 'linux',
  },
  {
    name: 'set-records-takes-net-socket',
    intent: 'setRedirectRecords takes a connected net.Socket again, where the records can change nothing',
    file: 'lib/redirect.ts',
    edits: [{ find: "  if (typeof osSocket !== 'number') {", replace: "  if (typeof osSocket !== 'number' && false) {" }],
    specs: ['bad-input.test.js'],
    runtime: 'linux',
  },
  {
    name: 'shutdown-leaves-listeners',
    intent: "the CLI's second-signal handlers stay registered after it has stopped",
    file: 'lib/proxy/cli.ts',
    edits: [{ find: '    for (const name of SHUTDOWN_SIGNALS) process.off(name, forceExit);', replace: '    void forceExit;' }],
    specs: ['proxy.test.js'],
    runtime: 'linux',
  },
  {
    name: 'no-sigbreak-on-windows',
    intent: 'Ctrl+Break does not stop the proxy gracefully on Windows',
    file: 'lib/proxy/cli.ts',
    edits: [{ find: "['SIGINT', 'SIGTERM', 'SIGBREAK', 'SIGHUP']", replace: "['SIGINT', 'SIGTERM', 'SIGHUP']" }],
    specs: ['proxy.test.js'],
    runtime: 'win32',
  },
  {
    name: 'is-supported-ignores-version',
    intent: 'isSupported() says true on Windows 7, which has no WFP redirect IOCTLs',
    file: 'lib/redirect.ts',
    edits: [{ find: '  return major > 6 || (major === 6 && minor >= 2);', replace: '  return major > 6 || (major === 6 && minor >= 1);' }],
    specs: ['windows.test.js'],
    runtime: 'win32',
  },
  {
    name: 'max-connections-zero',
    intent: '--max-connections 0 is taken, silently meaning no limit',
    file: 'lib/proxy/cli.ts',
    edits: [{ find: "'--max-connections', 1024, 1)", replace: "'--max-connections', 1024, 0)" }],
    specs: ['proxy.test.js'],
    runtime: 'linux',
  },
  {
    name: 'decode-family-guessed',
    intent: "a decode option's host name is given family IPv4 instead of being refused",
    file: 'lib/original-destination.ts',
    edits: [{ find: '  if (family === undefined && kind === 0) throw bad(', replace: '  if (family === undefined && kind === -1) throw bad(' }],
    specs: ['original-destination.test.js'],
    runtime: 'win32',
  },
  {
    name: 'query-no-retry-fuzz',
    intent: 'the same no-retry mistake, against the fuzzer alone',
    file: 'native/redirect_protocol.h',
    edits: NO_RETRY,
    specs: ['conformance-fuzz.test.js'],
    runtime: 'linux',
  },
  {
    name: 'blob-cap-1k-fuzz',
    intent: 'the same 1 KiB cap, against the fuzzer alone',
    file: 'native/redirect_protocol.h',
    edits: CAP_1K,
    specs: ['conformance-fuzz.test.js'],
    runtime: 'linux',
  },
  {
    name: 'query-no-retry-asan',
    intent: 'the same no-retry mistake, against the AddressSanitizer fuzzer alone',
    file: 'native/redirect_protocol.h',
    edits: NO_RETRY,
    specs: ['conformance-asan.test.js'],
    runtime: 'linux',
  },
  {
    name: 'blob-cap-1k-asan',
    intent: 'the same 1 KiB cap, against the AddressSanitizer fuzzer alone',
    file: 'native/redirect_protocol.h',
    edits: CAP_1K,
    specs: ['conformance-asan.test.js'],
    runtime: 'linux',
  },
  {
    name: 'blob-cap-1k',
    intent: 'blobs are capped at 1 KiB instead of 64 KiB',
    file: 'native/redirect_protocol.h',
    edits: CAP_1K,
    specs: ['conformance.test.js'],
    runtime: 'linux',
  },
  {
    name: 'lookup-ignores-peer',
    intent: 'the socket lookup matches on the local address only',
    file: 'native/socket_lookup.cc',
    edits: [{ find: 'if (!ReadSocketEndpoint(socket, EndpointSide::kPeer, &seen) || !(seen == peer)) {', replace: 'if (!ReadSocketEndpoint(socket, EndpointSide::kPeer, &seen) || false) {' }],
    specs: ['socket-handle.test.js'],
    runtime: 'linux',
  },
  {
    name: 'lookup-drops-scope',
    intent: 'the socket lookup ignores the scope, so link-local twins on two interfaces are confused',
    file: 'native/socket_lookup.cc',
    edits: [{ find: '  return !link_local || a.scope_id == 0 || b.scope_id == 0 || a.scope_id == b.scope_id;', replace: '  (void)link_local;\n  return true;' }],
    specs: ['link-local.test.js'],
    runtime: 'linux',
  },
  {
    name: 'lookup-no-fallback',
    intent: "when libuv's handle queue looks wrong, the lookup gives up instead of walking with uv_walk",
    file: 'native/socket_lookup.cc',
    edits: [{ find: '    case WalkResult::kQueueLooksWrong:\n      break;', replace: '    case WalkResult::kQueueLooksWrong:\n      return false;' }],
    specs: ['socket-handle.test.js'],
    runtime: 'linux',
  },
  {
    name: 'lookup-trusts-queue',
    intent: 'the queue walk follows a link to a "handle" without checking it names this loop and a handle type',
    file: 'native/socket_lookup.cc',
    edits: [{ find: '    if (handle->loop != loop || handle->type <= UV_UNKNOWN_HANDLE ||\n        handle->type >= UV_HANDLE_TYPE_MAX) {', replace: '    if (false) {' }],
    specs: ['socket-handle.test.js'],
    runtime: 'linux',
  },
  {
    name: 'sockaddr-ipv4-offset',
    intent: 'a SOCKADDR_IN address is read one byte early',
    file: 'lib/sockaddr.ts',
    edits: [{ find: 'const address = `${view.getUint8(4)}.${view.getUint8(5)}.${view.getUint8(6)}.${view.getUint8(7)}`;', replace: 'const address = `${view.getUint8(3)}.${view.getUint8(4)}.${view.getUint8(5)}.${view.getUint8(6)}`;' }],
    specs: ['sockaddr.test.js'],
    runtime: 'linux',
    short: true,
  },
  {
    name: 'runner-exits-0-early',
    intent: 'the test runner exits 0 before printing its summary',
    file: 'test/sockaddr.test.ts',
    edits: [{ find: "import assert from 'node:assert/strict';\n", replace: "import assert from 'node:assert/strict';\nafter(() => process.exit(0));\n" }],
    specs: ['sockaddr.test.js'],
    runtime: 'linux',
    short: true,
  },
  {
    name: 'runner-killed',
    intent: 'the test runner is killed by a signal mid-run',
    file: 'test/sockaddr.test.ts',
    edits: [{ find: "import assert from 'node:assert/strict';\n", replace: "import assert from 'node:assert/strict';\nafter(() => process.kill(process.pid, 'SIGKILL'));\n" }],
    specs: ['sockaddr.test.js'],
    runtime: 'linux',
  },
  {
    name: 'udp-original-destination-wrong-message',
    intent: "a TPROXY'd datagram's original destination is read from IP(V6)_PKTINFO instead of IP(V6)_ORIGDSTADDR",
    file: 'native/linux/udp_tproxy.cc',
    edits: [
      { find: 'message.type == IP_ORIGDSTADDR;', replace: 'message.type == IP_PKTINFO;' },
      { find: 'message.type == IPV6_ORIGDSTADDR;', replace: 'message.type == IPV6_PKTINFO;' },
    ],
    specs: ['udp-tproxy.test.js'],
    runtime: 'linux',
    short: true,
  },
  {
    name: 'udp-reply-not-from-destination',
    intent: "the UDP relay answers a TPROXY'd client from its own address instead of the original destination",
    file: 'lib/proxy/udp-relay.ts',
    edits: [{ find: 'const options = this.tproxy ? { from: destination } : {};', replace: 'const options = {};' }],
    specs: ['udp-tproxy.test.js'],
    runtime: 'linux',
  },
  {
    name: 'udp-proxy-drops-records-win32',
    intent: "the UDP relay's first outbound datagram of a flow goes without the flow's records (Windows node.exe, simulated WFP service)",
    file: 'lib/proxy/udp-relay.ts',
    edits: [{ find: 'const options = first && flow.records ? { redirectRecords: flow.records } : {};', replace: 'const options = first && flow.records ? {} : {};' }],
    specs: ['wfp-sim-udp.test.js'],
    runtime: 'win32',
  },
  {
    name: 'udp-records-on-every-datagram-win32',
    intent: "the UDP relay sends the flow's records with every datagram, not the first alone",
    file: 'lib/proxy/udp-relay.ts',
    edits: [{ find: 'const options = first && flow.records ? { redirectRecords: flow.records } : {};', replace: 'const options = (first || true) && flow.records ? { redirectRecords: flow.records } : {};' }],
    specs: ['wfp-sim-udp.test.js'],
    runtime: 'win32',
  },
  {
    name: 'udp-context-read-as-records-win32',
    intent: 'an IP_WFP_REDIRECT_CONTEXT control message is taken for the records',
    file: 'native/win/udp_socket.cc',
    edits: [{ find: 'if (control.type == IP_WFP_REDIRECT_RECORDS) {', replace: 'if (control.type == IP_WFP_REDIRECT_CONTEXT) {' }],
    specs: ['wfp-sim-udp.test.js'],
    runtime: 'win32',
  },
  {
    name: 'control-parser-trusts-length',
    intent: "the control-message parser believes a message's length even when it runs past the area",
    file: 'native/control_messages.h',
    edits: [{ find: 'if (header.length < kControlHeaderSize || header.length > length - offset) {', replace: 'if (header.length < kControlHeaderSize) {' }],
    specs: ['conformance-asan.test.js'],
    runtime: 'linux',
  },
  {
    name: 'control-parser-trusts-length-win32',
    intent: 'the same, in Windows node.exe: a length past the end of the control area is read',
    file: 'native/control_messages.h',
    edits: [{ find: 'if (header.length < kControlHeaderSize || header.length > length - offset) {', replace: 'if (header.length < kControlHeaderSize) {' }],
    specs: ['wfp-sim-udp.test.js'],
    runtime: 'win32',
  },
  {
    name: 'udp-reads-after-close',
    intent: 'a UDP socket closed by a message listener goes on reading the datagrams that were waiting',
    file: 'native/udp_binding.cc',
    edits: [{ find: 'for (int i = 0; i < kDatagramsPerWakeUp && socket_.open; ++i) {', replace: 'for (int i = 0; i < kDatagramsPerWakeUp; ++i) {' }],
    specs: ['udp-socket.test.js'],
    runtime: 'linux',
  },
  {
    name: 'udp-relay-leaks-outbound',
    intent: "an ended UDP flow's outbound socket is never closed",
    file: 'lib/proxy/udp-relay.ts',
    edits: [{ find: '    flow.outbound.close();\n', replace: '' }],
    specs: ['udp-socket.test.js'],
    runtime: 'linux',
  },
  {
    name: 'udp-listener-exception-swallowed',
    intent: "an exception thrown by a UDP 'message' listener is dropped instead of reaching 'uncaughtException'",
    file: 'native/udp_binding.cc',
    edits: [{ find: '        napi_fatal_exception(env, error);\n', replace: '' }],
    specs: ['udp-socket.test.js'],
    runtime: 'linux',
  },
];
