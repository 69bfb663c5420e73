// What the process lookup takes and answers.

/** The process behind a connection or UDP flow whose client is on this host. */
export interface ProcessInfo {
  pid: number;
  /** As the OS shows it: the image's file name (`curl`, `chrome.exe`); on Linux `/proc/<pid>/comm` where the image cannot be read. */
  name: string;
  /** The image's full path, where this process may read it. */
  path: string | undefined;
}

export interface ProcessEndpoint {
  /** An IP address (IPv4-mapped IPv6 is taken as IPv4; a link-local IPv6 address may carry its `%scope`). */
  address: string;
  port: number;
}

export interface ProcessLookupQuery {
  protocol: 'tcp' | 'udp';
  /** The client's own endpoint: for a proxy, the accepted connection's peer (or a UDP datagram's sender). */
  local: ProcessEndpoint;
  /**
   * Where the client's socket is connected to: for a redirected connection its
   * original destination (iptables REDIRECT, TPROXY and WFP all leave the
   * client's socket pointed there); for a client that connected to the proxy
   * directly, the proxy's own endpoint. Linux needs it for TCP (without it the
   * answer is unknown); Windows uses it to choose between rows that share a
   * local endpoint.
   */
  remote?: ProcessEndpoint | undefined;
}

export interface ProcessLookupOptions {
  /**
   * Linux: descriptors (`/proc/<pid>/fd/*` links) read at most per lookup;
   * past it the answer is unknown. Default 20000.
   */
  budget?: number | undefined;
  /** Sockets whose holder is remembered (verified before each use). Default 1024. */
  cacheSize?: number | undefined;
  /** A lookup that takes longer than this, in ms, answers unknown (its scan still ends at the budget). Default 1000. */
  timeoutMs?: number | undefined;
}

export interface ProcessLookupStats {
  lookups: number;
  /** Answered from the cache (after checking the process still holds the socket). */
  cacheHits: number;
  /** Cached holders that no longer held their socket when checked. */
  cacheStale: number;
  /** Lookups that gave up at the budget. */
  exhausted: number;
  /** Lookups that answered unknown at `timeoutMs`. */
  timedOut: number;
  /** Descriptors read by the scans, in all. */
  examined: number;
  /** OS calls that failed (the answer was unknown); the last one's code. */
  failures: number;
  lastFailure: string | undefined;
}
