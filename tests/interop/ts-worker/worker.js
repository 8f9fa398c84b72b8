// A Resonate worker written with the TypeScript SDK: what resonate-web's interop
// tests run against `resonate-web dev`. Plain JavaScript, so node runs it as is.
//
//   RESONATE_URL=http://127.0.0.1:8001 node worker.js [group]
//
// Joins `group` (default "workers") and serves the functions below. Prints one
// line, "ready group=... pid=...", once it is registered. With
// RESONATE_WEB_TEST_EXECLOG set, `slow` appends "<os pid> start|end <id>" lines
// to that file, as the Python test functions do.
import { appendFileSync } from "node:fs";
import { Resonate } from "@resonatehq/sdk";

const url = process.env.RESONATE_URL;
if (!url) {
  console.error("set RESONATE_URL to the server's URL");
  process.exit(2);
}
const group = process.argv[2] ?? process.env.RESONATE_GROUP ?? "workers";

const resonate = new Resonate({
  url,
  group,
  ttl: Number(process.env.RESONATE_LEASE_TTL_MS ?? 30_000),
  logLevel: process.env.RESONATE_LOG_LEVEL ?? "warn",
});

// Generator functions are Resonate's durable functions in TypeScript; they are
// not retried by default, so an error rejects the invocation at once.

function* add(ctx, a, b) {
  return a + b;
}

const execlog = process.env.RESONATE_WEB_TEST_EXECLOG;
function record(ctx, event) {
  if (execlog) appendFileSync(execlog, `${process.pid} ${event} ${ctx.id}\n`);
}

function* slow(ctx, seconds, tag) {
  record(ctx, "start");
  yield* ctx.run(() => new Promise((resolve) => setTimeout(resolve, seconds * 1000)));
  record(ctx, "end");
  return tag;
}

function* fail(ctx, message) {
  throw new Error(message);
}

function* countdown(ctx, n, delay) {
  for (let i = 0; i < n; i++) {
    yield* ctx.sleep(delay * 1000); // durable: no worker holds the task meanwhile
  }
  return n;
}

function* whoami(ctx) {
  return `typescript:${group}`;
}

for (const fn of [add, slow, fail, countdown, whoami]) {
  resonate.register(fn.name, fn);
}

console.log(`ready group=${group} pid=${resonate.pid}`);

const stop = async () => {
  try {
    await resonate.stop();
  } finally {
    process.exit(0);
  }
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
