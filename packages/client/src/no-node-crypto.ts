/** Browser builds sign with Web Crypto alone: no node:crypto path (see `node-crypto.ts`). */
import type * as Node from './node-crypto.ts';

export const nodeCrypto: typeof Node.nodeCrypto = undefined;
export const nodeHmacSigner: typeof Node.nodeHmacSigner | undefined = undefined;
