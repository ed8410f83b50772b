export { runChecks } from './runner.ts';
export type { CheckResult, RunOptions } from './runner.ts';
export { allChecks } from './checks/index.ts';
export type { Check } from './checks/index.ts';
export { CheckContext, CheckFailed, CheckSkipped, fail } from './context.ts';
export type { Exchange, SendOptions, TargetOptions } from './context.ts';
export { Contract } from './contract.ts';
export { summaryTable, toJUnit } from './report.ts';
