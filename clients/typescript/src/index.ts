// Backflow's TypeScript client: `BackflowClient` (promise helpers over Connect for Node,
// speaking gRPC to the control plane), its errors, and the generated backflow.v1 messages.

export { BackflowClient, PendingRun } from "./client.js";
export type { ClientOptions, TriggerOptions, WaitOptions } from "./client.js";
export { BackflowError, RunFailedError } from "./errors.js";
export type { FieldViolation } from "./errors.js";
export * from "./gen/backflow/v1/connection_pb.js";
export * from "./gen/backflow/v1/run_pb.js";
export * from "./gen/backflow/v1/sync_pb.js";
export { Code } from "@connectrpc/connect";
