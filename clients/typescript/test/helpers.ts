// Assertions and environment handling the client's test files share.

import assert from "node:assert/strict";
import { BackflowError } from "../src/index.js";

/** Resolves to the BackflowError `promise` rejects with; fails when it resolves. */
export async function backflowError(promise: Promise<unknown>): Promise<BackflowError> {
  const error = await promise.then(
    () => assert.fail("the call succeeded"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof BackflowError, `not a BackflowError: ${error}`);
  return error;
}

/** Runs `body` with BACKFLOW_CA_CERT set to `value` (removed when undefined), then restores it. */
export function withCaCertEnv<T>(value: string | undefined, body: () => T): T {
  const saved = process.env.BACKFLOW_CA_CERT;
  if (value === undefined) delete process.env.BACKFLOW_CA_CERT;
  else process.env.BACKFLOW_CA_CERT = value;
  try {
    return body();
  } finally {
    if (saved === undefined) delete process.env.BACKFLOW_CA_CERT;
    else process.env.BACKFLOW_CA_CERT = saved;
  }
}
