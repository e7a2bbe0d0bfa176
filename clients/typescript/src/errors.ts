// Errors of the Backflow client: the server's gRPC code and message, and the field violations
// it attached (google.rpc.BadRequest in `grpc-status-details-bin`) so a caller can point at
// the wrong field of its definition.

import { create, createFileRegistry, type Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunState, type Run } from "./gen/backflow/v1/run_pb.js";

/** One wrong field of a request, named by its path (`sync.primary_key`). */
export interface FieldViolation {
  field: string;
  description: string;
}

type BadRequest = Message<"google.rpc.BadRequest"> & {
  fieldViolations: (Message<"google.rpc.BadRequest.FieldViolation"> & FieldViolation)[];
};

/**
 * google.rpc.BadRequest, described here (field numbers as in googleapis'
 * google/rpc/error_details.proto) so Connect can decode it from the error details without
 * generating all of googleapis.
 */
const badRequestSchema = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "google/rpc/error_details.proto",
    package: "google.rpc",
    syntax: "proto3",
    messageType: [
      {
        name: "BadRequest",
        field: [
          {
            name: "field_violations",
            jsonName: "fieldViolations",
            number: 1,
            label: 3, // repeated
            type: 11, // message
            typeName: ".google.rpc.BadRequest.FieldViolation",
          },
        ],
        nestedType: [
          {
            name: "FieldViolation",
            field: [
              { name: "field", jsonName: "field", number: 1, label: 1, type: 9 },
              { name: "description", jsonName: "description", number: 2, label: 1, type: 9 },
            ],
          },
        ],
      },
    ],
  }),
  () => undefined,
).getMessage("google.rpc.BadRequest") as unknown as GenMessage<BadRequest>;

/** A failed call to the Backflow API. */
export class BackflowError extends Error {
  /** The gRPC status code. */
  readonly code: Code;
  /** The server's message. */
  readonly rawMessage: string;
  /** Every wrong field, when the server rejected the request as invalid. */
  readonly fieldViolations: FieldViolation[];
  /** The Connect error this one was made from. */
  override readonly cause: ConnectError;

  constructor(error: ConnectError) {
    super(`${Code[error.code]}: ${error.rawMessage}`);
    this.name = "BackflowError";
    this.code = error.code;
    this.rawMessage = error.rawMessage;
    this.cause = error;
    this.fieldViolations = error
      .findDetails(badRequestSchema)
      .flatMap((detail) => detail.fieldViolations.map(({ field, description }) => ({ field, description })));
  }

  /** The violation of `field`, if the server reported one. */
  violation(field: string): FieldViolation | undefined {
    return this.fieldViolations.find((v) => v.field === field);
  }
}

/** A run waited for ended failed or cancelled. */
export class RunFailedError extends Error {
  /** The run in its final state. */
  readonly run: Run;

  constructor(run: Run) {
    const state = RunState[run.state].toLowerCase();
    const detail = run.error ? `: ${run.error.code}: ${run.error.message}` : "";
    super(`run ${run.name} ended ${state}${detail}`);
    this.name = "RunFailedError";
    this.run = run;
  }
}

/** Rethrows a failed call's error as a BackflowError; other errors pass through. */
export function rethrow(error: unknown): never {
  if (error instanceof ConnectError) {
    throw new BackflowError(error);
  }
  throw error;
}
