export { createSimulator, rawIdOf } from './simulator.ts';
export type { Simulator, SimulatorOptions } from './simulator.ts';
export { createSimulatorService } from './service.ts';
export type { SimulatorServiceOptions } from './service.ts';
export { runSimulator } from './run.ts';
export type { RunOptions, RunningSimulator } from './run.ts';
