export { startPrism, stopProcess } from './prism.ts';
export type { PrismOptions, RunningPrism } from './prism.ts';
export { startCallbackReceiver } from './receiver.ts';
export type { CallbackReceiver, ReceivedCallback } from './receiver.ts';
export { freePort } from './ports.ts';
