// A promise-based client of the Backflow API over Connect for Node, speaking the gRPC
// protocol (HTTP/2) that the control plane serves.

import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { Code, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConnectionService, type Connection } from "./gen/backflow/v1/connection_pb.js";
import { RunService, RunState, type RejectedRow, type Run } from "./gen/backflow/v1/run_pb.js";
import { SyncService, type Sync, type SyncSchema } from "./gen/backflow/v1/sync_pb.js";
import { BackflowError, RunFailedError, rethrow } from "./errors.js";

/** How to reach and authenticate to a control plane. */
export interface ClientOptions {
  /** Sent as `authorization: Bearer TOKEN` with every call. */
  token?: string;
  /** More Connect interceptors (tracing, logging), run after the token's. */
  interceptors?: Interceptor[];
}

/** Options of `trigger`. */
export interface TriggerOptions {
  /** Re-send every row, ignoring the snapshot's hashes. */
  fullResync?: boolean;
  /** Makes the trigger idempotent: the same id returns the run it created the first time. */
  requestId?: string;
}

/** Options of `wait`. */
export interface WaitOptions {
  /** Stops waiting (rejecting with the signal's reason) when aborted. */
  signal?: AbortSignal;
}

const FINAL_STATES = new Set([RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED]);
const isFinal = (run: Run) => FINAL_STATES.has(run.state);

/** `collection/{id}` from a bare id or a full resource name. */
function resource(collection: string, name: string): string {
  return name.startsWith(`${collection}/`) ? name : `${collection}/${name}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

/** A run that `trigger` queued (or the active run it coalesced with). */
export class PendingRun {
  /** Resolves to the run as TriggerSync returned it, and whether it coalesced. */
  readonly queued: Promise<{ run: Run; coalesced: boolean }>;

  constructor(
    private readonly client: BackflowClient,
    queued: Promise<{ run: Run; coalesced: boolean }>,
  ) {
    this.queued = queued;
  }

  /**
   * Follows the run (WatchRun) until it ends and resolves to it in its final state. Rejects
   * with RunFailedError when it failed or was cancelled, and with BackflowError when a call
   * fails. Watches again, with backoff, while the control plane is unreachable.
   */
  async wait(options: WaitOptions = {}): Promise<Run> {
    let { run } = await this.queued;
    let backoff = 200;
    while (!isFinal(run)) {
      try {
        for await (const update of this.client.watchRun(run.name, options)) {
          run = update;
          backoff = 200;
          if (isFinal(run)) {
            break;
          }
        }
      } catch (error) {
        if (!(error instanceof BackflowError) || error.code !== Code.Unavailable) {
          throw error;
        }
        await sleep(backoff, options.signal);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
    if (run.state !== RunState.SUCCEEDED) {
      throw new RunFailedError(run);
    }
    return run;
  }
}

/**
 * A client of one control plane. The generated Connect clients are `connections`, `syncs`
 * and `runs`, for the calls not wrapped here (their errors are Connect's ConnectError).
 */
export class BackflowClient {
  readonly connections: Client<typeof ConnectionService>;
  readonly syncs: Client<typeof SyncService>;
  readonly runs: Client<typeof RunService>;

  /** `address` is `http://host:port` or `https://host:port`. */
  constructor(address: string, options: ClientOptions = {}) {
    const interceptors: Interceptor[] = [];
    const { token } = options;
    if (token) {
      interceptors.push((next) => (request) => {
        request.header.set("authorization", `Bearer ${token}`);
        return next(request);
      });
    }
    interceptors.push(...(options.interceptors ?? []));
    const transport = createGrpcTransport({ baseUrl: address, interceptors });
    this.connections = createClient(ConnectionService, transport);
    this.syncs = createClient(SyncService, transport);
    this.runs = createClient(RunService, transport);
  }

  /** Adds a connection of connector `type`; secrets in `config` as `${env:NAME}` references. */
  async createConnection(connectionId: string, type: string, config: JsonObject): Promise<Connection> {
    const response = await this.connections
      .createConnection({ connectionId, connection: { type, config } })
      .catch(rethrow);
    return response.connection!;
  }

  /** Adds a sync; an invalid one rejects with a BackflowError listing every wrong field. */
  async createSync(syncId: string, sync: MessageInitShape<typeof SyncSchema>): Promise<Sync> {
    const response = await this.syncs.createSync({ syncId, sync }).catch(rethrow);
    return response.sync!;
  }

  /** One sync, by id or `syncs/{id}`. */
  async getSync(name: string): Promise<Sync> {
    const response = await this.syncs.getSync({ name: resource("syncs", name) }).catch(rethrow);
    return response.sync!;
  }

  /**
   * Queues a run of the sync now. `await client.trigger(name).wait()` follows it to its end;
   * `queued` has the run as queued.
   */
  trigger(name: string, options: TriggerOptions = {}): PendingRun {
    const queued = this.syncs
      .triggerSync({ name: resource("syncs", name), ...options })
      .then((response) => ({ run: response.run!, coalesced: response.coalesced }), rethrow);
    // A caller that only ever calls wait() still sees the error there.
    queued.catch(() => undefined);
    return new PendingRun(this, queued);
  }

  /** One run, by id or `runs/{id}`. */
  async getRun(name: string): Promise<Run> {
    const response = await this.runs.getRun({ name: resource("runs", name) }).catch(rethrow);
    return response.run!;
  }

  /** The runs of a sync (of every sync when omitted), newest first, all pages. */
  async listRuns(sync?: string): Promise<Run[]> {
    const runs: Run[] = [];
    let pageToken = "";
    do {
      const response = await this.runs
        .listRuns({ sync: sync ? resource("syncs", sync) : "", pageToken })
        .catch(rethrow);
      runs.push(...response.runs);
      pageToken = response.nextPageToken;
    } while (pageToken);
    return runs;
  }

  /** The run each time its state or counts change, until it ends. */
  async *watchRun(name: string, options: WaitOptions = {}): AsyncGenerator<Run> {
    try {
      for await (const response of this.runs.watchRun({ name: resource("runs", name) }, options)) {
        yield response.run!;
      }
    } catch (error) {
      rethrow(error);
    }
  }

  /** The rows the destination refused in a run, all pages. */
  async rejectedRows(run: string): Promise<RejectedRow[]> {
    const rows: RejectedRow[] = [];
    let pageToken = "";
    do {
      const response = await this.runs
        .listRejectedRows({ run: resource("runs", run), pageToken })
        .catch(rethrow);
      rows.push(...response.rejectedRows);
      pageToken = response.nextPageToken;
    } while (pageToken);
    return rows;
  }
}
