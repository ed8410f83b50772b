// The one Ajv set-up for the spec, shared with the conformance suite through the contract package.
export { createSpecAjv, extensionsIn, specId } from '../../packages/contract/src/spec-ajv.ts';
