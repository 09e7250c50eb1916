export { LoadSpec, type LoadSpecInput, type LoadVerdict } from './load.js';
export type { DeliveryRecord, DeliveryResult } from './notifier.js';
export { DEFAULT_NOTIFY_RETRY_MS } from './notifier.js';
export type { OrderTruth, RefundRecord, TruthStatus } from './order-book.js';
export {
  drawScenarioOf,
  FAULT_KINDS,
  type FaultKind,
  FaultSpec,
  type FaultSpecInput,
  MIXES,
  type MixName,
  mixLabels,
  Scenario,
  type ScenarioInput,
  ScriptedFault,
  UNPROCESSED_FAULTS,
} from './scenario.js';
export {
  type CallRecord,
  type CreateOrderInput,
  createSimulator,
  REFUND_WINDOW_MS,
  type Simulator,
  type SimulatorAdmin,
  type SimulatorOptions,
} from './simulator.js';
export type { CreateKeyInput, SimulatorKeysView, SimulatorKeyView } from './simulator-keys.js';
