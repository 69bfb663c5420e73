// The control codes and limits: fixed numbers (the Windows SDK's, and the
// package's documented cap), defined here so that they need no addon; the
// addon defines the same in native/redirect_protocol.h, and
// test/constants.test.ts checks that the two agree.

/** `_WSAIOW(IOC_VENDOR, 220)` (0x980000DC): reads the opaque redirect records of an accepted socket. */
export const SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS: number = 0x980000dc;
/** `_WSAIOW(IOC_VENDOR, 221)` (0x980000DD): reads the driver-defined redirect context of an accepted socket. */
export const SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT: number = 0x980000dd;
/** `_WSAIOW(IOC_VENDOR, 222)` (0x980000DE): gives an outbound socket the records, before it connects. */
export const SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS: number = 0x980000de;

/** The names of the three control codes, as `WfpRedirectError.ioctl` reports them. */
export type IoctlName =
  | 'SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS'
  | 'SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT'
  | 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS';

/** The largest records or context this package reads or sends, in bytes (64 KiB). */
export const MAX_BLOB_SIZE: number = 64 * 1024;
