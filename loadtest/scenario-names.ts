export const SCENARIOS = ['connect', 'echo', 'fanout', 'churn', 'soak'] as const
export type ScenarioName = typeof SCENARIOS[number]

export function isScenario (name: string): name is ScenarioName {
  return (SCENARIOS as readonly string[]).includes(name)
}
