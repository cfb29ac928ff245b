/**
 * A pair of in-process ports with the MessagePort surface the loop uses, for --threads 0
 * (handlers on the main thread). Delivery is asynchronous (a microtask), as with a real port,
 * so neither side re-enters the other; nothing is cloned.
 */
import type { Port } from './messages.js'

class InlinePort implements Port {
  peer: InlinePort | null = null
  #listener: ((value: unknown[]) => void) | null = null
  #closed = false

  postMessage (value: unknown): void {
    const peer = this.peer
    if (peer === null || this.#closed) return
    queueMicrotask(() => peer.#deliver(value as unknown[]))
  }

  #deliver (value: unknown[]): void {
    if (!this.#closed) this.#listener?.(value)
  }

  on (_event: 'message', listener: (value: unknown[]) => void): void {
    this.#listener = listener
  }

  close (): void {
    this.#closed = true
  }
}

export function inlinePortPair (): [Port, Port] {
  const a = new InlinePort()
  const b = new InlinePort()
  a.peer = b
  b.peer = a
  return [a, b]
}
