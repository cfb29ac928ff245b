/**
 * The static header-name table: common names travel as small integer codes (as AJP13's
 * 0xA0xx codes and HPACK's static table do), any other name as a lower-case string.
 * Codes are part of the wire contract (docs/protocol.md lists them): append only, never
 * reorder. Code 0 means "name given as a string".
 */
export const HEADER_NAMES: readonly string[] = [
  '', // 0: not in the table
  'accept', // 1
  'accept-encoding',
  'accept-language',
  'authorization',
  'cache-control', // 5
  'connection',
  'content-encoding',
  'content-length',
  'content-type',
  'cookie', // 10
  'date',
  'etag',
  'host',
  'if-modified-since',
  'if-none-match', // 15
  'last-modified',
  'location',
  'origin',
  'referer',
  'set-cookie', // 20
  'user-agent',
  'vary',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-request-id', // 25
  'accept-ranges',
  'access-control-allow-origin',
  'age',
  'allow',
  'content-disposition', // 30
  'content-language',
  'content-range',
  'expires',
  'if-match',
  'if-range', // 35
  'if-unmodified-since',
  'link',
  'pragma',
  'range',
  'retry-after', // 40
  'server',
  'strict-transport-security',
  'transfer-encoding',
  'upgrade',
  'www-authenticate', // 45
  'x-content-type-options',
  'x-frame-options',
  'sec-fetch-dest',
  'sec-fetch-mode',
  'sec-fetch-site', // 50
  'sec-fetch-user',
  'sec-ch-ua',
  'sec-ch-ua-mobile',
  'sec-ch-ua-platform',
  'upgrade-insecure-requests', // 55
  'dnt',
  'priority',
  'keep-alive',
  'te',
  'x-requested-with', // 60
  'forwarded',
  'content-security-policy',
  'referrer-policy',
  'access-control-allow-credentials',
  'access-control-allow-headers', // 65
  'access-control-allow-methods',
  'access-control-expose-headers',
  'access-control-max-age',
  'access-control-request-headers',
  'access-control-request-method', // 70
  'x-real-ip',
  'x-powered-by'
]

const CODES = new Map<string, number>()
for (let i = 1; i < HEADER_NAMES.length; i++) CODES.set(HEADER_NAMES[i]!, i)

/** Code of a lower-case header name, or 0 when it is not in the table. */
export function headerCode (lowerName: string): number {
  return CODES.get(lowerName) ?? 0
}

/** Name for a code, or undefined when the code is not in the table. */
export function headerName (code: number): string | undefined {
  return code > 0 && code < HEADER_NAMES.length ? HEADER_NAMES[code] : undefined
}

/** Methods as small codes (RequestHead.method); 0 = given as a string. */
export const METHODS: readonly string[] = ['', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE']
const METHOD_CODES = new Map<string, number>()
for (let i = 1; i < METHODS.length; i++) METHOD_CODES.set(METHODS[i]!, i)

export function methodCode (method: string): number {
  return METHOD_CODES.get(method) ?? 0
}
export function methodName (code: number): string | undefined {
  return code > 0 && code < METHODS.length ? METHODS[code] : undefined
}
