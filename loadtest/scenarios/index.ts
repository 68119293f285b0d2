import type { ScenarioName } from '../scenario-names.js'
import { churnScenario } from './churn.js'
import { connectScenario } from './connect.js'
import type { ScenarioFactory } from './context.js'
import { echoScenario } from './echo.js'
import { fanoutScenario } from './fanout.js'

/** Soak is echo at a fixed rate: what differs (intervals, memory samples) happens in the main thread. */
export const SCENARIO_FACTORIES: Record<ScenarioName, ScenarioFactory> = {
  connect: connectScenario,
  echo: echoScenario,
  fanout: fanoutScenario,
  churn: churnScenario,
  soak: echoScenario
}
