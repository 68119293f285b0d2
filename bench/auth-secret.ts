/** The HS256 secret of the benchmark's `protected` server; load generators sign tokens with it. */
export const BENCH_AUTH_SECRET = 'bench-secret-bench-secret-bench-secret'
