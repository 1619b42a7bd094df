// A Kysely driver that wraps another: connections are handed out wrapped (a subclass decides how) and unwrapped
// again for every call to the inner driver. The ledger's dialect wraps to wake followers after commits; the capture
// wraps to pair each query with its rows. Savepoints are offered only when the inner driver offers them, so Kysely
// refuses them rather than silently skipping them.
import type { DatabaseConnection, Driver, QueryCompiler, TransactionSettings } from "kysely";

type Compile = QueryCompiler["compileQuery"];

export abstract class WrappingDriver implements Driver {
  protected readonly inner: Driver;
  readonly #unwrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();
  savepoint?: (connection: DatabaseConnection, name: string, compile: Compile) => Promise<void>;
  rollbackToSavepoint?: (connection: DatabaseConnection, name: string, compile: Compile) => Promise<void>;
  releaseSavepoint?: (connection: DatabaseConnection, name: string, compile: Compile) => Promise<void>;

  constructor(inner: Driver) {
    this.inner = inner;
    const savepoint = inner.savepoint?.bind(inner);
    const rollbackTo = inner.rollbackToSavepoint?.bind(inner);
    const release = inner.releaseSavepoint?.bind(inner);
    if (savepoint) this.savepoint = (c, name, compile) => savepoint(this.unwrap(c), name, compile);
    if (rollbackTo) this.rollbackToSavepoint = (c, name, compile) => rollbackTo(this.unwrap(c), name, compile);
    if (release) this.releaseSavepoint = (c, name, compile) => release(this.unwrap(c), name, compile);
  }

  /** The connection handed to Kysely for an inner connection. */
  protected abstract wrap(connection: DatabaseConnection): DatabaseConnection;

  /** After a transaction of `connection` (as handed out) began, committed or ended either way. */
  protected began(_connection: DatabaseConnection): void {}
  protected committed(_connection: DatabaseConnection): void {}
  protected ended(_connection: DatabaseConnection): void {}

  protected unwrap(connection: DatabaseConnection): DatabaseConnection {
    return this.#unwrapped.get(connection) ?? connection;
  }

  init(): Promise<void> {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await this.inner.acquireConnection();
    const wrapped = this.wrap(connection);
    this.#unwrapped.set(wrapped, connection);
    return wrapped;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    await this.inner.beginTransaction(this.unwrap(connection), settings);
    this.began(connection);
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await this.inner.commitTransaction(this.unwrap(connection));
    } finally {
      this.ended(connection);
    }
    this.committed(connection);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await this.inner.rollbackTransaction(this.unwrap(connection));
    } finally {
      this.ended(connection);
    }
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    this.ended(connection);
    return this.inner.releaseConnection(this.unwrap(connection));
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}
