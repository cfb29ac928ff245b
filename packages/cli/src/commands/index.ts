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
                               dns://app.internal:8001                        A/AAAA records, re-resolved
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
  --max-fails <n>            failures within --fail-timeout that eject a node default 1
                             (nginx: max_fails)
  --fail-timeout <dur>       failure window and ejection time                 default 10s
                             (nginx: fail_timeout)
  --health-interval <dur>    PING every connection this often; 0 = off        default 5s
  --connect-timeout <dur>    connect + HELLO                                  default 5s
                             (nginx: proxy_connect_timeout)
  --no-retry                 do not retry a failed request on another node    (retry is on:
                             once, only before any response byte, and only when safe: idempotent
                             method without body, or a stream the node refused unprocessed)
                             (nginx: proxy_next_upstream)
  --max-waiting <n>          requests waiting for a node to connect, per pool default 1024
  --dns-interval <dur>       re-resolve dns:// nodes                          default 5s
  --auth <token>             token sent in HELLO (the app-server's --auth)

Limits and timeouts (each answer carries the request id in x-request-id):
  --timeout <dur>            wait for the response head; past it 504          default 60s
                             (nginx: proxy_read_timeout; per route in --config)
  --idle-timeout <dur>       longest pause once bytes flow; past it 504/cut   default 60s
  --max-body <size>          largest request body; past it 413; 0 = no limit  default 0
                             (nginx: client_max_body_size)
  --max-header-size <size>   largest request head; past it 431                default 16k
                             (nginx: large_client_header_buffers)
  --retry-after <s>          Retry-After on 503 answers                       default 1

Trust:
  --forwarded-allow-ips <ip,…>  peers whose X-Forwarded-For/-Proto are believed ('*' = any);
                             from others those headers are dropped            default none
                             (gunicorn: forwarded_allow_ips)
  --trust-request-id         take the client's x-request-id as the request id
  --server-name <name>       SERVER_NAME passed to the app                    default local address

TLS and HTTP/2 towards clients:
  --tls-cert <file>          PEM certificate (nginx: ssl_certificate)
  --tls-key <file>           PEM private key (nginx: ssl_certificate_key)
  --http2                    HTTP/2 (h2 over TLS with HTTP/1.1 fallback; h2c without TLS)

Logging (pino JSON on stdout; one "listening" line with "addresses" on start):
  --access-log / --no-access-log  one line per request: method, path, status, bytes,
                             ms, reqId, upstream                              default on
  --log-level <level>        trace, debug, info, warn, error                  default info

Every option can also come from the environment: FERRY_FRONT_<OPTION> (e.g.
FERRY_FRONT_MAX_BODY=10m, FERRY_FRONT_UPSTREAM=unix:/a.sock,unix:/b.sock). Flags win over
the environment, the environment over the config file.

Signals: SIGHUP reload upstreams · SIGTERM/SIGINT finish requests in flight, then exit.
Sizes: 1048576, 512k, 10m, 1g. Durations: 500 (ms), 500ms, 5s, 2m.
`

export const commands: Record<string, Command> = {
  front: {
    summary: 'run the front: static files, and dynamic requests to app-server nodes',
    help: FRONT_HELP,
    load: () => import('./front.js')
  }
}
