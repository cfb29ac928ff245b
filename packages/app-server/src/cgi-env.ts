/**
 * CGI (RFC 3875): which program a request runs, and the meta-variables it gets.
 *
 * Script lookup (§3.3, §4.1.5): the path below the mount is split into segments; the first
 * segments that name directories are walked, the first that names a file is the script, the
 * rest is PATH_INFO. Only regular, executable files whose real path (symlinks resolved) lies
 * inside the mounted folder run. Refused with 403: a segment that decodes to `.` or `..` or
 * holds `/`, `\` or NUL after percent-decoding, bad percent-encoding, a real path outside
 * the folder, a non-regular or non-executable file. No file at all → 404.
 */
import { constants } from 'node:fs'
import { access, realpath, stat } from 'node:fs/promises'
import { join, sep } from 'node:path'
import type { RequestHead } from '@ferry/protocol'
import { appError } from './errors.js'

export interface Script {
  /** Real path of the program. */
  filename: string
  /** Mount prefix + the URL segments that named the program (as sent). */
  scriptName: string
  /** The rest of the path, percent-decoded ('' when none). */
  pathInfo: string
}

function decodeSegment (raw: string): string {
  let s: string
  try {
    s = decodeURIComponent(raw)
  } catch {
    throw appError('FERRY_ERR_APP_CGI_FORBIDDEN', 'bad percent-encoding')
  }
  if (s === '.' || s === '..' || s.includes('/') || s.includes('\\') || s.includes('\0')) {
    throw appError('FERRY_ERR_APP_CGI_FORBIDDEN', `path segment ${JSON.stringify(raw)}`)
  }
  return s
}

function inside (realRoot: string, p: string): boolean {
  return p === realRoot || p.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep)
}

/** `rest` is the path below the mount, query removed, starting with '/'. */
export async function findScript (realRoot: string, prefix: string, rest: string): Promise<Script> {
  const raw = rest.split('/').slice(1)
  // every segment is checked, PATH_INFO included: no `..` anywhere
  const decoded = raw.map(decodeSegment)
  let dir = realRoot
  for (let i = 0; i < raw.length; i++) {
    if (decoded[i] === '') break
    const candidate = join(dir, decoded[i]!)
    let real: string
    try {
      real = await realpath(candidate)
    } catch {
      throw appError('FERRY_ERR_APP_CGI_NOT_FOUND', raw.slice(0, i + 1).join('/'))
    }
    if (!inside(realRoot, real)) throw appError('FERRY_ERR_APP_CGI_FORBIDDEN', 'leads out of the CGI folder')
    const st = await stat(real)
    if (st.isDirectory()) {
      dir = real
      continue
    }
    if (!st.isFile()) throw appError('FERRY_ERR_APP_CGI_FORBIDDEN', 'not a regular file')
    try {
      await access(real, constants.X_OK)
    } catch {
      throw appError('FERRY_ERR_APP_CGI_FORBIDDEN', 'not executable')
    }
    const tail = decoded.slice(i + 1)
    return {
      filename: real,
      scriptName: `${prefix}/${raw.slice(0, i + 1).join('/')}`,
      pathInfo: tail.length === 0 ? '' : `/${tail.join('/')}`
    }
  }
  throw appError('FERRY_ERR_APP_CGI_NOT_FOUND', rest)
}

/** Request headers never passed as HTTP_*: credentials (§4.1.18), and `Proxy` (httpoxy). */
const WITHHELD = new Set(['authorization', 'proxy-authorization', 'proxy', 'content-type', 'content-length'])

function hostParts (head: RequestHead): [string, string] {
  let host = head.authority
  if (host === '') {
    for (let i = 0; i < head.headers.length; i += 2) if (head.headers[i] === 'host') host = head.headers[i + 1]!
  }
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(host)
  const name = m?.[1] ?? host
  const port = m?.[2] ?? (head.scheme === 'https' ? '443' : '80')
  return [name === '' ? 'localhost' : name, port]
}

/** The meta-variables (§4.1) for one request. */
export function cgiEnv (head: RequestHead, script: Script): Record<string, string> {
  const q = head.path.indexOf('?')
  const [hostName, hostPort] = hostParts(head)
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'ferry',
    SERVER_PROTOCOL: head.protocol === '' ? 'HTTP/1.1' : head.protocol,
    SERVER_NAME: head.serverName !== '' ? head.serverName : hostName,
    SERVER_PORT: head.serverPort > 0 ? String(head.serverPort) : hostPort,
    REQUEST_METHOD: head.method,
    REQUEST_URI: head.path,
    QUERY_STRING: q < 0 ? '' : head.path.slice(q + 1),
    SCRIPT_NAME: script.scriptName,
    SCRIPT_FILENAME: script.filename,
    PATH_INFO: script.pathInfo,
    REMOTE_ADDR: head.remoteAddress,
    REMOTE_PORT: String(head.remotePort),
    FERRY_REQUEST_ID: head.requestId
  }
  if (head.scheme === 'https') env.HTTPS = 'on'
  if (head.bodyLength > 0) env.CONTENT_LENGTH = String(head.bodyLength)
  const h = head.headers
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!
    if (name === 'content-type') env.CONTENT_TYPE = h[i + 1]!
    if (WITHHELD.has(name) || name.startsWith('proxy-')) continue
    // only letters, digits and '-': `X_Foo` must not pass as HTTP_X_FOO (nginx's underscores_in_headers off)
    if (!/^[a-z0-9-]+$/.test(name)) continue
    const key = `HTTP_${name.toUpperCase().replace(/-/g, '_')}`
    const prev = env[key]
    env[key] = prev === undefined ? h[i + 1]! : `${prev}${name === 'cookie' ? '; ' : ', '}${h[i + 1]!}`
  }
  return env
}
