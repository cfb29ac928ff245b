/**
 * A CA bundle as operators give it (PEM), checked where it is read: OpenSSL skips what it
 * cannot parse in a bundle, so a garbled file would silently trust nothing (every peer
 * refused) instead of failing at start or reload. Shared by the app's --tls-client-ca and
 * the front's --upstream-tls-ca.
 */
import { X509Certificate } from 'node:crypto'

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** Throws unless the bundle holds at least one certificate and every one of them parses. */
export function checkCaBundle (pem: string | Buffer): void {
  const blocks = pem.toString('latin1').match(PEM_CERT) ?? []
  if (blocks.length === 0) throw new Error('the CA holds no PEM certificate (-----BEGIN CERTIFICATE-----)')
  for (const b of blocks) new X509Certificate(b) // throws on a bad one
}
