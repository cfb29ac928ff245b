/**
 * Loading the user's handler module inside a worker (or on the main thread with --threads 0).
 * Accepted shapes of the default export (or of the module namespace when there is none):
 *   { fetch(request, context) }   Web-standard fetch handler; a Hono app is one of these
 *   (request, context) => Response   a bare function
 * TypeScript modules (.ts/.mts/.cts/.tsx) load through tsx's ESM hook, registered once per thread.
 */
import { appError } from './errors.js'

export type FetchHandler = (request: Request, context: unknown, executionCtx: unknown) => unknown

let tsxRegistered = false

async function registerTsx (): Promise<void> {
  if (tsxRegistered) return
  tsxRegistered = true
  // Both hooks: a .ts file outside a "type": "module" package loads through the CJS loader.
  const [{ register }, cjs] = await Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')])
  register()
  cjs.register()
}

function isTypeScript (url: string): boolean {
  const path = url.split('?')[0]!
  return /\.(ts|mts|cts|tsx)$/.test(path)
}

export async function loadHandler (url: string): Promise<FetchHandler> {
  if (isTypeScript(url)) await registerTsx()
  let mod: Record<string, unknown>
  try {
    mod = await import(url) as Record<string, unknown>
  } catch (cause) {
    throw appError('FERRY_ERR_APP_HANDLER_LOAD', `${url}: ${(cause as Error)?.message ?? cause}`, { cause })
  }
  let target: unknown = 'default' in mod ? mod.default : mod
  // A CommonJS module compiled by tsx may nest the default once more.
  if (target !== null && typeof target === 'object' && !('fetch' in target) && 'default' in target) {
    target = (target as { default: unknown }).default
  }
  if (typeof target === 'function') {
    const fn = target as FetchHandler
    // A class-like object (a Hono app is callable? no — but guard for function objects with fetch)
    const maybeFetch = (fn as unknown as { fetch?: unknown }).fetch
    if (typeof maybeFetch === 'function') return (maybeFetch as FetchHandler).bind(fn)
    return fn
  }
  if (target !== null && typeof target === 'object') {
    const f = (target as { fetch?: unknown }).fetch
    if (typeof f === 'function') return (f as FetchHandler).bind(target)
  }
  throw appError('FERRY_ERR_APP_HANDLER_SHAPE', url)
}
