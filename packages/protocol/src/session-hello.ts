/**
 * The HELLO exchange of a Session: limit normalisation and checks, and the optional
 * HMAC-SHA256 challenge-response on a shared secret.
 *
 * Each side announces in HELLO what it accepts (limits; missing or zero fields take
 * DEFAULT_LIMITS) and a fresh nonce when it holds a secret. The server's HELLO carries its
 * proof over both nonces; a client with a secret checks it and answers with a HELLO ACK
 * carrying its own proof, which the server checks before the session is ready. The secret
 * never crosses the wire, and each side refuses a peer that cannot prove it (mutual).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { ferry } from '../gen/ferry.js'
import { DEFAULT_LIMITS, MAX_FRAME_PAYLOAD_LIMIT, MAX_WINDOW, MIN_LIMITS, PROTOCOL_VERSION } from './constants.js'
import { protocolError } from './errors.js'
import type { Limits } from './types.js'

const NONCE_BYTES = 16
const EMPTY = new Uint8Array(0)

/** The limits a side accepts: the given ones over DEFAULT_LIMITS (undefined and 0 mean "default"). */
export function resolveLimits (partial: Partial<Limits> | undefined): Limits {
  return { ...DEFAULT_LIMITS, ...stripUndefined(partial) }
}

function stripUndefined (o: Partial<Limits> | undefined): Partial<Limits> {
  const out: Partial<Limits> = {}
  if (o === undefined) return out
  for (const k of Object.keys(o) as (keyof Limits)[]) if (o[k] !== undefined && o[k] !== 0) out[k] = o[k]
  return out
}

/** FERRY_ERR_HELLO_LIMITS unless every limit is an integer within its bounds; `who` names the side. */
export function validateLimits (l: Limits, who: string): void {
  for (const k of Object.keys(MIN_LIMITS) as (keyof Limits)[]) {
    if (!Number.isInteger(l[k]) || l[k] < MIN_LIMITS[k]) {
      throw protocolError('FERRY_ERR_HELLO_LIMITS', `${who} ${k} ${l[k]} < ${MIN_LIMITS[k]}`)
    }
  }
  if (l.maxFramePayload > MAX_FRAME_PAYLOAD_LIMIT) throw protocolError('FERRY_ERR_HELLO_LIMITS', `${who} maxFramePayload ${l.maxFramePayload}`)
  if (l.initialWindow > MAX_WINDOW || l.connectionWindow > MAX_WINDOW) throw protocolError('FERRY_ERR_HELLO_LIMITS', `${who} window above 2^31-1`)
}

/** The part of SessionOptions the handshake reads (read when needed, as the session did). */
export interface HelloOptions {
  auth?: string
  agent?: string
  features?: readonly string[]
  /** Server: the node's per-thread addresses (`ferry app --direct`), announced in its HELLO. */
  endpoints?: readonly string[]
}

/** What the peer's HELLO announced. */
export interface PeerHello {
  limits: Limits
  features: readonly string[]
  /** A server's per-thread addresses (empty from clients and from nodes without them). */
  endpoints: readonly string[]
}

/** One side's handshake state: its nonce, the peer's, and where the exchange stands. */
export class Handshake {
  readonly #server: boolean
  readonly #options: HelloOptions
  /** This side's fresh nonce for the HMAC handshake, and the peer's. */
  #nonce: Buffer = randomBytes(NONCE_BYTES)
  #peerNonce: Buffer = Buffer.alloc(0)
  #peerHello = false
  /** Server with a secret: the client's HELLO ACK (proof) has not arrived yet. */
  #awaitingProof = false

  constructor (server: boolean, options: HelloOptions) {
    this.#server = server
    this.#options = options
  }

  get #secret (): string | undefined {
    const s = this.#options.auth
    return s === undefined || s === '' ? undefined : s
  }

  /** This side holds a shared secret (so the exchange includes proofs). */
  get secured (): boolean { return this.#secret !== undefined }

  /** Server: the peer's HELLO is in, its proof (HELLO ACK) is not. */
  get awaitingProof (): boolean { return this.#awaitingProof }

  /** Server: from now on only the client's HELLO ACK may arrive. */
  expectProof (): void {
    this.#awaitingProof = true
  }

  #proof (label: string, a: Uint8Array, b: Uint8Array): Buffer {
    return createHmac('sha256', this.#secret!).update(label).update(a).update(b).digest()
  }

  /** This side's HELLO payload (the server's needs the client's nonce: it answers). */
  hello (l: Limits): Uint8Array {
    const secret = this.#secret
    return ferry.Hello.encode({
      version: PROTOCOL_VERSION,
      limits: {
        maxFramePayload: l.maxFramePayload,
        maxHeadBytes: l.maxHeadBytes,
        maxConcurrentStreams: l.maxConcurrentStreams,
        initialWindow: l.initialWindow,
        connectionWindow: l.connectionWindow
      },
      agent: this.#options.agent ?? '',
      features: this.#options.features === undefined ? [] : [...this.#options.features],
      endpoints: this.#server && this.#options.endpoints !== undefined ? [...this.#options.endpoints] : [],
      nonce: secret !== undefined ? this.#nonce : EMPTY,
      proof: secret !== undefined && this.#server ? this.#proof('ferry-server', this.#peerNonce, this.#nonce) : EMPTY
    }).finish()
  }

  /** Client: the HELLO ACK payload carrying its proof. */
  ack (): Uint8Array {
    const proof = this.#proof('ferry-client', this.#peerNonce, this.#nonce)
    return ferry.Hello.encode({ version: PROTOCOL_VERSION, proof }).finish()
  }

  /** Check the peer's HELLO (version, secret, limits); throws a FerryError when it fails. */
  receiveHello (payload: Buffer, ready: boolean): PeerHello {
    if (ready || this.#peerHello) throw protocolError('FERRY_ERR_HELLO_DUPLICATE')
    const hello = decodeHello(payload)
    if (hello.version !== PROTOCOL_VERSION) throw protocolError('FERRY_ERR_HELLO_VERSION', `peer version ${hello.version}, ours ${PROTOCOL_VERSION}`)
    this.#peerHello = true
    const secret = this.#secret
    const peerNonce = hello.nonce ?? EMPTY
    if (this.#server) {
      if (secret !== undefined && peerNonce.length !== NONCE_BYTES) {
        throw protocolError('FERRY_ERR_AUTH', 'this server requires the shared secret; the client offered none')
      }
      this.#peerNonce = Buffer.from(peerNonce)
    } else if (secret !== undefined) {
      const proof = hello.proof ?? EMPTY
      const want = this.#proof('ferry-server', this.#nonce, peerNonce)
      if (peerNonce.length !== NONCE_BYTES || proof.length !== want.length || !timingSafeEqual(proof, want)) {
        throw protocolError('FERRY_ERR_AUTH', 'the server did not prove the shared secret')
      }
      this.#peerNonce = Buffer.from(peerNonce)
    }
    const l = hello.limits ?? {}
    const limits = resolveLimits({
      maxFramePayload: l.maxFramePayload ?? 0,
      maxHeadBytes: l.maxHeadBytes ?? 0,
      maxConcurrentStreams: l.maxConcurrentStreams ?? 0,
      initialWindow: l.initialWindow ?? 0,
      connectionWindow: l.connectionWindow ?? 0
    })
    validateLimits(limits, 'peer')
    return { limits, features: hello.features ?? [], endpoints: this.#server ? [] : hello.endpoints ?? [] }
  }

  /** Server: check the client's proof of the shared secret (HELLO with ACK). */
  receiveAck (payload: Buffer): void {
    if (!this.#awaitingProof) throw protocolError('FERRY_ERR_HELLO_DUPLICATE', 'unexpected HELLO ACK')
    const hello = decodeHello(payload)
    const proof = hello.proof ?? EMPTY
    const want = this.#proof('ferry-client', this.#nonce, this.#peerNonce)
    if (proof.length !== want.length || !timingSafeEqual(proof, want)) {
      throw protocolError('FERRY_ERR_AUTH', 'wrong proof of the shared secret')
    }
    this.#awaitingProof = false
  }
}

function decodeHello (payload: Buffer): ferry.Hello {
  try {
    return ferry.Hello.decode(payload)
  } catch (cause) {
    throw protocolError('FERRY_ERR_PAYLOAD_INVALID', 'HELLO', { cause })
  }
}
