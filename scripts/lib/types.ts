import openapiTS, { astToString, type OpenAPI3 } from 'openapi-typescript';
import { generatedHeader } from './generated.ts';

/** TypeScript types of the whole spec (paths, operations, webhooks, components), by openapi-typescript. */
export async function generateTypes(spec: OpenAPI3): Promise<string> {
  const ast = await openapiTS(spec, { rootTypes: true, rootTypesNoSchemaPrefix: true, defaultNonNullable: false });
  return `${generatedHeader('//', 'spec/dist/openapi.json')}${astToString(ast)}`;
}
