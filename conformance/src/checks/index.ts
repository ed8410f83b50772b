import { authChecks } from './auth.ts';
import { callbackChecks } from './callbacks.ts';
import { errorChecks } from './errors.ts';
import { lifecycleChecks } from './lifecycle.ts';
import { negativeChecks } from './negative.ts';
import { positiveChecks } from './positive.ts';
import { repeatabilityChecks } from './repeatability.ts';
import type { Check } from './types.ts';

export type { Check } from './types.ts';

/** Every check, in the order they run. */
export const allChecks: Check[] = [...authChecks, ...errorChecks, ...negativeChecks, ...positiveChecks, ...repeatabilityChecks, ...lifecycleChecks, ...callbackChecks];
