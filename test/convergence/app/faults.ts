// Faults the convergence app can be started with, so that a test can prove the oracle fails when a replay path is
// broken (test/convergence/fault.test.ts). They live in the harness's app only, never in the library.
//
// staleContextApp: replays of a Node listener over a private loopback server made on first use inside the calling
// replay's async context, with no header naming the replay — as Upkeep's node and Express adapters did before the
// server was made outside every request: every later replay runs in the first one's context and answers into it.
import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { FetchApp } from "../../../src/render/page.ts";

/** Faults the app's adapters understand (CONVERGENCE_FAULT), and the adapters that have each. */
export const FAULTS: Record<string, readonly string[]> = {
  "drop-replay-header": ["express", "node"],
  "stale-context": ["express", "node"],
};

export function staleContextApp(listener: (req: IncomingMessage, res: ServerResponse) => void): FetchApp {
  let base: Promise<string> | null = null;
  return {
    async fetch(incoming: Request): Promise<Response> {
      base ??= new Promise<string>((resolve) => {
        const server = createServer(listener);
        server.listen(0, "127.0.0.1", () => {
          server.unref();
          resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
        });
      });
      const url = new URL(incoming.url);
      const target = new URL(url.pathname + url.search, await base);
      const headers: Record<string, string> = { host: url.host };
      incoming.headers.forEach((value, name) => {
        headers[name] = value;
      });
      return new Promise<Response>((resolve, reject) => {
        const req = request(target, { method: incoming.method, headers, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const out = new Headers();
            for (const [name, value] of Object.entries(res.headers)) {
              for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) out.append(name, v);
            }
            resolve(
              new Response(new Uint8Array(Buffer.concat(chunks)), { status: res.statusCode ?? 500, headers: out }),
            );
          });
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end();
      });
    },
  };
}
