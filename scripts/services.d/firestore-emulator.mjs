// Starts the Node.js Firestore emulator (@firestore-emulator/server) on loopback.
//
//   node firestore-emulator.mjs PORT
//
// The package's own `start(port)` binds 0.0.0.0; test services must listen on loopback only,
// so this binds the emulator's gRPC server to 127.0.0.1 with the same insecure credentials.
import { FirestoreServer } from "@firestore-emulator/server";
import { ServerCredentials } from "@grpc/grpc-js";

// google-protobuf decodes an int64 beyond ±2^53 as a decimal string, and the emulator's integer
// field checks `Number.isInteger`, so it refuses such integers ("value must be integer") that
// Google's service stores. Accept integer strings too, so 64-bit integers round-trip exactly.
const isInteger = Number.isInteger;
Number.isInteger = (v) => isInteger(v) || (typeof v === "string" && /^-?[0-9]+$/.test(v));

const port = Number(process.argv[2] ?? "58080");
const emulator = new FirestoreServer();
emulator.server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`firestore emulator cannot listen on 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  }
  console.log(`firestore emulator listening on 127.0.0.1:${port}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    emulator.stop();
    process.exit(0);
  });
}
