/**
 * The end-to-end configurations: how to start each one's servers (as child processes on
 * temp unix sockets and 127.0.0.1 port 0) and what load to put on it. Every configuration
 * answers the same hello world (bench/servers/), so the load generator sees the same bytes.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { NODE_FLAGS } from '../packages/cli/src/node-flags.ts'
import { REQUEST_CASES } from './fixtures.ts'
import type { Workload } from './load.ts'
import { freePort, type ServerProc, startServer } from './procs.ts'

export const NGINX = '/usr/sbin/nginx'
export const UWSGI = '/usr/bin/uwsgi'
const UWSGI_PYTHON = '/usr/lib/uwsgi/plugins/python3_plugin.so'

export interface Running {
  /** http://127.0.0.1:port the load generator targets. */
  origin: string
  procs: ServerProc[]
  /** The innermost servers: bytes through their sockets per request are the inner hop's. */
  hop: ServerProc[]
}

export interface Config {
  name: string
  label: string
  workload: Workload
  /** The fastify-direct configuration of the same workload (ratio = req/s ÷ its req/s). */
  baseline: string
  /** Codec between the tiers whose Node-side cost counts as framing ('' = not a ferry hop). */
  framing: '' | 'native' | 'uwsgi'
  /** Why it cannot run on this machine, or null. */
  unavailable (): string | null
  start (dir: string): Promise<Running>
}

export interface ConfigContext {
  root: string
}

const browserCase = REQUEST_CASES.find((c) => c.name === 'browser-get')!
function browserHeaders (): Record<string, string> {
  const out: Record<string, string> = {}
  const h = browserCase.head.headers
  for (let i = 0; i < h.length; i += 2) if (h[i] !== 'host') out[h[i]!] = h[i + 1]!
  return out
}

export const WORKLOADS: Record<Workload['name'], Workload> = {
  hello: { name: 'hello', method: 'GET', path: '/', headers: {} },
  browser: { name: 'browser', method: 'GET', path: browserCase.head.path, headers: browserHeaders() },
  post64k: {
    name: 'post64k',
    method: 'POST',
    path: '/echo',
    headers: { 'content-type': 'application/octet-stream' },
    body: Buffer.alloc(64 * 1024, 'x')
  }
}

const origin = (p: ServerProc): string => {
  const tcp = p.addresses.find((a) => a.startsWith('tcp://'))
  if (tcp === undefined) throw new Error(`${p.name} reported no tcp address: ${p.addresses.join(' ')}`)
  return tcp.replace('tcp://', 'http://')
}

export function configurations (ctx: ConfigContext): Config[] {
  const cli = join(ctx.root, 'packages/cli/dist/bin.js')
  const servers = join(ctx.root, 'bench/servers')
  const handler = join(servers, 'hello-handler.mjs')
  const node = process.execPath

  const noFerry = (): string | null => (existsSync(cli) ? null : 'packages/cli/dist/bin.js missing — run `npx tsc -b`')
  const noNginx = (): string | null => (existsSync(NGINX) ? null : `${NGINX} not installed`)
  const noUwsgi = (): string | null => (existsSync(UWSGI) && existsSync(UWSGI_PYTHON) ? null : `${UWSGI} with the python3 plugin not installed`)

  const fastify = (name: string, where: string): Promise<ServerProc> =>
    startServer({ name, command: node, args: [...NODE_FLAGS, join(servers, 'fastify-hello.mjs'), where], ready: 'listening-line' })

  const app = (name: string, listen: string, extra: string[] = []): Promise<ServerProc> =>
    startServer({ name, command: node, args: [...NODE_FLAGS, cli, 'app', handler, '--listen', listen, ...extra], cwd: ctx.root, ready: 'listening-line' })

  const front = (upstreams: string[]): Promise<ServerProc> =>
    startServer({
      name: 'front',
      command: node,
      args: [...NODE_FLAGS, cli, 'front', '--listen', '127.0.0.1:0', '--no-access-log', ...upstreams.flatMap((u) => ['--upstream', u])],
      cwd: ctx.root,
      ready: 'listening-line'
    })

  /** front → n app nodes on unix sockets (native unless `scheme` says uwsgi). */
  const ferry = async (dir: string, n: number, scheme: 'unix' | 'tcp' | 'uwsgi+unix', extra: string[] = []): Promise<Running> => {
    const apps: ServerProc[] = []
    const procs: ServerProc[] = []
    try {
      const started = await Promise.all(Array.from({ length: n }, (_, i) =>
        app(`app${n > 1 ? i + 1 : ''}`, scheme === 'tcp' ? 'tcp://127.0.0.1:0' : `unix:${join(dir, `app${i}.sock`)}`, extra)))
      apps.push(...started)
      procs.push(...started)
      const upstreams = apps.map((a) => {
        const addr = a.addresses[0]!
        return scheme === 'uwsgi+unix' ? `uwsgi+${addr}` : addr
      })
      const f = await front(upstreams)
      procs.unshift(f)
      return { origin: origin(f), procs, hop: apps }
    } catch (err) {
      await Promise.all(procs.map((p) => p.stop()))
      throw err
    }
  }

  const fastifyDirect = async (): Promise<Running> => {
    const f = await fastify('fastify', '0')
    return { origin: origin(f), procs: [f], hop: [f] }
  }

  const replyFrom = async (): Promise<Running> => {
    const upstream = await fastify('upstream', '0')
    try {
      const proxy = await startServer({
        name: 'proxy',
        command: node,
        args: [...NODE_FLAGS, join(servers, 'fastify-proxy.mjs'), origin(upstream)],
        ready: 'listening-line'
      })
      return { origin: origin(proxy), procs: [proxy, upstream], hop: [upstream] }
    } catch (err) {
      await upstream.stop()
      throw err
    }
  }

  /** nginx with one worker, `uwsgi_pass` to the socket (several: an upstream block, round robin). */
  const nginx = async (dir: string, upstreamSockets: string[]): Promise<ServerProc> => {
    const port = await freePort()
    for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d), { recursive: true })
    const conf = join(dir, 'nginx.conf')
    // as root, nginx would run its worker as nobody, who cannot reach the sockets in our 0700 temp dir
    const user = process.getuid?.() === 0 ? 'user root;\n' : ''
    writeFileSync(conf, `${user}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 16m;
  upstream app {
${upstreamSockets.map((u) => `    server unix:${u};`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      include /etc/nginx/uwsgi_params;
      uwsgi_pass app;
    }
  }
}
`)
    return startServer({
      name: 'nginx',
      command: NGINX,
      args: ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')],
      ready: `tcp://127.0.0.1:${port}`
    })
  }

  /** nginx → ferry app; with `direct` threads, nginx balances over the threads' own sockets. */
  const nginxFerry = async (dir: string, direct = 0): Promise<Running> => {
    const sock = join(dir, 'app.sock')
    const a = await app('app', `unix:${sock}`, direct > 0 ? ['--threads', '1', '--direct', String(direct)] : [])
    try {
      const n = await nginx(dir, direct > 0 ? Array.from({ length: direct }, (_, i) => `${sock}.${i + 1}`) : [sock])
      return { origin: origin(n), procs: [n, a], hop: [a] }
    } catch (err) {
      await a.stop()
      throw err
    }
  }

  const nginxUwsgi = async (dir: string): Promise<Running> => {
    const sock = join(dir, 'uwsgi.sock')
    const u = await startServer({
      name: 'uwsgi',
      command: UWSGI,
      args: [
        '--plugin', 'python3', '--socket', sock, '--wsgi-file', join(servers, 'uwsgi_hello.py'),
        '--master', '--processes', '2', '--die-on-term', '--disable-logging'
      ],
      ready: `unix:${sock}`
    })
    try {
      const n = await nginx(dir, [sock])
      return { origin: origin(n), procs: [n, u], hop: [u] }
    } catch (err) {
      await u.stop()
      throw err
    }
  }

  const W = WORKLOADS
  return [
    { name: 'fastify', label: 'fastify direct', workload: W.hello, baseline: 'fastify', framing: '', unavailable: () => null, start: fastifyDirect },
    { name: 'ferry-unix', label: 'ferry front → app, native, unix, pool', workload: W.hello, baseline: 'fastify', framing: 'native', unavailable: noFerry, start: (d) => ferry(d, 1, 'unix') },
    { name: 'ferry-tcp', label: 'ferry front → app, native, tcp, pool', workload: W.hello, baseline: 'fastify', framing: 'native', unavailable: noFerry, start: (d) => ferry(d, 1, 'tcp') },
    { name: 'ferry-uwsgi', label: 'ferry front → app, uwsgi, unix, pool', workload: W.hello, baseline: 'fastify', framing: 'uwsgi', unavailable: noFerry, start: (d) => ferry(d, 1, 'uwsgi+unix') },
    { name: 'ferry-inline', label: 'ferry front → app, native, unix, handler inline (--threads 0)', workload: W.hello, baseline: 'fastify', framing: 'native', unavailable: noFerry, start: (d) => ferry(d, 1, 'unix', ['--threads', '0']) },
    { name: 'ferry-direct', label: 'ferry front → app, native, unix, 2 --direct threads (handler inline on each)', workload: W.hello, baseline: 'fastify', framing: 'native', unavailable: noFerry, start: (d) => ferry(d, 1, 'unix', ['--threads', '1', '--direct', '2']) },
    { name: 'ferry-direct-1', label: 'ferry front → app, native, unix, 1 --direct thread (handler inline)', workload: W.hello, baseline: 'fastify', framing: 'native', unavailable: noFerry, start: (d) => ferry(d, 1, 'unix', ['--threads', '1', '--direct', '1']) },
    { name: 'reply-from', label: 'fastify + @fastify/reply-from → fastify (tcp)', workload: W.hello, baseline: 'fastify', framing: '', unavailable: () => null, start: replyFrom },
    { name: 'nginx-ferry', label: 'nginx uwsgi_pass → ferry app (unix)', workload: W.hello, baseline: 'fastify', framing: '', unavailable: () => noNginx() ?? noFerry(), start: (d) => nginxFerry(d) },
    { name: 'nginx-ferry-direct', label: 'nginx uwsgi_pass → the 2 --direct threads of a ferry app (unix, an upstream block)', workload: W.hello, baseline: 'fastify', framing: '', unavailable: () => noNginx() ?? noFerry(), start: (d) => nginxFerry(d, 2) },
    { name: 'nginx-uwsgi', label: 'nginx uwsgi_pass → uWSGI python, 2 processes (unix)', workload: W.hello, baseline: 'fastify', framing: '', unavailable: () => noNginx() ?? noUwsgi(), start: nginxUwsgi },
    { name: 'fastify-browser', label: 'fastify direct, browser headers', workload: W.browser, baseline: 'fastify-browser', framing: '', unavailable: () => null, start: fastifyDirect },
    { name: 'ferry-unix-browser', label: 'ferry native unix, browser headers', workload: W.browser, baseline: 'fastify-browser', framing: 'native', unavailable: noFerry, start: (d) => ferry(d, 1, 'unix') },
    { name: 'reply-from-browser', label: 'reply-from, browser headers', workload: W.browser, baseline: 'fastify-browser', framing: '', unavailable: () => null, start: replyFrom },
    { name: 'fastify-post64k', label: 'fastify direct, 64 KiB POST echo', workload: W.post64k, baseline: 'fastify-post64k', framing: '', unavailable: () => null, start: fastifyDirect },
    { name: 'ferry-unix-post64k', label: 'ferry native unix, 64 KiB POST echo', workload: W.post64k, baseline: 'fastify-post64k', framing: 'native', unavailable: noFerry, start: (d) => ferry(d, 1, 'unix') },
    { name: 'reply-from-post64k', label: 'reply-from, 64 KiB POST echo', workload: W.post64k, baseline: 'fastify-post64k', framing: '', unavailable: () => null, start: replyFrom },
    { name: 'ferry-nodes-1', label: 'ferry native unix, 1 app node (1 thread) behind one front', workload: W.hello, baseline: 'fastify', framing: 'native', unavailable: noFerry, start: (d) => ferry(d, 1, 'unix', ['--threads', '1']) },
    { name: 'ferry-nodes-4', label: 'ferry native unix, 4 app nodes (1 thread each) behind one front', workload: W.hello, baseline: 'fastify', framing: 'native', unavailable: noFerry, start: (d) => ferry(d, 4, 'unix', ['--threads', '1']) },
    { name: 'ferry-nodes-16', label: 'ferry native unix, 16 app nodes (1 thread each) behind one front', workload: W.hello, baseline: 'fastify', framing: 'native', unavailable: noFerry, start: (d) => ferry(d, 16, 'unix', ['--threads', '1']) }
  ]
}
