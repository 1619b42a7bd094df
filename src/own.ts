// Upkeep's own database handles: the connections, pools and SQLite databases the ledger and Upkeep's Kysely open.
// The capture at the driver (capture/drivers/) patches the driver module the app uses, which is usually the module
// Upkeep uses too; it passes every statement of a handle marked here straight through: Upkeep's bookkeeping is no
// read of a page and no write to wake for. Below the pipeline folders, like statements.ts.

const own = new WeakSet<object>();

/** Marks a connection, client or database as Upkeep's own. Returns it. */
export function markOwn<T extends object>(handle: T): T {
  own.add(handle);
  return handle;
}

export function isOwn(handle: object): boolean {
  return own.has(handle);
}

/** Marks every client a `pg` pool connects as Upkeep's own. Returns the pool. */
export function ownPool<T extends { on(event: "connect", listener: (client: object) => void): unknown }>(pool: T): T {
  pool.on("connect", (client) => own.add(client));
  return pool;
}
