// Starts `backflow standalone` for the tests: on a free loopback port (it binds port 0 and
// prints the address), with a temporary data directory, requiring an API token.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BackflowClient, type ClientOptions } from "../src/index.js";

export const TOKEN = "client-test-token";
// dist/test/server.js → the repository root.
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..");

export function backflowBin(): string {
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

/** A running `backflow standalone`. */
export interface Server {
  /** `http://127.0.0.1:PORT`, or `https://` when it serves TLS. */
  address: string;
  /** Stops it and removes its data directory. */
  stop(): void;
}

/**
 * Starts `backflow standalone` with `env` added to this process's environment and resolves
 * once a client built with `clientOptions` (plus the token) lists syncs through it.
 */
export async function startServer(
  env: Record<string, string> = {},
  clientOptions: ClientOptions = {},
): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "backflow-ts-client-"));
  const server: ChildProcess = spawn(
    backflowBin(),
    ["standalone", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "state")],
    {
      env: {
        ...process.env,
        BACKFLOW__CONTROL_PLANE__API_TOKENS: TOKEN,
        BACKFLOW__CONTROL_PLANE__WORKER_TOKEN: "client-test-worker-token",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const stop = () => {
    server.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  let log = "";
  server.stderr!.on("data", (chunk) => (log += chunk));
  try {
    const address = await new Promise<string>((resolveAddress, reject) => {
      const timer = setTimeout(() => reject(new Error(`backflow standalone did not start:\n${log}`)), 30_000);
      server.once("exit", () => {
        clearTimeout(timer);
        reject(new Error(`backflow standalone exited:\n${log}`));
      });
      server.stdout!.on("data", (chunk) => {
        log += chunk;
        const match = /listening on (https?:\/\/\S+)/.exec(log);
        if (match) {
          clearTimeout(timer);
          resolveAddress(match[1]);
        }
      });
    });
    if (env.BACKFLOW__CONTROL_PLANE__TLS_CERT && !address.startsWith("https://")) {
      throw new Error(
        `backflow standalone was given a TLS certificate but serves ${address}: is BACKFLOW_BIN a build with TLS?`,
      );
    }
    const client = new BackflowClient(address, { ...clientOptions, token: TOKEN });
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await client.listSyncs();
        break;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error(`backflow standalone did not answer:\n${log}`, { cause: error });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return { address, stop };
  } catch (error) {
    stop();
    throw error;
  }
}
