/**
 * Feeding decoders in pieces: every input whole, one byte at a time, and split at arbitrary
 * points (the way a socket may deliver it). Shared by the uwsgi and HTTP/1 parser tests.
 */

/** One chunk per byte. */
export function bytewise (buf: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1))
  return out
}

/**
 * Splits `buf` at cut points taken modulo length + 1 (so any random integers will do);
 * duplicates collapse, and cuts at 0 or at the end yield empty chunks, which decoders must
 * accept too.
 */
export function splitAtWrapped (buf: Buffer, cuts: number[]): Buffer[] {
  return cutAt(buf, [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((x, y) => x - y))
}

/** The pieces of `buf` between ascending offsets in [0, length] (0 or length give an empty piece). */
export function cutAt (buf: Buffer, points: readonly number[]): Buffer[] {
  const out: Buffer[] = []
  let prev = 0
  for (const p of points) {
    out.push(buf.subarray(prev, p))
    prev = p
  }
  out.push(buf.subarray(prev))
  return out
}
