/**
 * Socket addresses as operators write them, shared by `ferry app --listen`, `ferry front
 * --listen` and upstream nodes:
 *   unix:/run/app.sock        a unix socket path
 *   tcp://127.0.0.1:8000      tcp (IPv6 as tcp://[::1]:8000)
 *   127.0.0.1:8000 | :8000    tcp, scheme omitted (":8000" binds 0.0.0.0)
 *   tls://10.0.0.5:8000       tcp carrying TLS (IPv6 as tls://[::1]:8000): the app's listener
 *                             and the front's upstream link between tiers (not the front's own
 *                             --listen, whose TLS is --tls-cert/--tls-key)
 * Upstream nodes may add a codec prefix: uwsgi+unix:/path, uwsgi+tcp://host:port,
 * uwsgi+tls://host:port (uwsgi over TLS: nginx's suwsgi://).
 */
import { type FerryError, protocolError } from './errors.js'

export type Address =
  | { kind: 'unix', path: string }
  | { kind: 'tcp', host: string, port: number, tls?: true }

export type Codec = 'native' | 'uwsgi'

export interface NodeAddress {
  codec: Codec
  address: Address
}

// A DNS name or IPv4 address (underscores allowed: container and service names use them);
// an IPv6 address, with an optional zone, inside brackets.
const HOSTNAME = /^[A-Za-z0-9._-]*$/
const IPV6 = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9._-]+)?$/

function bad (input: string, why: string): FerryError {
  return protocolError('FERRY_ERR_ADDRESS_INVALID', `${JSON.stringify(input)}: ${why}`)
}

export function parseAddress (input: string): Address {
  const s = input.trim()
  if (s.startsWith('unix:')) {
    let path = s.slice(5)
    if (path.startsWith('//')) path = path.slice(2)
    if (path.length === 0) throw bad(input, 'empty unix socket path')
    return { kind: 'unix', path }
  }
  let rest = s
  let tls = false
  if (rest.startsWith('tls://')) {
    rest = rest.slice(6)
    tls = true
  } else if (rest.startsWith('tcp://')) rest = rest.slice(6)
  else if (rest.startsWith('tcp:')) rest = rest.slice(4)
  if (rest.endsWith('/')) rest = rest.slice(0, -1)
  let host: string
  let portText: string
  if (rest.startsWith('[')) {
    const end = rest.indexOf(']')
    if (end < 0 || rest[end + 1] !== ':') throw bad(input, 'expected [v6]:port')
    host = rest.slice(1, end)
    portText = rest.slice(end + 2)
    if (!IPV6.test(host)) throw bad(input, 'expected an IPv6 address inside [ ]')
  } else {
    const colon = rest.lastIndexOf(':')
    if (colon < 0) throw bad(input, 'expected host:port, tcp://host:port or unix:/path')
    host = rest.slice(0, colon)
    portText = rest.slice(colon + 1)
    if (host.includes(':')) throw bad(input, 'IPv6 addresses go in brackets: [::1]:port')
    if (host !== '*' && !HOSTNAME.test(host)) throw bad(input, 'host must be a name or an IPv4 address')
  }
  if (!/^\d{1,5}$/.test(portText)) throw bad(input, 'port must be a number 0-65535')
  const port = Number(portText)
  if (port > 65535) throw bad(input, 'port must be a number 0-65535')
  if (host === '' || host === '*') host = '0.0.0.0'
  return tls ? { kind: 'tcp', host, port, tls: true } : { kind: 'tcp', host, port }
}

/** An upstream node: native by default, `uwsgi+` prefix for the uwsgi codec. */
export function parseNodeAddress (input: string): NodeAddress {
  const s = input.trim()
  if (s.startsWith('uwsgi+')) return { codec: 'uwsgi', address: parseAddress(s.slice(6)) }
  if (s.startsWith('native+')) return { codec: 'native', address: parseAddress(s.slice(7)) }
  return { codec: 'native', address: parseAddress(s) }
}

/** The canonical text form: `unix:/path`, `tcp://host:port` (`tcp://[v6]:port`) or `tls://host:port`. */
export function formatAddress (a: Address): string {
  if (a.kind === 'unix') return `unix:${a.path}`
  const scheme = a.tls === true ? 'tls' : 'tcp'
  return a.host.includes(':') ? `${scheme}://[${a.host}]:${a.port}` : `${scheme}://${a.host}:${a.port}`
}

export function formatNodeAddress (n: NodeAddress): string {
  return n.codec === 'uwsgi' ? `uwsgi+${formatAddress(n.address)}` : formatAddress(n.address)
}
