import type { OpenAPI3 } from 'openapi-typescript';
import { operationsOf } from './contract.ts';
import { generatedHeader } from './generated.ts';

const docComment = (summary: string | undefined, description: string | undefined) => {
  const text = [summary, description?.trim()].filter(Boolean).join('\n\n');
  if (!text) return '';
  const lines = text.replace(/\*\//g, '*\\/').split('\n');
  return `  /**\n${lines.map((line) => `   *${line ? ` ${line}` : ''}`).join('\n')}\n   */\n`;
};

/**
 * The client's methods, one per operation of the spec, with their doc comments: the signature
 * is the operation's path parameters in order, then its body if it takes one, then the options.
 */
export function generateClientMethods(spec: OpenAPI3): string {
  const methods = operationsOf(spec).map(({ facts, docs }) => {
    const params = [...facts.pathParams.map((name) => `${name}: string`), ...(facts.body ? [`body: RequestBodies[${JSON.stringify(facts.operationId)}]`] : []), 'options?: OperationOptions'];
    return `${docComment(docs.summary, docs.description)}  ${facts.operationId}(${params.join(', ')}): Promise<OperationResult<${JSON.stringify(facts.operationId)}>>;`;
  });
  return `${generatedHeader('//', 'spec/dist/openapi.json')}import type { RequestBodies } from '@call-automation/contract';
import type { OperationOptions } from '../options.ts';
import type { OperationResult } from '../result.ts';

/** The operations of the API, one method each. */
export interface CallAutomationOperations {
${methods.join('\n\n')}
}
`;
}
