/** `_WSAIOW(IOC_VENDOR, 220)`: reads the opaque redirect records of an accepted socket. */
export const SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS = 0x980000dc;
/** `_WSAIOW(IOC_VENDOR, 221)`: reads the driver-defined redirect context of an accepted socket. */
export const SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT = 0x980000dd;
/** `_WSAIOW(IOC_VENDOR, 222)`: gives an outbound socket the records, before it connects. */
export const SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS = 0x980000de;

/** The names of the three control codes, as `WfpRedirectError.ioctl` reports them. */
export type IoctlName =
  | 'SIO_QUERY_WFP_CONNECTION_REDIRECT_RECORDS'
  | 'SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT'
  | 'SIO_SET_WFP_CONNECTION_REDIRECT_RECORDS';

/** The largest records or context this package reads or sends, in bytes. */
export const MAX_BLOB_SIZE = 64 * 1024;
