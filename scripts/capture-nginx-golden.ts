/**
 * Refresh test/fixtures/nginx-golden/: start the installed nginx (/usr/sbin/nginx) with
 * `uwsgi_pass` to a capturing unix socket, send every request of cases.ts, and store the
 * exact bytes nginx sent (<case>.bin: header, vars, body) with the ports it used
 * (manifest.json), so the decoder tests can decode real nginx packets on a box without nginx.
 *
 *   node --import tsx scripts/capture-nginx-golden.ts
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DOCUMENT_ROOT, GOLDEN_CASES } from '../test/fixtures/nginx-golden/cases.ts'
import { cleanupHooks, packetVars, startCaptureRig } from '../test/fixtures/nginx-golden/capture.ts'
import { NGINX_BIN, nginxMissing, nginxVersion } from '../test/helpers/nginx.ts'

const dir = new URL('../test/fixtures/nginx-golden/', import.meta.url).pathname

export interface GoldenManifest {
  nginx: string
  uwsgiParams: string
  documentRoot: string
  cases: Array<{ name: string, file: string, remotePort: number, serverPort: number, bytes: number }>
}

async function main (): Promise<void> {
  const missing = nginxMissing()
  if (missing !== undefined) {
    console.error(missing)
    process.exit(1)
  }
  const hooks = cleanupHooks()
  try {
    const rig = await startCaptureRig(hooks)
    const manifest: GoldenManifest = {
      nginx: nginxVersion(),
      uwsgiParams: '/etc/nginx/uwsgi_params',
      documentRoot: DOCUMENT_ROOT,
      cases: []
    }
    for (const c of GOLDEN_CASES) {
      const cap = await rig.capture(c)
      const file = `${c.name}.bin`
      writeFileSync(join(dir, file), cap.bytes)
      manifest.cases.push({ name: c.name, file, remotePort: cap.remotePort, serverPort: cap.serverPort, bytes: cap.bytes.length })
      console.log(`${c.name}: ${cap.bytes.length} bytes, ${packetVars(cap.bytes).length} vars`)
    }
    writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`)
    console.log(`wrote ${manifest.cases.length} packets from ${NGINX_BIN} ${manifest.nginx} to ${dir}`)
  } finally {
    await hooks.run()
  }
}

await main()
