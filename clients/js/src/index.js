// @lmz/client — the JavaScript client of lmz (browsers and Node.js).
// See README.md; types in index.d.ts.
export {
  LmzClient, LumenizeClient, LoginRequiredError, ClientDisconnectedError, ConnectionLostError,
  MessageTooLargeError, parseJwtClaims, isRetryable, isOverloaded, DEFAULTS,
} from './client.js';
export {
  ctn, newContinuation, getOperationChain, continuationFromChain, isNestedOperationMarker,
  replaceNestedOperationMarkers, executeOperationChain, validateOperationChain,
  mesh, meshFn, isMeshCallable, getMeshGuard, MESH_CALLABLE, MESH_GUARD,
} from './ocan.js';
export { getOrCreateTabId } from './tab-id.js';
export { stringify, parse, preprocess, postprocess } from './structured-clone.js';
