// Checks exchanges with a server against the TypeScript SDK's own protocol
// validators: the checks its HTTP network applies to every response and its
// poll source to every pushed message (a failure there is "response did not
// match request" or "invalid message structure", and the SDK drops it).
//
// stdin: a JSON array of {"request": ..., "response": ...} and {"message": ...};
//        "malformed": true on a request the SDK would never send (its response
//        is still checked).
// stdout: a JSON array, one {"ok": bool, "why": string} per item, in order.
import { readFileSync } from "node:fs";
import {
  isMessage,
  isRequest,
  isResponse,
} from "./node_modules/@resonatehq/sdk/dist/src/network/types.js";

function check(item) {
  if ("message" in item) {
    return isMessage(item.message) ? { ok: true, why: "" } : { ok: false, why: "not a message" };
  }
  const { request, response } = item;
  if (!item.malformed && !isRequest(request)) {
    return { ok: false, why: "the request itself is not valid" };
  }
  if (!isResponse(response)) return { ok: false, why: "not a valid response" };
  if (response.kind !== request.kind) return { ok: false, why: "kind differs from the request's" };
  if (response.head.corrId !== request.head.corrId) return { ok: false, why: "corrId differs" };
  return { ok: true, why: "" };
}

const items = JSON.parse(readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(items.map(check)));
