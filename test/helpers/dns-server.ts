/**
 * A small authoritative DNS server for tests: a real UDP socket (node:dgram) on 127.0.0.1,
 * port 0, answering real queries in the RFC 1035 wire format from a table the test changes
 * while it runs.
 *
 *   const dns = await startDnsServer(t)           // closed by t.after
 *   dns.set('_ferry._tcp.test.internal', { srv: [{ priority: 10, weight: 5, port: 8001, target: 'a.test.internal' }] })
 *   dns.set('a.test.internal', { a: ['127.0.0.1'] })
 *   // ferry front --resolver ${dns.address} …
 *
 * What it does: parses the header and the one question (labels only: a compression pointer
 * or a second question is FORMERR), answers A, AAAA and SRV records of the name (matched
 * case-insensitively) with the question name written as a compression pointer (0xC00C),
 * NOERROR with no answer (NODATA) for a known name without records of the type, NXDOMAIN
 * for an unknown name. Answers are authoritative (AA) with the TTL of the entry (default 0,
 * so resolvers do not cache). `mode` makes it answer SERVFAIL to everything, or stay
 * silent (the query is dropped: the client times out); names in `servfail` get SERVFAIL
 * whatever the mode. Every query is kept in `queries`.
 * The additional section of a query (EDNS OPT) is ignored; answers carry none.
 */
import { createSocket, type RemoteInfo } from 'node:dgram'
import { isIPv4, isIPv6 } from 'node:net'

export interface SrvRecord {
  priority: number
  weight: number
  port: number
  /** A host name, or '.' (the service is decidedly not available, RFC 2782). */
  target: string
}

export interface DnsEntry {
  a?: string[]
  aaaa?: string[]
  srv?: SrvRecord[]
  /** Seconds (default 0). */
  ttl?: number
}

export const QTYPE = { A: 1, AAAA: 28, SRV: 33 } as const
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4 } as const

export interface DnsQuery {
  name: string
  type: number
  rcode: number
  answers: number
}

export interface TestDnsServer {
  /** '127.0.0.1:<port>', the form `--resolver` takes. */
  address: string
  port: number
  /** 'answer' (default), 'servfail' (every query gets SERVFAIL), 'silent' (no reply at all). */
  mode: 'answer' | 'servfail' | 'silent'
  /** Names (lower case) answered SERVFAIL in any mode but 'silent'. */
  servfail: Set<string>
  queries: DnsQuery[]
  /** Replace the records of a name. */
  set (name: string, entry: DnsEntry): void
  /** Forget a name (queries for it get NXDOMAIN). */
  delete (name: string): void
  close (): Promise<void>
}

const CLASS_IN = 1

/** The labels of a name as wire bytes ('.' or '' is the root: one zero byte). */
export function encodeName (name: string): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter((l) => l !== '')
  const parts: Buffer[] = []
  for (const l of labels) {
    const b = Buffer.from(l, 'ascii')
    if (b.length > 63) throw new Error(`label too long: ${l}`)
    parts.push(Buffer.from([b.length]), b)
  }
  parts.push(Buffer.from([0]))
  return Buffer.concat(parts)
}

function ipv4Bytes (a: string): Buffer {
  if (!isIPv4(a)) throw new Error(`not an IPv4 address: ${a}`)
  return Buffer.from(a.split('.').map(Number))
}

function ipv6Bytes (a: string): Buffer {
  if (!isIPv6(a)) throw new Error(`not an IPv6 address: ${a}`)
  const [head, tail] = a.includes('::') ? a.split('::') as [string, string] : [a, undefined]
  const words = (s: string | undefined): string[] => (s === undefined || s === '' ? [] : s.split(':'))
  const h = words(head)
  const t = words(tail)
  const all = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t]
  const out = Buffer.alloc(16)
  all.forEach((w, i) => { out.writeUInt16BE(Number.parseInt(w, 16), i * 2) })
  return out
}

/**
 * The question of a query: name (lower case), type, class, and the offset just past it.
 * Null when the message is not one plain question (short, a pointer, a bad label).
 */
export function parseQuestion (msg: Buffer): { name: string, type: number, qclass: number, end: number } | null {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return null
  const labels: string[] = []
  let i = 12
  for (;;) {
    if (i >= msg.length) return null
    const len = msg[i]!
    if (len === 0) {
      i++
      break
    }
    if ((len & 0xc0) !== 0) return null // no compression in the question
    if (i + 1 + len > msg.length) return null
    labels.push(msg.toString('ascii', i + 1, i + 1 + len).toLowerCase())
    i += 1 + len
  }
  if (i + 4 > msg.length) return null
  return { name: labels.join('.'), type: msg.readUInt16BE(i), qclass: msg.readUInt16BE(i + 2), end: i + 4 }
}

function record (type: number, ttl: number, rdata: Buffer): Buffer {
  const rr = Buffer.alloc(12)
  rr.writeUInt16BE(0xc00c, 0) // the name: a pointer to the question's
  rr.writeUInt16BE(type, 2)
  rr.writeUInt16BE(CLASS_IN, 4)
  rr.writeUInt32BE(ttl, 6)
  rr.writeUInt16BE(rdata.length, 10)
  return Buffer.concat([rr, rdata])
}

function srvData (r: SrvRecord): Buffer {
  const fixed = Buffer.alloc(6)
  fixed.writeUInt16BE(r.priority, 0)
  fixed.writeUInt16BE(r.weight, 2)
  fixed.writeUInt16BE(r.port, 4)
  return Buffer.concat([fixed, encodeName(r.target)])
}

/** The answer to one query message, or null to drop it. */
export function answer (msg: Buffer, table: ReadonlyMap<string, DnsEntry>, mode: TestDnsServer['mode'], log?: DnsQuery[], failing?: ReadonlySet<string>): Buffer | null {
  if (msg.length < 12 || (msg[2]! & 0x80) !== 0) return null // too short to answer, or a response
  if (mode === 'silent') return null
  const q = parseQuestion(msg)
  const head = Buffer.alloc(12)
  msg.copy(head, 0, 0, 2) // id
  const opcode = (msg[2]! >> 3) & 0x0f
  const rd = msg[2]! & 0x01
  head[2] = 0x80 | (opcode << 3) | 0x04 | rd // QR, opcode, AA, RD
  if (q === null) {
    head[3] = RCODE.FORMERR
    return head // no question echoed, all counts 0
  }
  const reply = (rcode: number, answers: Buffer[]): Buffer => {
    head[3] = rcode
    head.writeUInt16BE(1, 4)
    head.writeUInt16BE(answers.length, 6)
    log?.push({ name: q.name, type: q.type, rcode, answers: answers.length })
    return Buffer.concat([head, msg.subarray(12, q.end), ...answers])
  }
  if (opcode !== 0) return reply(RCODE.NOTIMP, [])
  if (mode === 'servfail' || failing?.has(q.name) === true) return reply(RCODE.SERVFAIL, [])
  const entry = table.get(q.name)
  if (entry === undefined) return reply(RCODE.NXDOMAIN, [])
  if (q.qclass !== CLASS_IN) return reply(RCODE.NOERROR, [])
  const ttl = entry.ttl ?? 0
  let answers: Buffer[] = []
  if (q.type === QTYPE.A) answers = (entry.a ?? []).map((a) => record(QTYPE.A, ttl, ipv4Bytes(a)))
  else if (q.type === QTYPE.AAAA) answers = (entry.aaaa ?? []).map((a) => record(QTYPE.AAAA, ttl, ipv6Bytes(a)))
  else if (q.type === QTYPE.SRV) answers = (entry.srv ?? []).map((r) => record(QTYPE.SRV, ttl, srvData(r)))
  return reply(RCODE.NOERROR, answers)
}

/** Start the server on 127.0.0.1, a free port; `t.after` closes it. */
export async function startDnsServer (t: { after: (fn: () => Promise<void> | void) => void }): Promise<TestDnsServer> {
  const socket = createSocket('udp4')
  const table = new Map<string, DnsEntry>()
  const key = (name: string): string => name.replace(/\.$/, '').toLowerCase()
  const server: TestDnsServer = {
    address: '',
    port: 0,
    mode: 'answer',
    servfail: new Set(),
    queries: [],
    set: (name, entry) => { table.set(key(name), entry) },
    delete: (name) => { table.delete(key(name)) },
    close: () => new Promise<void>((resolve) => {
      try {
        socket.close(() => resolve())
      } catch {
        resolve() // already closed
      }
    })
  }
  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    let out: Buffer | null
    try {
      out = answer(msg, table, server.mode, server.queries, server.servfail)
    } catch {
      out = null // a table entry the encoder refuses: the test sees a timeout
    }
    if (out !== null) socket.send(out, rinfo.port, rinfo.address)
  })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject)
      resolve()
    })
  })
  server.port = socket.address().port
  server.address = `127.0.0.1:${server.port}`
  t.after(() => server.close())
  return server
}
