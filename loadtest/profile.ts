import type { ScenarioName } from './scenario-names.js'

/** Which recorded series stand for a scenario's headline numbers. */
export interface ScenarioProfile {
  /** The histogram behind p50, p99… */
  latency: string
  latencyLabel: string
  /** The counter behind `rate`. */
  throughput: string
  throughputLabel: string
  /** Operations attempted and failed, behind `errors`. */
  attempts: string
  failures: string
}

const ECHO: ScenarioProfile = { latency: 'reply', latencyLabel: 'reply latency', throughput: 'replies', throughputLabel: 'replies/s', attempts: 'requests', failures: 'errors' }
const HANDSHAKES: ScenarioProfile = { latency: 'connect', latencyLabel: 'handshake latency (to $welcome)', throughput: 'connects', throughputLabel: 'connections/s', attempts: 'connect_attempts', failures: 'connect_failures' }

export const PROFILES: Record<ScenarioName, ScenarioProfile> = {
  echo: ECHO,
  soak: ECHO,
  fanout: { latency: 'delivery', latencyLabel: 'delivery latency (publish sent → event received)', throughput: 'deliveries', throughputLabel: 'deliveries/s', attempts: 'requests', failures: 'errors' },
  connect: HANDSHAKES,
  churn: HANDSHAKES
}
