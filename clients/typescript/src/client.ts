// A promise-based client of the Backflow API over Connect for Node, speaking the gRPC
// protocol (HTTP/2) that the control plane serves.

import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { Code, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import {
  ConnectionService,
  type Connection,
  type TestConnectionResponse,
} from "./gen/backflow/v1/connection_pb.js";
import { RunService, RunState, type RejectedRow, type Run } from "./gen/backflow/v1/run_pb.js";
import { SyncService, type PlanSyncResponse, type Sync, type SyncSchema } from "./gen/backflow/v1/sync_pb.js";
import { BackflowError, RunFailedError, rethrow } from "./errors.js";

/** The environment variable naming a PEM file of CA certificates to trust for `https://`. */
const CA_CERT_ENV = "BACKFLOW_CA_CERT";

/** How to reach and authenticate to a control plane. */
export interface ClientOptions {
  /** Sent as `authorization: Bearer TOKEN` with every call. */
  token?: string;
  /** More Connect interceptors (tracing, logging), run after the token's. */
  interceptors?: Interceptor[];
  /**
   * CA certificates (PEM) trusted for an `https://` address in addition to Node's default
   * roots: the CA of a control plane with a private certificate. When omitted, the PEM file
   * named by the environment variable `BACKFLOW_CA_CERT` is used if that is set and non-empty.
   * Refused with an `http://` address.
   */
  caCert?: string | Buffer;
}

/** Options of `trigger`. */
export interface TriggerOptions {
  /** Re-send every row, ignoring the snapshot's hashes. */
  fullResync?: boolean;
  /**
   * Makes the trigger idempotent: the same id returns the run it created the first time.
   * When omitted (or empty) a random UUID is sent, so a retried call never queues two runs.
   */
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
  /** The run as TriggerSync returned it (queued, or already running when coalesced). */
  readonly run: Run;
  /** True when the sync already had a queued or running run, which this is. */
  readonly coalesced: boolean;

  constructor(
    private readonly client: BackflowClient,
    run: Run,
    coalesced: boolean,
  ) {
    this.run = run;
    this.coalesced = coalesced;
  }

  /** The run's resource name, `runs/{run_id}`. */
  get name(): string {
    return this.run.name;
  }

  /**
   * Follows the run (WatchRun) until it ends and resolves to it in its final state. Rejects
   * with RunFailedError when it failed or was cancelled, and with BackflowError when a call
   * fails. Watches again, with backoff, while the control plane is unreachable.
   */
  async wait(options: WaitOptions = {}): Promise<Run> {
    let run = this.run;
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
 * The CA certificates to trust for `address`: Node's default roots plus `caCert`, else plus
 * the file `BACKFLOW_CA_CERT` names; undefined (Node's defaults) when there is no extra CA.
 */
function trustedCas(address: string, caCert: string | Buffer | undefined): (string | Buffer)[] | undefined {
  const https = /^https:\/\//i.test(address);
  if (caCert !== undefined) {
    if (!https) {
      throw new TypeError(`caCert needs an https:// address, not ${address}`);
    }
    return [...rootCertificates, caCert];
  }
  const path = process.env[CA_CERT_ENV];
  if (!https || !path) {
    return undefined;
  }
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`${CA_CERT_ENV}=${path}: cannot read the CA certificate: ${reason}`, { cause: error });
  }
  return [...rootCertificates, pem];
}

/** Every item of a paged List call, fetching page after page. */
async function allPages<T>(
  page: (pageToken: string) => Promise<{ items: T[]; nextPageToken: string }>,
): Promise<T[]> {
  const items: T[] = [];
  let pageToken = "";
  do {
    const response = await page(pageToken).catch(rethrow);
    items.push(...response.items);
    pageToken = response.nextPageToken;
  } while (pageToken);
  return items;
}

/**
 * A client of one control plane. Every method rejects with BackflowError when the call
 * fails. The generated Connect clients are `connections`, `syncs` and `runs`, for the calls
 * not wrapped here (their errors are Connect's ConnectError).
 */
export class BackflowClient {
  readonly connections: Client<typeof ConnectionService>;
  readonly syncs: Client<typeof SyncService>;
  readonly runs: Client<typeof RunService>;

  /**
   * `address` is `http://host:port` or `https://host:port`. An `https://` address is verified
   * against Node's default roots, plus `options.caCert` or the file `BACKFLOW_CA_CERT` names;
   * throws when that file cannot be read.
   */
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
    const ca = trustedCas(address, options.caCert);
    const transport = createGrpcTransport({
      baseUrl: address,
      interceptors,
      ...(ca ? { nodeOptions: { ca } } : {}),
    });
    this.connections = createClient(ConnectionService, transport);
    this.syncs = createClient(SyncService, transport);
    this.runs = createClient(RunService, transport);
  }

  // Connections

  /** Adds a connection of connector `type`; secrets in `config` as `${env:NAME}` references. */
  async createConnection(connectionId: string, type: string, config: JsonObject): Promise<Connection> {
    const response = await this.connections
      .createConnection({ connectionId, connection: { type, config } })
      .catch(rethrow);
    return response.connection!;
  }

  /** One connection, by id or `connections/{id}`; literal secrets in its config show as `***`. */
  async getConnection(name: string): Promise<Connection> {
    const response = await this.connections
      .getConnection({ name: resource("connections", name) })
      .catch(rethrow);
    return response.connection!;
  }

  /** Every connection, in name order, all pages. */
  async listConnections(): Promise<Connection[]> {
    return allPages(async (pageToken) => {
      const response = await this.connections.listConnections({ pageToken });
      return { items: response.connections, nextPageToken: response.nextPageToken };
    });
  }

  /** Deletes a connection that no sync uses. */
  async deleteConnection(name: string): Promise<void> {
    await this.connections.deleteConnection({ name: resource("connections", name) }).catch(rethrow);
  }

  /**
   * Runs the connector's checks (config, reachability, credentials). A failed check resolves
   * with `ok` false and `errorKind`, `message` and `field` saying what failed.
   */
  async testConnection(name: string): Promise<TestConnectionResponse> {
    return this.connections.testConnection({ name: resource("connections", name) }).catch(rethrow);
  }

  // Syncs

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

  /** Every sync, in name order, all pages. */
  async listSyncs(): Promise<Sync[]> {
    return allPages(async (pageToken) => {
      const response = await this.syncs.listSyncs({ pageToken });
      return { items: response.syncs, nextPageToken: response.nextPageToken };
    });
  }

  /** Deletes a sync and its run history; FailedPrecondition while a run is active. */
  async deleteSync(name: string): Promise<void> {
    await this.syncs.deleteSync({ name: resource("syncs", name) }).catch(rethrow);
  }

  /** Stops the scheduler from starting runs of the sync; triggers are refused. */
  async pauseSync(name: string): Promise<Sync> {
    const response = await this.syncs.pauseSync({ name: resource("syncs", name) }).catch(rethrow);
    return response.sync!;
  }

  /** Undoes `pauseSync`. */
  async resumeSync(name: string): Promise<Sync> {
    const response = await this.syncs.resumeSync({ name: resource("syncs", name) }).catch(rethrow);
    return response.sync!;
  }

  /**
   * What a run would change now (counts, and up to `sampleSize` keys per kind of change; 0
   * means the server's default), writing nothing.
   */
  async plan(name: string, sampleSize = 0): Promise<PlanSyncResponse> {
    return this.syncs.planSync({ name: resource("syncs", name), sampleSize }).catch(rethrow);
  }

  /**
   * Queues a run of the sync now and resolves once TriggerSync answered: to a PendingRun
   * holding the run as queued (`coalesced` when the sync already had a queued or running run,
   * which is returned instead). Rejects at once with BackflowError when the call fails (an
   * unknown sync is NotFound). `(await client.trigger(name)).wait()` follows the run to its
   * end. Without `requestId` a random one is sent, so a retry never queues a second run.
   */
  async trigger(name: string, options: TriggerOptions = {}): Promise<PendingRun> {
    const response = await this.syncs
      .triggerSync({
        name: resource("syncs", name),
        fullResync: options.fullResync ?? false,
        requestId: options.requestId || randomUUID(),
      })
      .catch(rethrow);
    return new PendingRun(this, response.run!, response.coalesced);
  }

  /**
   * `trigger` then `wait`: resolves to the run in its final state. Rejects with BackflowError
   * when a call fails and with RunFailedError when the run failed or was cancelled; `signal`
   * stops the waiting.
   */
  async triggerAndWait(name: string, options: TriggerOptions & WaitOptions = {}): Promise<Run> {
    const { signal, ...trigger } = options;
    const pending = await this.trigger(name, trigger);
    return pending.wait({ signal });
  }

  // Runs

  /** One run, by id or `runs/{id}`. */
  async getRun(name: string): Promise<Run> {
    const response = await this.runs.getRun({ name: resource("runs", name) }).catch(rethrow);
    return response.run!;
  }

  /**
   * The runs of a sync (of every sync when omitted or empty), newest first, optionally only
   * those in `state`, all pages.
   */
  async listRuns(sync?: string, state: RunState = RunState.UNSPECIFIED): Promise<Run[]> {
    return allPages(async (pageToken) => {
      const response = await this.runs.listRuns({
        sync: sync ? resource("syncs", sync) : "",
        state,
        pageToken,
      });
      return { items: response.runs, nextPageToken: response.nextPageToken };
    });
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

  /** Cancels a queued run, or asks the worker of a running one to stop; resolves to the run. */
  async cancelRun(name: string): Promise<Run> {
    const response = await this.runs.cancelRun({ name: resource("runs", name) }).catch(rethrow);
    return response.run!;
  }

  /** The rows the destination refused in a run, all pages. */
  async rejectedRows(run: string): Promise<RejectedRow[]> {
    return allPages(async (pageToken) => {
      const response = await this.runs.listRejectedRows({ run: resource("runs", run), pageToken });
      return { items: response.rejectedRows, nextPageToken: response.nextPageToken };
    });
  }
}
