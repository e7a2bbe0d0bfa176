// The TypeScript client against a running control plane: `backflow standalone` on a free
// loopback port (it binds port 0 and prints the address), requiring an API token.

import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import initSqlJs, { type SqlJsStatic } from "sql.js";
import { BackflowClient, BackflowError, Code, RunFailedError, RunState, SyncMode } from "../src/index.js";

const TOKEN = "client-test-token";
// dist/test/client.test.js → the repository root.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");

let server: ChildProcess;
let address: string;
let sql: SqlJsStatic;
const dirs: string[] = [];

function backflowBin(): string {
  const bin =
    process.env.BACKFLOW_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "debug", "backflow");
  try {
    statSync(bin);
  } catch {
    throw new Error(
      `the backflow binary is missing at ${bin}: build it with \`cargo build -p backflow --bin backflow\` or set BACKFLOW_BIN`,
    );
  }
  return bin;
}

before(async () => {
  sql = await initSqlJs();
  const dir = mkdtempSync(join(tmpdir(), "backflow-ts-client-"));
  dirs.push(dir);
  server = spawn(backflowBin(), ["standalone", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "state")], {
    env: {
      ...process.env,
      BACKFLOW__CONTROL_PLANE__API_TOKENS: TOKEN,
      BACKFLOW__CONTROL_PLANE__WORKER_TOKEN: "client-test-worker-token",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  server.stderr!.on("data", (chunk) => (log += chunk));
  address = await new Promise<string>((resolveAddress, reject) => {
    const timer = setTimeout(() => reject(new Error(`backflow standalone did not start:\n${log}`)), 30_000);
    server.once("exit", () => reject(new Error(`backflow standalone exited:\n${log}`)));
    server.stdout!.on("data", (chunk) => {
      log += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolveAddress(match[1]);
      }
    });
  });
  const client = new BackflowClient(address, { token: TOKEN });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await client.syncs.listSyncs({});
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

after(() => {
  server?.kill("SIGTERM");
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

test("trigger().wait() follows the run to its counts, rejected rows and destination rows", async () => {
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

  const pending = bf.trigger(`scores-${data.id}`);
  assert.equal((await pending.queued).coalesced, false);
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
  await assert.rejects(bf.trigger(`broken-${data.id}`).wait(), (error: unknown) => {
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
