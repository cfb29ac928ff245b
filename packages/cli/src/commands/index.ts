/**
 * The command table. Help texts are here so `ferry --help` and `ferry <cmd> --help` load
 * no server code; `load()` imports the implementation only when the command runs.
 */
export interface CommandModule {
  run (argv: string[]): Promise<number | undefined>
}

export interface Command {
  summary: string
  help: string
  load (): Promise<CommandModule>
  /** `ferry <cmd> --help` is the command's own (run() gets the flag): `help` is the short form. */
  ownHelp?: true
}

const FRONT_HELP = `ferry front — the front web server: static files, and dynamic requests to app-server nodes

Usage:
  ferry front --listen <addr> --upstream <node> [--upstream <node> …] [--static <dir>[:<prefix>]] [options]
  ferry front --config ferry.config.json

Addresses:
  --listen <addr>            where clients connect: host:port, tcp://host:port, unix:/path
                             (port 0 picks a free port)                      default 127.0.0.1:8080
  --upstream <node>          an app-server node of the default pool (repeatable):
                               unix:/run/app.sock, tcp://10.0.0.5:8001        ferry native (multiplexed)
                               uwsgi+unix:/run/uwsgi.sock, uwsgi+tcp://h:p    uwsgi (one connection per request)
                               tls://10.0.0.5:8001, uwsgi+tls://h:p           the same over TLS (see below;
                                                                              nginx: suwsgi://)
                               dns://app.internal:8001                        A/AAAA records, re-resolved
                               srv://_ferry._tcp.app.internal                 SRV records (see DNS below)
                               uwsgi+dns://…, uwsgi+srv://…                   DNS, nodes speaking uwsgi
                             nginx: upstream { server …; }
  --static <dir>[:<prefix>]  serve files from <dir> under <prefix> (default /), with ETag,
                             Last-Modified, Range, index.html; a missing file falls through to
                             the upstreams (nginx: try_files $uri @app)       (repeatable)
  -c, --config <file>        JSON, .mjs or .ts file: everything the flags say, plus named pools
                             and prefix routes:
                               { "pools": { "api": { "upstreams": ["unix:/run/api.sock"] } },
                                 "routes": [{ "prefix": "/api", "pool": "api", "timeout": 5000 }],
                                 "static": [{ "dir": "./public", "prefix": "/" }] }
                             SIGHUP re-reads its upstreams (new nodes connect, removed ones drain)

Upstream health and balancing (least outstanding requests, power of two choices):
  --sessions <n>             persistent connections per native node          default 2
                             (nginx: keepalive)
  --no-direct                do not use the thread endpoints a node announces
                             (ferry app --direct): every request to the node's own
                             address. By default each endpoint gets a connection of its
                             own and takes the node's requests (one that cannot be
                             reached is logged once and the node's address serves)
  --max-fails <n>            failures within --fail-timeout that eject a node default 1
                             (nginx: max_fails)
  --fail-timeout <dur>       failure window and ejection time                 default 10s
                             (nginx: fail_timeout)
  --health-interval <dur>    PING every connection this often; 0 = off        default 5s
                             (not one that read from its node since the last check;
                             no answer within --connect-timeout, 1 s at least: closed;
                             uwsgi nodes: a connection; over TLS it also waits for the
                             node to refuse this front's certificate)
  --connect-timeout <dur>    connect + HELLO                                  default 5s
                             (nginx: proxy_connect_timeout)
  --no-retry                 do not retry a failed request on another node    (retry is on:
                             once, only before any response byte, and only when safe: idempotent
                             method without body, or a stream the node refused unprocessed)
                             (nginx: proxy_next_upstream)
  --max-waiting <n>          requests waiting for a node to connect, per pool default 1024
  --auth <secret>            shared secret proven by HMAC challenge-response in HELLO (never
                             sent); must match the app nodes' --auth. A node that cannot prove
                             it is refused. Prefer FERRY_FRONT_AUTH (ps shows command lines)

Nodes from DNS (Kubernetes headless services, Consul; nginx: server … resolve):
  dns://<name>:<port>        one node per A/AAAA address of <name>, on <port>
                             (nginx: server app.internal:8001 resolve)
  srv://<name>               SRV records (RFC 2782): one node per A/AAAA address of each
                             record's target, on the record's port, e.g.
                               srv://_ferry._tcp.app.default.svc.cluster.local  (Kubernetes:
                                 headless service, port named "ferry")
                               srv://_api._tcp.service.consul                   (Consul)
                             (nginx: server app.internal service=_ferry._tcp resolve)
                             Only the records with the lowest priority value whose targets
                             resolve to at least one address are used; higher values are
                             backups, used only while no lower one resolves.
                             Weights are not used: least-outstanding balancing already sends
                             a slower node less. A target "." (service not available) gives
                             no node; srv:// takes no port (the records carry it).
  Every --dns-interval the names are asked again (TTLs are not used; nginx: resolver … valid=):
  new nodes get traffic, vanished ones drain. A lookup that fails (no answer, SERVFAIL, no
  such name) keeps the last known nodes and logs a warning.
  --dns-interval <dur>       re-resolve dns:// and srv:// names               default 5s
  --resolver <ip[:port]>     DNS server for dns:// and srv:// names (repeatable: tried in
                             order; [v6]:port for IPv6; port default 53). With one, names go
                             only to these servers (not /etc/hosts); localhost and IP
                             addresses are still looked up locally. A server silent for
                             min(2 s, --dns-interval), then twice that on the retry, fails
                             the lookup (nginx: resolver_timeout). Read at start only
                             (SIGHUP keeps the running servers).
                             (nginx: resolver)                  default the system's (/etc/resolv.conf)
                             Config file: "resolver": ["10.0.0.2", "10.0.0.3:5353"]

Limits and timeouts (each answer carries the request id in x-request-id):
  --timeout <dur>            wait for the response head; past it 504          default 60s
                             (nginx: proxy_read_timeout; per route in --config)
  --idle-timeout <dur>       longest pause once bytes flow; past it 504/cut   default 60s
  --max-body <size>          largest request body; past it 413; 0 = no limit  default 0
                             (nginx: client_max_body_size)
  --max-header-size <size>   largest request head; past it 431                default 16k
                             (nginx: large_client_header_buffers)
  --retry-after <s>          Retry-After on 503 answers                       default 1

WebSockets (HTTP/1.1 upgrades on forwarded routes, carried as streams to native nodes;
a uwsgi node answers 501):
  --ws-max-message <size>    largest message either way; past it close 1009   default 16m
  --ws-idle-timeout <dur>    close (1001) a socket with no frame either way   default 0 = never
                             (nginx: proxy_read_timeout also cuts WebSockets; ferry does not
                             unless asked; pings count as traffic)
  --no-websocket             no upgrades (Upgrade requests are served as plain requests)

Trust:
  --forwarded-allow-ips <ip,…>  peers whose X-Forwarded-For/-Proto are believed ('*' = any);
                             from others those headers are dropped            default none
                             (gunicorn: forwarded_allow_ips)
  --trust-request-id         take the client's x-request-id as the request id
  --server-name <name>       SERVER_NAME passed to the app                    default local address

TLS towards app nodes (tls:// and uwsgi+tls:// upstreams; given with none: an error):
  --upstream-tls-ca <file>   PEM CA(s) the nodes' certificates must chain to
                             (nginx: proxy_ssl_trusted_certificate)  default Node's root CAs
  --upstream-tls-cert <file> client certificate shown to nodes (their --tls-client-ca)
  --upstream-tls-key <file>  its key            (nginx: proxy_ssl_certificate[_key])
  --upstream-tls-servername <name>  SNI and the name the node's certificate must carry
                             (nginx: proxy_ssl_name)                 default the address's host
                             The node's certificate is always verified; one that fails
                             (or a node that refuses ours) is not used: 502
                             FERRY_ERR_FRONT_UPSTREAM_TLS, logged with the reason.
                             Config file: "upstreamTls": {"ca","cert","key","servername"}
                             SIGHUP re-reads these files (with or without --config) for new
                             connections; open sessions go on. Bad files: the running ones
                             stay (FERRY_ERR_FRONT_TLS_RELOAD)

TLS and HTTP/2 towards clients:
  --tls-cert <file>          PEM certificate (nginx: ssl_certificate)
  --tls-key <file>           PEM private key (nginx: ssl_certificate_key)
                             Config file: "tls": {"cert","key"}. SIGHUP re-reads both (the
                             files the config names then, if it changed them): new client
                             connections get the new certificate, open ones go on. Bad
                             files: the running one stays (FERRY_ERR_FRONT_TLS_RELOAD)
  --http2                    HTTP/2 (h2 over TLS with HTTP/1.1 fallback; h2c without TLS)

Logging (pino JSON on stdout; one "listening" line with "addresses" on start):
  --access-log / --no-access-log  one line per request: method, path, status, bytes,
                             ms, reqId, upstream                              default on
  --log-level <level>        trace, debug, info, warn, error                  default info

Every option can also come from the environment: FERRY_FRONT_<OPTION> (e.g.
FERRY_FRONT_MAX_BODY=10m, FERRY_FRONT_UPSTREAM=unix:/a.sock,unix:/b.sock). Flags win over
the environment, the environment over the config file.

Signals: SIGHUP reload upstreams (--config), the --upstream-tls-* files and the
--tls-cert/--tls-key files (rotate: replace the files, kill -HUP) · SIGTERM/SIGINT close
WebSockets (1001), finish requests in flight, then exit.
Sizes: 1048576, 512k, 10m, 1g. Durations: 500 (ms), 500ms, 5s, 2m.
`

const APP_HELP = `ferry app — an app-server node: runs a fetch handler in worker threads behind ferry/uwsgi sockets

Usage:
  ferry app <handler-module> [--listen <addr> …] [options]
  ferry app --mount /api=./api.ts --mount /cgi-bin=cgi:./cgi-bin/ --mount /=./site.ts [options]
  ferry app --config app.json

The handler module's default export is a Web-standard fetch handler: an object with
fetch(request, context) (a Hono app works as is) or a function (request, context) =>
Response. TypeScript modules (.ts, .mts) load directly. context = { requestId,
remoteAddress, remotePort, threadId, scriptName, originalUrl, bodyLength, log (pino, with
reqId), waitUntil(promise) }.

Every listener speaks both codecs: ferry native (a ferry front) and uwsgi (nginx uwsgi_pass).

Mounts (several applications in one app-server):
  --mount, -m <prefix>=<module>     a fetch handler at a URL prefix (repeatable). The longest
                                    prefix wins, on whole path segments: /api serves /api,
                                    /api/x and /api?q, never /apix. The handler routes on the
                                    path below its prefix: request.url is the URL with the prefix
                                    removed (at least "/"), context.scriptName the prefix ("" at
                                    /), context.originalUrl the URL as sent. A path no mount
                                    covers → 404 (FERRY_ERR_APP_NO_MOUNT). Each mount has its own
                                    pool (threads, queue, timeout…): a slow one cannot starve
                                    the others. "ferry app ./h.ts" is "--mount /=./h.ts".
                                    uWSGI: mount= + manage-script-name · WSGI: SCRIPT_NAME
  --mount <prefix>=cgi:<folder>     CGI programs (RFC 3875): one process per request, outside
                                    the pools. /cgi-bin/tool.sh/a/b?q runs <folder>/tool.sh
                                    with PATH_INFO=/a/b, QUERY_STRING=q, the body on stdin;
                                    Status:, Location: (local /path → internal GET; absolute URL
                                    → 302) are honoured. Only executable files inside the folder
                                    run (no .., no symlinks out: 403). The mount's timeout ends
                                    the program's process group (SIGTERM, then SIGKILL) → 504;
                                    stderr is logged with reqId; concurrency = programs at once
                                    (default 16), past it a bounded queue, then 503.
                                    Apache: ScriptAlias · nginx+fcgiwrap
  Per-mount settings (threads, concurrency, maxQueue, timeout, maxRequests, maxUncaught,
  maxMemory, middleware) go in the config file: {"mounts":[{"prefix":"/api","handler":"./api.ts",
  "threads":"1:4","timeout":5,"middleware":["compress"]},{"prefix":"/cgi-bin","cgi":"./cgi-bin"}]}.
  Anything a mount does not set comes from the flags. SIGHUP reloads every mount.

Middleware (PEP 3333 middleware; connect/Koa style):
  --middleware <list>        around every fetch mount's handler, outermost first, comma-
                             separated (repeatable); a mount's own ("middleware" in config)
                             run inside these. A module's default export is
                             (request, context, next) => Response; it may answer by itself.
                             Built-ins:
                               request-id         x-request-id on every response
                               compress[:br|gzip] gzip/br by Accept-Encoding q-values; skips
                                                  HEAD, 204/304, compressed types, < 1 KiB,
                                                  an existing Content-Encoding; sets Vary
                               cors[:<origin>|…]  CORS, answers preflight OPTIONS (config:
                                                  origins, methods, allowHeaders, exposeHeaders,
                                                  credentials, maxAge)
                               body-limit:<size>  413 past <size> (512k, 10m…): Content-Length
                                                  up front, streamed bytes counted
                             e.g. --middleware request-id,compress,./auth.ts

Sockets:
  --listen, -l <addr>        where to accept connections (repeatable): unix:/run/app.sock,
                             tcp://127.0.0.1:8001, 127.0.0.1:8001, tls://10.0.0.5:8001
                             (TLS: see Security); port 0 = any free port
                             (the "listening" log line has the real one).
                             default tcp://127.0.0.1:8001
                             uWSGI: socket · gunicorn: bind · PHP-FPM: listen
  --socket-mode <octal>      file mode of unix sockets, e.g. 660            default: umask
                             uWSGI: chmod-socket · PHP-FPM: listen.mode
  A stale unix socket file (no process accepting on it) is replaced; one held by a live
  process is an error (FERRY_ERR_APP_ADDRESS_IN_USE, exit 1).

Workers:
  --threads, -t <n|min:max>  worker threads running the handler. "4" = 4 threads; "2:8" =
                             start 2, grow to 8 while requests wait, shrink after 10 s idle;
                             "0" = run handlers on the main thread (no pool: for handlers
                             that never block; lower latency at light load, but one that
                             spins stalls the whole node — docs/operations.md).
                             default: the number of CPUs
                             uWSGI: processes/threads · gunicorn: workers · PHP-FPM: pm.max_children
  --direct <n>               n more threads that each serve native connections from fronts
                             on addresses of their own (unix:PATH.1 … PATH.n; tcp: a port
                             each), announced in HELLO: a ferry front sends its requests
                             there, to the thread that runs them, with no hop through the
                             main thread (≈ +15 % req/s for light handlers on a 2-vCPU VM).
                             Handlers run inline on each thread; one stuck past --timeout
                             is terminated and replaced, as is one that dies (its
                             connections close: the front retries or fails their requests);
                             uncaught exceptions and --max-uncaught as in the pool.
                             The pool still serves the node's own addresses (uwsgi, nginx).
                                                                              default 0
  --concurrency <n>          requests one thread runs at once (async handlers overlap
                             their I/O; 1 for CPU-bound handlers)           default 64
                             gunicorn: worker_connections
  --max-queue <n>            requests waiting for a free thread; past it the answer is 503
                             with Retry-After at once (FERRY_ERR_APP_QUEUE_FULL)   default 1024
                             uWSGI: listen (backlog) · gunicorn: backlog
  --timeout <seconds>        time a request may take, from when a worker begins it until its
                             response head (streamed bodies may run on); past it the
                             client gets 504 (FERRY_ERR_APP_TIMEOUT) and the handler's
                             request.signal aborts. A worker whose event loop is stuck (no
                             answer to a heartbeat) is terminated and replaced; requests it
                             had not started go to other workers. 0 = no limit.  default 30
                             uWSGI: harakiri · gunicorn: timeout · PHP-FPM: request_terminate_timeout
  Crash isolation            a thread that dies (an uncaught exception no request owns,
                             process.exit, --max-memory)
                             or is terminated as stuck harms only the request that caused it,
                             as far as it can be known: its requests that sent no response
                             head yet and whose body is still held (≤ 64 KiB) are re-dispatched
                             to another thread — those it had not begun, whatever the method;
                             those it had begun, once, if idempotent (GET HEAD OPTIONS PUT
                             DELETE TRACE), as suspects run at most one per thread. A suspect
                             that is on a second thread that dies fails with 500
                             (FERRY_ERR_APP_WORKER_CRASHED), as do begun POST/PATCH requests:
                             a poison request costs at most two threads. A thread that
                             crashed running one request only (--concurrency 1) fails just it.
  --max-requests <n>         recycle a thread after it took n requests: it gets no new work,
                             finishes what it has, ends, and a fresh one replaces it (a
                             thread start: ≈ 0.16 s of CPU measured on a 2-vCPU VM).
                             0 = never                                       default 0
                             uWSGI: max-requests · gunicorn: max_requests · PHP-FPM: pm.max_requests
  --max-requests-jitter <n>  add 0..n at random per thread, so threads do not recycle at
                             once                                            default 0
                             gunicorn: max_requests_jitter
  --max-uncaught <n>         an uncaught exception or unhandled rejection raised by a
                             request's own async work (a throw in its setTimeout, an
                             unawaited rejected promise) fails that request alone: 500
                             FERRY_ERR_APP_UNCAUGHT (or a reset once its head went out), and
                             the thread goes on with its other requests. Node calls resuming
                             after one unsafe, so after n of them a thread is recycled as
                             --max-requests does (in-flight requests finish, a fresh thread
                             replaces it). One raised by no running request (a
                             module-level timer, work left behind by a request whose handler
                             has settled — use context.waitUntil for work after the
                             response) still ends the thread. 0 = every uncaught exception ends its thread (Node's
                             default). --threads 0 (handlers on the main thread): the same,
                             with the process for the thread — past n the node drains and
                             exits 1 for its supervisor to restart it; one no request owns
                             ends it at once, logged (fatal, FERRY_ERR_APP_UNCAUGHT).
                             A recycle costs a thread start (measured ≈ 0.16 s of CPU on a
                             2-vCPU VM: modules and JIT warm-up again), so a low n makes
                             each error cost what many requests do   default 10000
                             uWSGI/PHP-FPM: an error fails its request · gunicorn: max_requests
  --max-memory <MiB>         old-generation heap limit per thread; a thread that passes it
                             dies (its requests get 500) and is replaced. 0 = Node's default.
                             uWSGI: reload-on-rss / limit-as

Lifecycle:
  --graceful-timeout <s>     on SIGTERM: GOAWAY to every front, stop accepting (unix socket
                             files are removed), let in-flight requests finish for up to this
                             long, then exit 0.                             default 30
                             gunicorn: graceful_timeout · uWSGI: worker-reload-mercy
  SIGHUP                     reload the handler module into a fresh pool; new requests go to
                             it at once, the old pool drains: no request fails.
                             gunicorn: HUP · uWSGI: touch-chain-reload
                             First it re-reads --tls-cert/--tls-key/--tls-client-ca: new
                             connections get them, open ones are untouched (rotate: replace
                             the files, kill -HUP; nginx does the same). Files that do not
                             load: the running ones stay (FERRY_ERR_APP_TLS_RELOAD).

WebSockets (native connections only; context.upgradeWebSocket(request) in the handler):
  --max-websockets <n>       most open WebSockets on this node; upgrades past it get 503
                             (FERRY_ERR_APP_WS_LIMIT). They do not use up --concurrency.
                                                                              default 10000
  --ws-max-message <size>    largest message a handler receives; past it close 1009
                                                                              default 16m
  On SIGTERM, WebSockets stay open for the graceful timeout, then are closed with 1001
  (going away) so clients reconnect to another node. Over uwsgi an upgrade gets 501.

Security:
  --auth <secret>            shared secret for the native link: the HELLO runs an HMAC-SHA256
                             challenge-response both ways, the secret never crosses the wire,
                             and a front without it is refused (FERRY_ERR_AUTH). Prefer the
                             environment (FERRY_APP_AUTH): ps shows command lines. A tcp
                             listener on a non-loopback address without it logs a warning.
                             AJP: secret · the fronts' --auth must match
  --tls-cert <file>          PEM certificate of this node, for tls:// listeners (required
  --tls-key <file>           by them; given with no tls:// listener: an error). Both codecs
                             work over TLS. uWSGI: ssl-socket · nginx: ssl_certificate[_key]
  --tls-client-ca <file>     fronts must present a client certificate this CA signed; a
                             connection without one (or failing its handshake) is closed
                             unread and logged (FERRY_ERR_APP_TLS_HANDSHAKE with the reason).
                             A verified certificate also admits uwsgi peers (--uwsgi-allow
                             is for unauthenticated ones). Counts as authentication for the
                             non-loopback warning. nginx: ssl_client_certificate +
                             ssl_verify_client on. --auth and TLS combine.
                             SIGHUP re-reads these three files (see SIGHUP below).
  --uwsgi-allow <ip,…>       client addresses allowed to speak uwsgi over tcp ('*' = any);
                             uwsgi has no authentication. Unix sockets are always allowed
                             (guard them with --socket-mode).      default 127.0.0.1,::1
                             gunicorn: forwarded_allow_ips

Observability:
  --stats <addr>             serve Prometheus text at http://<addr>/metrics: requests by status,
                             in flight, queue depth, threads/busy, handler-time histogram,
                             native connections and streams per connection.   default off
                             uWSGI: stats · PHP-FPM: pm.status_path
  --log-level <level>        fatal, error, warn, info, debug, trace, silent  default info
                             Logs are JSON lines (pino) on stdout; request lines carry reqId.
                             On start one line has "msg":"listening" and "addresses":[…].
  --log-stack-interval <s>   a request's error is always logged (reqId, code, message); the
                             same error (name + message) logs its full stack once per
                             interval per thread, repeats point at the request whose line
                             has it: formatting stacks is costly in an error storm.
                             0 = every stack                                  default 1

Configuration:
  --config, -c <file.json>   the same settings as camelCase keys, e.g.
                             {"handler":"./app.ts","listen":["unix:/run/app.sock"],"threads":"2:8",
                              "maxQueue":256,"timeout":10,"maxRequests":10000}
  Environment: FERRY_APP_<FLAG> for each flag (FERRY_APP_LISTEN, FERRY_APP_THREADS,
  FERRY_APP_MAX_QUEUE, …; FERRY_APP_LISTEN may list several addresses, comma-separated;
  FERRY_APP_MOUNT several mounts, space-separated; FERRY_APP_MIDDLEWARE a comma list),
  FERRY_APP_HANDLER for the module. Precedence: flags, then environment, then config file.

Examples:
  ferry app examples/hello/app.ts --listen unix:/tmp/app.sock --listen 127.0.0.1:8001
  ferry app ./app.ts -l tcp://0.0.0.0:8001 --threads 2:8 --timeout 10 --max-requests 5000 --stats 127.0.0.1:9101
  ferry app ./app.ts -l tls://10.0.0.5:8001 --tls-cert app1.pem --tls-key app1.key --tls-client-ca ca.pem
`

const BENCH_HELP = `ferry bench — the benchmark harness of ferry's source tree (bench/; the same as npm run bench)

Usage:
  ferry bench [codec|e2e|all] [--quick] [--only a,b] [--connections N] [options]

Runs the codec micro-bench (ns per encode/decode, bytes on the wire) and the end-to-end
runs (req/s, p50/p99, CPU µs per request of each tier) of ferry beside fastify direct,
fastify + @fastify/reply-from and nginx + uWSGI (those where installed), interleaved, and
writes bench/results/latest.{json,md,svg}. 'ferry bench --help' lists every option;
bench/README.md says how to read the figures. Needs the source tree (git clone, npm install).
`

export const commands: Record<string, Command> = {
  app: {
    summary: 'run an app-server node: a fetch handler in worker threads behind ferry/uwsgi sockets',
    help: APP_HELP,
    load: () => import('./app.js')
  },
  front: {
    summary: 'run the front: static files, and dynamic requests to app-server nodes',
    help: FRONT_HELP,
    load: () => import('./front.js')
  },
  bench: {
    summary: 'benchmark: the codec and the whole path beside fastify, reply-from, nginx + uWSGI',
    help: BENCH_HELP,
    load: () => import('./bench.js'),
    ownHelp: true
  }
}
