// The part of autocannon's API the bench uses (the package ships no types).
declare module 'autocannon' {
  interface Options {
    url: string
    connections?: number
    duration?: number
    method?: string
    headers?: Record<string, string>
    body?: string | Buffer
    timeout?: number
  }
  interface Histogram { p50: number, p99: number, average: number }
  interface Result {
    duration: number
    requests: Histogram & { total: number }
    latency: Histogram
    errors: number
    timeouts: number
    non2xx: number
  }
  function autocannon (options: Options): Promise<Result>
  export default autocannon
}
