// The client against a control plane serving https:// with a certificate from a private CA
// (scripts/self-signed-ca.sh): trusted through `caCert` or BACKFLOW_CA_CERT, refused without.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { BackflowClient, BackflowError, Code } from "../src/index.js";
import { ROOT, startServer, TOKEN, type Server } from "./server.js";
import { withCaCertEnv } from "./helpers.js";

let server: Server | undefined;
let certs: string;
let caPem: string;

before(async () => {
  certs = mkdtempSync(join(tmpdir(), "backflow-ts-tls-"));
  await promisify(execFile)("bash", [join(ROOT, "scripts", "self-signed-ca.sh"), certs]);
  caPem = readFileSync(join(certs, "ca.pem"), "utf8");
  server = await startServer(
    {
      BACKFLOW__CONTROL_PLANE__TLS_CERT: join(certs, "server.pem"),
      BACKFLOW__CONTROL_PLANE__TLS_KEY: join(certs, "server-key.pem"),
      BACKFLOW_CA_CERT: join(certs, "ca.pem"),
    },
    { caCert: caPem },
  );
});

after(() => {
  server?.stop();
  if (certs) rmSync(certs, { recursive: true, force: true });
});

test("the control plane serves https://", () => {
  assert.match(server!.address, /^https:\/\/127\.0\.0\.1:\d+$/);
});

test("a client given caCert trusts the private CA", async () => {
  const bf = withCaCertEnv(undefined, () => {
    return new BackflowClient(server!.address, { token: TOKEN, caCert: caPem });
  });
  assert.ok(Array.isArray(await bf.listSyncs()));
  const missing = await bf.getSync("no-such-sync").then(
    () => assert.fail("an unknown sync was found"),
    (e: unknown) => e,
  );
  assert.ok(missing instanceof BackflowError);
  assert.equal(missing.code, Code.NotFound);
});

test("a client without the CA refuses the server's certificate", async () => {
  const bf = withCaCertEnv(undefined, () => new BackflowClient(server!.address, { token: TOKEN }));
  await assert.rejects(bf.listSyncs(), (error: unknown) => {
    assert.ok(error instanceof BackflowError, `not a BackflowError: ${error}`);
    // Connect for Node reports a failed certificate check as Internal, with Node's reason.
    assert.equal(error.code, Code.Internal, error.message);
    assert.match(error.message, /certificate/);
    return true;
  });
});

test("a client constructed while BACKFLOW_CA_CERT names the CA trusts it", async () => {
  const bf = withCaCertEnv(join(certs, "ca.pem"), () => {
    return new BackflowClient(server!.address, { token: TOKEN });
  });
  assert.ok(Array.isArray(await bf.listSyncs()));
});
