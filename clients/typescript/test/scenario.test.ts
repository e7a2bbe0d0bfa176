// End to end against PostgreSQL: a mirror sync of 20,000 rows and then of a few changes, the
// errors a caller sees (NOT_FOUND, INVALID_ARGUMENT), concurrent triggers coalescing, and
// cancelling a running run. Needs BACKFLOW_TEST_POSTGRES_URL (`eval "$(scripts/services.sh
// env)"`) and psql; fails, never skips, without them.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, readdirSync } from "node:fs";
import { delimiter, join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { BackflowClient, Code, RunFailedError, RunState, SyncMode } from "../src/index.js";
import { startServer, TOKEN, type Server } from "./server.js";
import { backflowError } from "./helpers.js";

const run = promisify(execFile);

const ID = randomBytes(4).toString("hex");
const SRC = `ts_src_${ID}`;
const DST = `ts_dst_${ID}`;
const SLOW = `ts_slow_${ID}`;
const SYNC = `ts-mirror-${ID}`;

let server: Server | undefined;
let bf: BackflowClient;
let postgresUrl: string;
let psqlBin: string;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `psql` on PATH, else the newest /usr/lib/postgresql/VERSION/bin/psql. */
function findPsql(): string {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && isExecutable(join(dir, "psql"))) return join(dir, "psql");
  }
  let versions: string[] = [];
  try {
    versions = readdirSync("/usr/lib/postgresql");
  } catch {
    // none installed there
  }
  const newest = versions
    .filter((v) => isExecutable(join("/usr/lib/postgresql", v, "bin", "psql")))
    .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a))[0];
  if (!newest) {
    throw new Error("psql is missing: install postgresql-client (psql on PATH or /usr/lib/postgresql/*/bin/psql)");
  }
  return join("/usr/lib/postgresql", newest, "bin", "psql");
}

/** Runs `sql` with psql and returns its unaligned, tuples-only output, trimmed. */
async function psql(sql: string): Promise<string> {
  const args = [postgresUrl, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql];
  const { stdout } = await run(psqlBin, args);
  return stdout.trim();
}

/** md5 of every row of `table`, in id order. */
function digest(table: string): Promise<string> {
  return psql(`SELECT md5(string_agg(id || ':' || name || ':' || score, ',' ORDER BY id)) FROM ${table}`);
}

before(async () => {
  const url = process.env.BACKFLOW_TEST_POSTGRES_URL;
  if (!url) {
    throw new Error(
      "BACKFLOW_TEST_POSTGRES_URL is not set: start the test services and run " +
        '`eval "$(scripts/services.sh env)"` first',
    );
  }
  postgresUrl = url;
  psqlBin = findPsql();
  await psql(
    `CREATE TABLE ${SRC} (id bigint PRIMARY KEY, name text, score int);
     INSERT INTO ${SRC} SELECT g, 'name-' || g, g % 1000 FROM generate_series(1, 20000) AS g;`,
  );
  server = await startServer();
  bf = new BackflowClient(server.address, { token: TOKEN });
  await bf.createConnection(`pg-src-${ID}`, "postgres", { url: postgresUrl });
  await bf.createConnection(`pg-dst-${ID}`, "postgres", { url: postgresUrl });
});

after(async () => {
  server?.stop();
  if (postgresUrl && psqlBin) {
    await psql(`DROP TABLE IF EXISTS ${SRC}, ${DST}, ${SLOW}`).catch((error: unknown) => {
      console.error(`could not drop the test tables: ${error}`);
    });
  }
});

test("a mirror sync copies 20000 rows, then only what changed", async (t) => {
  await t.test("create the sync", async () => {
    const sync = await bf.createSync(SYNC, {
      source: { connection: `pg-src-${ID}`, query: `SELECT id, name, score FROM ${SRC}` },
      primaryKey: ["id"],
      destination: { connection: `pg-dst-${ID}`, object: DST, mode: SyncMode.MIRROR, createTable: true },
    });
    assert.equal(sync.name, `syncs/${SYNC}`);
  });

  await t.test("the first run adds every row", async () => {
    const run = await (await bf.trigger(SYNC)).wait();
    assert.equal(run.state, RunState.SUCCEEDED);
    const counts = run.counts!;
    assert.deepEqual([counts.added, counts.changed, counts.removed], [20000n, 0n, 0n]);
    assert.equal(await psql(`SELECT count(*) FROM ${DST}`), "20000");
  });

  await t.test("the second run applies 100 changed, 50 removed and 50 added rows", async () => {
    await psql(
      `UPDATE ${SRC} SET score = score + 1000 WHERE id <= 100;
       DELETE FROM ${SRC} WHERE id BETWEEN 1001 AND 1050;
       INSERT INTO ${SRC} SELECT g, 'new-' || g, g % 1000 FROM generate_series(20001, 20050) AS g;`,
    );
    const run = await bf.triggerAndWait(SYNC);
    const counts = run.counts!;
    assert.deepEqual([counts.added, counts.changed, counts.removed], [50n, 100n, 50n]);
    assert.equal(await psql(`SELECT count(*) FROM ${DST}`), "20000");
    assert.equal(await digest(DST), await digest(SRC));
  });

  await t.test("concurrent triggers coalesce", async () => {
    const pending = await Promise.all(Array.from({ length: 10 }, () => bf.trigger(SYNC)));
    const runs = [...new Set(pending.map((p) => p.name))];
    assert.ok(runs.length < 10, `10 triggers queued ${runs.length} runs`);
    assert.equal(pending.filter((p) => !p.coalesced).length, runs.length);
    const finished = await Promise.all(pending.map((p) => p.wait()));
    assert.ok(finished.every((r) => r.state === RunState.SUCCEEDED));
    const last = (await bf.listRuns(SYNC))[0];
    assert.ok(runs.includes(last.name), `the newest run ${last.name} is not one of ${runs}`);
    const counts = finished.find((r) => r.name === last.name)!.counts!;
    assert.deepEqual([counts.added, counts.changed, counts.removed], [0n, 0n, 0n]);
  });
});

test("an unknown sync is NotFound, for getSync and for trigger itself", async () => {
  const missing = `no-such-sync-${ID}`;
  assert.equal((await backflowError(bf.getSync(missing))).code, Code.NotFound);
  assert.equal((await backflowError(bf.trigger(missing))).code, Code.NotFound);
});

test("a sync without a primary key is InvalidArgument naming sync.primary_key", async () => {
  const error = await backflowError(
    bf.createSync(`ts-nokey-${ID}`, {
      source: { connection: `pg-src-${ID}`, query: `SELECT id, name, score FROM ${SRC}` },
      primaryKey: [],
      destination: {
        connection: `pg-dst-${ID}`,
        object: `ts_nokey_${ID}`,
        mode: SyncMode.MIRROR,
        createTable: true,
      },
    }),
  );
  assert.equal(error.code, Code.InvalidArgument);
  assert.ok(error.violation("sync.primary_key"), JSON.stringify(error.fieldViolations));
});

test("cancelRun cancels a run that is still reading", async () => {
  const sync = `ts-slow-${ID}`;
  await bf.createSync(sync, {
    // The query outlasts a worker heartbeat (5 s), which is when the worker learns of the
    // cancel; a shorter one could finish first and make the run succeed.
    source: { connection: `pg-src-${ID}`, query: "SELECT 1::bigint AS id, pg_sleep(30)::text AS slept" },
    primaryKey: ["id"],
    destination: { connection: `pg-dst-${ID}`, object: SLOW, mode: SyncMode.UPSERT, createTable: true },
  });
  const pending = await bf.trigger(sync);
  const cancelled = await bf.cancelRun(pending.name);
  assert.equal(cancelled.name, pending.name);
  await assert.rejects(pending.wait(), (error: unknown) => {
    assert.ok(error instanceof RunFailedError, `not a RunFailedError: ${error}`);
    assert.equal(error.run.state, RunState.CANCELLED);
    return true;
  });
});
