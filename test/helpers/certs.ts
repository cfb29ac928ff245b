/**
 * Test certificates made with the openssl CLI at test time (nothing secret is committed):
 * a CA, a server certificate for 127.0.0.1/localhost signed by it, a client certificate
 * signed by it, and an unrelated second CA with a client certificate and a server certificate
 * of its own (the "wrong CA" cases, and rotating to another CA). `makeCerts(dir)` returns null when openssl is not installed.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const OPENSSL = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((p) => existsSync(p)) ?? null

export interface CertFiles {
  /** The CA that signs the server and the good client certificate. */
  ca: string
  serverCert: string
  serverKey: string
  clientCert: string
  clientKey: string
  /** An unrelated CA, and a client certificate it signed. */
  otherCa: string
  otherClientCert: string
  otherClientKey: string
  /** A server certificate for 127.0.0.1/localhost signed by the other CA. */
  otherServerCert: string
  otherServerKey: string
}

function openssl (dir: string, args: string[]): void {
  execFileSync(OPENSSL!, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

function ca (dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
}

function leaf (dir: string, caName: string, name: string, ext: string): void {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`,
    '-keyout', `${name}.key`, '-out', `${name}.csr`])
  writeFileSync(join(dir, `${name}.ext`), ext)
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`,
    '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`])
}

/**
 * Certificates for one test file, or why its tests skip: without openssl the file's tests
 * skip with one notice line naming `what`.
 */
export function certsOrSkip (dir: string, what: string): { certs: CertFiles | null, skip: string | false } {
  const certs = makeCerts(dir)
  if (certs === null) console.log(`# openssl not installed: ${what} skipped`)
  return { certs, skip: certs === null ? 'openssl not installed' : false }
}

/** Writes the files into `dir` (a fresh temp dir); null without openssl. */
export function makeCerts (dir: string): CertFiles | null {
  if (OPENSSL === null) return null
  ca(dir, 'ca')
  ca(dir, 'other-ca')
  leaf(dir, 'ca', 'server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  leaf(dir, 'ca', 'client', 'extendedKeyUsage=clientAuth\n')
  leaf(dir, 'other-ca', 'other-client', 'extendedKeyUsage=clientAuth\n')
  leaf(dir, 'other-ca', 'other-server', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  const f = (n: string): string => join(dir, n)
  return {
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    otherCa: f('other-ca.pem'),
    otherClientCert: f('other-client.pem'),
    otherClientKey: f('other-client.key'),
    otherServerCert: f('other-server.pem'),
    otherServerKey: f('other-server.key')
  }
}
