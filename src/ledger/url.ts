// Which database a URL names. `postgres://` / `postgresql://` is PostgreSQL; `file:` paths, `sqlite:` paths, plain
// paths and `:memory:` are SQLite (node:sqlite).
import { ConfigError } from "../errors.ts";

export type ParsedDatabase = { kind: "sqlite"; path: string } | { kind: "postgres"; url: string };

export function parseDatabaseUrl(url: string): ParsedDatabase {
  if (typeof url !== "string" || url.trim() === "") {
    throw new ConfigError(
      "No database given.",
      "pass --database <url> (or set DATABASE_URL): file:./data/app.sqlite or postgres://user@host/db",
    );
  }
  const value = url.trim();
  if (/^postgres(ql)?:\/\//i.test(value)) return { kind: "postgres", url: value };
  if (value === ":memory:") return { kind: "sqlite", path: value };
  const file = /^(file|sqlite):(.*)$/i.exec(value);
  if (file) {
    let path = file[2] as string;
    // file:///abs/path and file://localhost/abs/path are URLs; file:relative and file:/abs are plain paths.
    if (path.startsWith("//")) path = path.replace(/^\/\/(localhost)?/, "");
    path = path.split("?")[0] as string;
    if (path === "") throw new ConfigError(`The database URL ${url} names no file.`, "use file:./data/app.sqlite");
    return { kind: "sqlite", path: decodeURIComponent(path) };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new ConfigError(
      `Unsupported database URL ${url}.`,
      "use file:<path> (or a plain path) for SQLite, or postgres://… for PostgreSQL",
    );
  }
  return { kind: "sqlite", path: value };
}
