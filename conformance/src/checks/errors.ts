import { fail } from '../context.ts';
import type { Check } from './types.ts';
import { paramsFor, validBody } from './shared.ts';

export const errorChecks: Check[] = [
  {
    id: 'errors.unknown-call',
    title: 'every operation on an unknown call answers 404',
    async run(context) {
      for (const operation of context.contract.onCall()) {
        const exchange = await context.send({ operationId: operation.operationId, params: paramsFor(context, operation), body: validBody(context, operation) });
        context.expectError(exchange, 404, `${operation.operationId} on an unknown call`);
      }
    },
  },
  {
    id: 'errors.method-not-allowed',
    title: 'a method a path lacks answers 405 with Allow',
    async run(context) {
      const paths = new Map<string, string[]>();
      for (const operation of context.contract.operations) paths.set(operation.path, [...(paths.get(operation.path) ?? []), operation.method]);
      for (const [path, methods] of paths) {
        const method = ['GET', 'PUT', 'PATCH', 'DELETE', 'POST'].find((m) => !methods.includes(m))!;
        const concrete = path.replace(/\{[^}]+\}/g, 'conformance-id');
        const exchange = await context.send({ method, path: concrete });
        context.expectError(exchange, 405, `${method} ${path}`);
        const allow = exchange.headers.get('allow')?.split(',').map((m) => m.trim().toUpperCase()) ?? [];
        for (const documented of methods) if (!allow.includes(documented)) fail(`${method} ${path}: Allow "${exchange.headers.get('allow')}" does not list ${documented}`, exchange);
      }
    },
  },
  {
    id: 'errors.unknown-path',
    title: 'an unknown path answers 404 with the error body',
    async run(context) {
      context.expectError(await context.send({ method: 'POST', path: '/conformance/no-such-path' }), 404, 'an unknown path');
    },
  },
];
