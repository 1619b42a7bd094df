// `/upkeep/inspect`: the inspector, a page that shows this process's live state and keeps itself up to date from a
// stream of snapshots (inspect/snapshot.ts). Who may see it: whom `createUpkeep({ inspect: { authorize(request) } })`
// admits (use your own auth there), in any mode; without `authorize`, only in development and only from this
// machine (see allowed()).
import type { Upkeep } from "../upkeep.ts";
import type { InspectOptions } from "./options.ts";
import { snapshot } from "./snapshot.ts";

export type { InspectOptions } from "./options.ts";

export const INSPECT_PATH = "/upkeep/inspect";

/** True for an address of this machine's loopback interface (127.0.0.0/8, ::1, and IPv4-mapped 127.x). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4) || address === "::1" || address === "0:0:0:0:0:0:0:1";
}

/** True when a Host header names this machine: localhost (and *.localhost), a 127.x address or [::1]. */
export function isLoopbackHost(host: string | null): boolean {
  if (!host) return false;
  let name: string;
  try {
    name = new URL(`http://${host}`).hostname.toLowerCase();
  } catch {
    return false;
  }
  return name === "localhost" || name.endsWith(".localhost") || name === "[::1]" || isLoopbackAddress(name);
}

/**
 * Who may see the inspector. With `inspect.authorize`: whom it admits. Without: in development only, and only a
 * request whose connection comes from this machine — judged by the socket's remote address, which each adapter
 * passes (`remoteAddress`), never by a header such as X-Forwarded-For that any client can send — and whose Host
 * names this machine (a page of another site whose name was rebound to 127.0.0.1 sends its own name as Host). A
 * request without a socket (an in-process `app.fetch`, a runtime whose adapter passes no address) is refused.
 */
async function allowed(upkeep: Upkeep, request: Request, remoteAddress: string | undefined): Promise<boolean> {
  if (upkeep.inspect) {
    try {
      return await upkeep.inspect.authorize(request);
    } catch {
      return false;
    }
  }
  return (
    upkeep.mode === "development" && isLoopbackAddress(remoteAddress) && isLoopbackHost(request.headers.get("host"))
  );
}

export async function handleInspect(
  upkeep: Upkeep,
  request: Request,
  path: string,
  remoteAddress: string | undefined,
): Promise<Response | null> {
  if (path !== INSPECT_PATH && !path.startsWith(`${INSPECT_PATH}/`)) return null;
  if (!(await allowed(upkeep, request, remoteAddress)))
    return new Response(
      "The inspector is off here: without createUpkeep({ inspect: { authorize } }) it answers only in development, and only requests from this machine to localhost.",
      {
        status: 404,
        headers: { "content-type": "text/plain; charset=utf-8" },
      },
    );
  if (path === `${INSPECT_PATH}/snapshot`) {
    return new Response(JSON.stringify(await snapshot(upkeep)), {
      headers: { "content-type": "application/json", "cache-control": "no-store" },
    });
  }
  if (path === `${INSPECT_PATH}/stream`) {
    const encoder = new TextEncoder();
    let timer: NodeJS.Timeout | undefined;
    let last = "";
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const send = async () => {
          try {
            const body = JSON.stringify(await snapshot(upkeep));
            // Unchanged state sends nothing but a heartbeat (the timestamp alone changed).
            const state = body.replace(/"at":"[^"]*",/, "");
            controller.enqueue(encoder.encode(state === last ? ": idle\n\n" : `data: ${body}\n\n`));
            last = state;
          } catch {
            clearInterval(timer);
          }
        };
        void send();
        timer = setInterval(() => void send(), upkeep.inspect?.intervalMs ?? 1000);
      },
      cancel() {
        clearInterval(timer);
      },
    });
    return new Response(stream, {
      headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store" },
    });
  }
  if (path !== INSPECT_PATH) return new Response("not found", { status: 404 });
  return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } });
}

const PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Upkeep inspector</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2330;background:#fafbfc}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;background:#fff}
td,th{border:1px solid #e3e6ec;padding:.3rem .45rem;text-align:left;vertical-align:top}
code{font-size:.8rem;white-space:pre-wrap}.muted{color:#7a8294}#state{font-size:.85rem}
.kv span{display:inline-block;margin:0 1rem .3rem 0}.ok{color:#1f7a3d}.bad{color:#b3261e}
</style></head><body>
<h1>Upkeep inspector <span id="state" class="muted">connecting…</span></h1>
<div id="ledger" class="kv"></div>
<h2>Counters</h2><div id="stats" class="kv"></div>
<h2>Page groups</h2><table><thead><tr><th>page</th><th>subscribers</th><th>identity (inputs)</th><th>frames and their reads</th></tr></thead><tbody id="groups"></tbody></table>
<h2>Last facts</h2><table><thead><tr><th>offset</th><th>fact</th><th>reached</th><th>missed</th></tr></thead><tbody id="facts"></tbody></table>
<script type="module">
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const kv = (o) => Object.entries(o).map(([k, v]) => "<span><b>" + esc(k) + "</b> " + esc(typeof v === "object" ? JSON.stringify(v) : v) + "</span>").join("");
function render(s) {
  $("ledger").innerHTML = kv({ mode: s.mode, ledger: s.ledger.kind, incarnation: s.ledger.incarnation.slice(0, 12), head: s.ledger.head, horizon: s.ledger.horizon, ...(Object.keys(s.ledger.horizons).length ? { "table horizons": s.ledger.horizons } : {}), position: s.ledger.position, lag: s.ledger.lag });
  $("stats").innerHTML = kv(s.stats);
  $("groups").innerHTML = s.groups.map((g) => "<tr><td>" + esc(g.url) + " <span class=muted>" + esc(g.format) + (g.dirty ? " · dirty" : "") + " · @" + g.renderOffset + "</span></td><td>" + g.subscribers + "</td><td><code>" + esc(g.identity) + "</code> " + esc(g.inputs.join(", ") || "anonymous") + "</td><td>" +
    g.frames.map((f) => "<div><b>" + esc(f.kind + (f.id ? " #" + f.id : "")) + "</b>" + (f.partial ? " (" + esc(f.partial) + ")" : "") + (f.inputs.length ? " <span class=muted>inputs: " + esc(f.inputs.join(", ")) + "</span>" : "") + f.reads.map((r) => "<br><code>" + esc(r) + "</code>").join("") + "</div>").join("") + "</td></tr>").join("") || "<tr><td colspan=4 class=muted>no live pages</td></tr>";
  $("facts").innerHTML = s.facts.slice().reverse().map((f) => "<tr><td>" + f.offset + "</td><td>" + esc(f.op + " " + f.table) + " <span class=muted>" + esc(f.committedAt) + "</span></td><td class=ok>" + f.matched.map((m) => esc(m.url + " " + m.frame) + " <span class=muted>" + esc(m.why) + "</span>").join("<br>") + "</td><td class=muted>" + f.missed.map((m) => esc(m.url + " " + m.frame + ": " + m.reason)).join("<br>") + "</td></tr>").join("") || "<tr><td colspan=4 class=muted>no facts yet</td></tr>";
}
const source = new EventSource("${INSPECT_PATH}/stream");
source.onmessage = (e) => { $("state").textContent = "live"; render(JSON.parse(e.data)); };
source.onerror = () => { $("state").textContent = "reconnecting…"; };
</script></body></html>`;
