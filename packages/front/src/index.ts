export { type ClientTls, createFront, type FrontOptions, reloadClientTls } from './server.js'
export { ferry } from './plugin.js'
export { Forwarder } from './forwarder.js'
export { UpstreamPool, type PoolOptions } from './pool.js'
export { UpstreamNode } from './node.js'
export { pick, type Pickable } from './balancer.js'
export { buildRequestHead, nextRequestId, type HeadOptions } from './head.js'
export { FRONT_ERRORS, type FrontErrorCode, frontError } from './errors.js'
export {
  DEFAULTS, type FerryOptions, type PoolConfig, type RouteConfig, type StaticConfig, normalizeOptions
} from './options.js'
