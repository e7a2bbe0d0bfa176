// The TypeScript client against a running control plane: `backflow standalone` on a free
// loopback port (it binds port 0 and prints the address), requiring an API token.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import initSqlJs, { type SqlJsStatic } from "sql.js";
import {
  BackflowClient,
  BackflowError,
  Code,
  RunFailedError,
  RunState,
  SyncMode,
  type TriggerSyncRequest,
} from "../src/index.js";
import { startServer, TOKEN, type Server } from "./server.js";
import { backflowError, withCaCertEnv } from "./helpers.js";

let server: Server;
let address: string;
let sql: SqlJsStatic;
const dirs: string[] = [];

before(async () => {
  sql = await initSqlJs();
  server = await startServer();
  address = server.address;
});

after(() => {
  server?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** One test's data: a CSV source with three rows and a SQLite destination whose CHECK
 * constraint refuses the row with id 2. */
function fixture() {
  const dir = mkdtempSync(join(tmpdir(), "backflow-ts-data-"));
  dirs.push(dir);
  const csv = join(dir, "scores.csv");
  writeFileSync(csv, "id,name,score\n1,ada,0.5\n2,bob,-1.0\n3,cy,2.5\n");
  const database = join(dir, "app.db");
  const db = new sql.Database();
  db.run("CREATE TABLE scores (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL CHECK (score >= 0))");
  writeFileSync(database, db.export());
  db.close();
  return {
    id: `ts${randomBytes(6).toString("hex")}`,
    source: { tables: { scores: csv } },
    destination: { path: database },
    destinationRows(): unknown[][] {
      const db = new sql.Database(readFileSync(database));
      try {
        return db.exec("SELECT id, name, score FROM scores ORDER BY id")[0]?.values ?? [];
      } finally {
        db.close();
      }
    },
  };
}

test("(await trigger()).wait() follows the run to its counts, rejected rows and destination rows", async () => {
  const data = fixture();
  const bf = new BackflowClient(address, { token: TOKEN });
  await bf.createConnection(`wh-${data.id}`, "files", data.source);
  await bf.createConnection(`app-${data.id}`, "sqlite", data.destination);
  const created = await bf.createSync(`scores-${data.id}`, {
    source: { connection: `wh-${data.id}`, query: "SELECT id, name, score FROM scores" },
    primaryKey: ["id"],
    destination: { connection: `app-${data.id}`, object: "scores", mode: SyncMode.UPSERT },
  });
  assert.equal(created.name, `syncs/scores-${data.id}`);

  const pending = await bf.trigger(`scores-${data.id}`);
  assert.equal(pending.coalesced, false);
  assert.equal(pending.run.sync, `syncs/scores-${data.id}`);
  const run = await pending.wait();

  assert.equal(run.state, RunState.SUCCEEDED);
  const counts = run.counts!;
  assert.deepEqual([counts.read, counts.added, counts.written, counts.failed], [3n, 3n, 2n, 1n]);
  assert.equal(run.rejectedRows, 1n);
  const rejected = await bf.rejectedRows(run.name);
  assert.deepEqual(
    rejected.map((r) => [r.key, r.operation]),
    [["id=2", "write"]],
  );
  assert.match(rejected[0].message, /CHECK constraint failed/);
  assert.deepEqual(data.destinationRows(), [
    [1, "ada", 0.5],
    [3, "cy", 2.5],
  ]);
  assert.deepEqual(
    (await bf.listRuns(`scores-${data.id}`)).map((r) => r.name),
    [run.name],
  );
});

test("an invalid sync rejects with the server's field violations", async () => {
  const data = fixture();
  const bf = new BackflowClient(address, { token: TOKEN });
  await bf.createConnection(`wh-${data.id}`, "files", data.source);
  const error = await bf
    .createSync(`bad-${data.id}`, {
      source: { connection: `wh-${data.id}`, query: " " },
      primaryKey: [],
      destination: { connection: `wh-${data.id}`, object: "scores", mode: SyncMode.UPSERT },
    })
    .then(
      () => assert.fail("an invalid sync was created"),
      (e: unknown) => e,
    );
  assert.ok(error instanceof BackflowError, `not a BackflowError: ${error}`);
  assert.equal(error.code, Code.InvalidArgument);
  assert.ok(error.violation("sync.source.query"), JSON.stringify(error.fieldViolations));
  assert.equal(error.violation("sync.primary_key")?.description, "must name at least one column");
});

test("a failed run rejects with RunFailedError carrying the run", async () => {
  const data = fixture();
  const bf = new BackflowClient(address, { token: TOKEN });
  await bf.createConnection(`wh-${data.id}`, "files", data.source);
  await bf.createConnection(`app-${data.id}`, "sqlite", data.destination);
  await bf.createSync(`broken-${data.id}`, {
    source: { connection: `wh-${data.id}`, query: "SELECT id, no_such_column FROM scores" },
    primaryKey: ["id"],
    destination: { connection: `app-${data.id}`, object: "scores", mode: SyncMode.UPSERT },
    options: { maxAttempts: 1 },
  });
  await assert.rejects((await bf.trigger(`broken-${data.id}`)).wait(), (error: unknown) => {
    assert.ok(error instanceof RunFailedError);
    assert.equal(error.run.state, RunState.FAILED);
    assert.ok(error.run.error?.code);
    return true;
  });
});

test("a call without the token is unauthenticated", async () => {
  const bf = new BackflowClient(address);
  await assert.rejects(bf.getSync("anything"), (error: unknown) => {
    assert.ok(error instanceof BackflowError);
    assert.equal(error.code, Code.Unauthenticated);
    return true;
  });
});

test("trigger rejects at once with NotFound for an unknown sync", async () => {
  const bf = new BackflowClient(address, { token: TOKEN });
  const error = await backflowError(bf.trigger(`no-such-sync-${randomBytes(4).toString("hex")}`));
  assert.equal(error.code, Code.NotFound);
});

test("trigger sends a random request id unless given one, and the same id returns the same run", async () => {
  const data = fixture();
  const sent: string[] = [];
  const bf = new BackflowClient(address, {
    token: TOKEN,
    interceptors: [
      (next) => (request) => {
        if (request.method.name === "TriggerSync" && !request.stream) {
          sent.push((request.message as TriggerSyncRequest).requestId);
        }
        return next(request);
      },
    ],
  });
  await bf.createConnection(`wh-${data.id}`, "files", data.source);
  await bf.createConnection(`app-${data.id}`, "sqlite", data.destination);
  await bf.createSync(`ids-${data.id}`, {
    source: { connection: `wh-${data.id}`, query: "SELECT id, name, score FROM scores WHERE score >= 0" },
    primaryKey: ["id"],
    destination: { connection: `app-${data.id}`, object: "scores", mode: SyncMode.UPSERT },
  });

  const first = await bf.triggerAndWait(`ids-${data.id}`);
  const second = await bf.triggerAndWait(`ids-${data.id}`);
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  assert.equal(sent.length, 2);
  assert.match(sent[0], uuid);
  assert.match(sent[1], uuid);
  assert.notEqual(sent[0], sent[1]);
  assert.notEqual(first.name, second.name);

  const requestId = `retry-${data.id}`;
  const once = await bf.trigger(`ids-${data.id}`, { requestId });
  await once.wait();
  const again = await bf.trigger(`ids-${data.id}`, { requestId });
  assert.deepEqual(sent.slice(2), [requestId, requestId]);
  assert.equal(again.name, once.name);
});

test("triggerAndWait resolves to the finished run", async () => {
  const data = fixture();
  const bf = new BackflowClient(address, { token: TOKEN });
  await bf.createConnection(`wh-${data.id}`, "files", data.source);
  await bf.createConnection(`app-${data.id}`, "sqlite", data.destination);
  await bf.createSync(`tw-${data.id}`, {
    source: { connection: `wh-${data.id}`, query: "SELECT id, name, score FROM scores WHERE score >= 0" },
    primaryKey: ["id"],
    destination: { connection: `app-${data.id}`, object: "scores", mode: SyncMode.UPSERT },
  });
  const run = await bf.triggerAndWait(`tw-${data.id}`, { fullResync: true });
  assert.equal(run.state, RunState.SUCCEEDED);
  assert.equal(run.counts?.written, 2n);
  assert.deepEqual(data.destinationRows(), [
    [1, "ada", 0.5],
    [3, "cy", 2.5],
  ]);
});

test("the connection and sync wrappers get, list, test, plan, pause, resume and delete", async () => {
  const data = fixture();
  const bf = new BackflowClient(address, { token: TOKEN });
  await bf.createConnection(`wh-${data.id}`, "files", data.source);
  await bf.createConnection(`app-${data.id}`, "sqlite", data.destination);
  await bf.createConnection(`gone-${data.id}`, "sqlite", { path: join(tmpdir(), `missing-${data.id}.db`) });

  const wh = await bf.getConnection(`connections/wh-${data.id}`);
  assert.equal(wh.name, `connections/wh-${data.id}`);
  assert.equal(wh.type, "files");
  assert.deepEqual(wh.config, data.source);
  const names = (await bf.listConnections()).map((c) => c.name);
  for (const id of [`app-${data.id}`, `gone-${data.id}`, `wh-${data.id}`]) {
    assert.ok(names.includes(`connections/${id}`), `${id} not in ${names}`);
  }
  assert.deepEqual(names, [...names].sort());

  assert.equal((await bf.testConnection(`app-${data.id}`)).ok, true);
  const failed = await bf.testConnection(`gone-${data.id}`);
  assert.equal(failed.ok, false);
  assert.equal(failed.field, "path");

  const sync = `wrap-${data.id}`;
  await bf.createSync(sync, {
    source: { connection: `wh-${data.id}`, query: "SELECT id, name, score FROM scores WHERE score >= 0" },
    primaryKey: ["id"],
    destination: { connection: `app-${data.id}`, object: "scores", mode: SyncMode.UPSERT },
  });
  assert.ok((await bf.listSyncs()).some((s) => s.name === `syncs/${sync}`));

  const plan = await bf.plan(sync, 1);
  assert.deepEqual([plan.read, plan.added, plan.changed, plan.removed], [2n, 2n, 0n, 0n]);
  assert.equal(plan.sampleAdded.length, 1);
  assert.deepEqual(data.destinationRows(), [], "plan wrote rows");

  assert.equal((await bf.pauseSync(sync)).paused, true);
  assert.equal((await backflowError(bf.trigger(sync))).code, Code.FailedPrecondition);
  assert.equal((await bf.resumeSync(`syncs/${sync}`)).paused, false);
  await (await bf.trigger(sync)).wait();

  assert.equal((await backflowError(bf.deleteConnection(`wh-${data.id}`))).code, Code.FailedPrecondition);
  await bf.deleteSync(sync);
  assert.equal((await backflowError(bf.getSync(sync))).code, Code.NotFound);
  assert.deepEqual(await bf.listRuns(sync), []);
  await bf.deleteConnection(`wh-${data.id}`);
  assert.equal((await backflowError(bf.getConnection(`wh-${data.id}`))).code, Code.NotFound);
});

test("cancelRun of a finished run is FailedPrecondition", async () => {
  const data = fixture();
  const bf = new BackflowClient(address, { token: TOKEN });
  await bf.createConnection(`wh-${data.id}`, "files", data.source);
  await bf.createConnection(`app-${data.id}`, "sqlite", data.destination);
  await bf.createSync(`done-${data.id}`, {
    source: { connection: `wh-${data.id}`, query: "SELECT id, name, score FROM scores WHERE score >= 0" },
    primaryKey: ["id"],
    destination: { connection: `app-${data.id}`, object: "scores", mode: SyncMode.UPSERT },
  });
  const run = await bf.triggerAndWait(`done-${data.id}`);
  assert.equal((await backflowError(bf.cancelRun(run.name))).code, Code.FailedPrecondition);
  assert.equal((await bf.getRun(run.name)).state, RunState.SUCCEEDED);
  assert.deepEqual(
    (await bf.listRuns(`done-${data.id}`, RunState.SUCCEEDED)).map((r) => r.name),
    [run.name],
  );
  assert.deepEqual(await bf.listRuns(`done-${data.id}`, RunState.FAILED), []);
});

test("an unreadable BACKFLOW_CA_CERT throws from the constructor, naming the variable and path", () => {
  const path = join(tmpdir(), `no-such-ca-${randomBytes(4).toString("hex")}.pem`);
  withCaCertEnv(path, () => {
    assert.throws(
      () => new BackflowClient("https://127.0.0.1:1", { token: TOKEN }),
      (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.ok(error.message.includes(`BACKFLOW_CA_CERT=${path}`), error.message);
        return true;
      },
    );
    // Only https:// addresses read it; an empty value means unset.
    new BackflowClient("http://127.0.0.1:1", { token: TOKEN });
  });
  withCaCertEnv("", () => new BackflowClient("https://127.0.0.1:1", { token: TOKEN }));
});

test("caCert needs an https:// address", () => {
  assert.throws(() => new BackflowClient("http://127.0.0.1:1", { caCert: "pem" }), TypeError);
});
