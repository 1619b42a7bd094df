// The writes of a convergence sequence, described as data (so a failure can print them) and made three ways: through
// the app's captured Kysely (its POST route), as SQL text for another connection or a database shell, each meaning
// the same change on both dialects. Some forms exist on one dialect only: SQLite's REPLACE INTO and a table-wide
// `delete`, PostgreSQL's MERGE and TRUNCATE; the other dialect runs its nearest equivalent.
import { type Kysely, sql, type Transaction } from "kysely";
import type { Dialect } from "./kit.ts";
import type { Database, Status } from "./schema.ts";

export type Op =
  | {
      kind: "insertTicket";
      queue: number;
      title: string;
      status: Status;
      priority: number;
      assignee: number | null;
    }
  | { kind: "retitle"; id: number; title: string }
  | { kind: "reprioritize"; id: number; priority: number }
  | { kind: "setStatus"; id: number; status: Status }
  | { kind: "reassign"; id: number; assignee: number | null }
  | { kind: "moveQueue"; id: number; queue: number }
  | { kind: "touch"; id: number }
  | { kind: "deleteTicket"; id: number }
  | { kind: "renamePerson"; id: number; name: string }
  | { kind: "renameQueue"; id: number; name: string }
  | { kind: "bulkPriority"; queue: number; by: number }
  | { kind: "bulkStatus"; queue: number; from: Status; to: Status }
  | { kind: "bulkDelete"; queue: number; status: Status }
  /** INSERT … ON CONFLICT (id) DO UPDATE: a new ticket, or every column of an existing one. */
  | {
      kind: "upsertTicket";
      id: number;
      queue: number;
      title: string;
      status: Status;
      priority: number;
      assignee: number | null;
    }
  /** SQLite: REPLACE INTO (a conflicting row is deleted, then the new one inserted); PostgreSQL: MERGE. */
  | {
      kind: "replaceTicket";
      id: number;
      queue: number;
      title: string;
      status: Status;
      priority: number;
      assignee: number | null;
    }
  | { kind: "tag"; ticket: number; tag: string; color: string }
  | { kind: "replaceTag"; ticket: number; tag: string; color: string }
  | { kind: "untag"; ticket: number; tag: string }
  | { kind: "addNote"; owner: string; ticket: number; body: string }
  | { kind: "editNote"; id: number; body: string }
  | { kind: "deleteNote"; id: number }
  /** PostgreSQL: TRUNCATE; SQLite: DELETE FROM without a WHERE (SQLite's own truncate optimisation). */
  | { kind: "truncate"; table: "tags" | "notes" | "tickets" };

export function literal(value: string | number | null): string {
  if (value === null) return "null";
  if (typeof value === "number") return String(Math.trunc(value));
  return `'${value.replace(/'/g, "''")}'`;
}

const ticketColumns = "id, queue_id, title, status, priority, assignee_id";

function ticketValues(op: Extract<Op, { kind: "upsertTicket" | "replaceTicket" }>): string {
  return [op.id, op.queue, op.title, op.status, op.priority, op.assignee].map(literal).join(", ");
}

/** The op as one SQL statement (literals inlined), for another connection or a database shell. */
export function opSql(dialect: Dialect, op: Op): string {
  const l = literal;
  switch (op.kind) {
    case "insertTicket":
      return `insert into tickets (queue_id, title, status, priority, assignee_id) values (${l(op.queue)}, ${l(op.title)}, ${l(op.status)}, ${l(op.priority)}, ${l(op.assignee)})`;
    case "retitle":
      return `update tickets set title = ${l(op.title)} where id = ${l(op.id)}`;
    case "reprioritize":
      return `update tickets set priority = ${l(op.priority)} where id = ${l(op.id)}`;
    case "setStatus":
      return `update tickets set status = ${l(op.status)} where id = ${l(op.id)}`;
    case "reassign":
      return `update tickets set assignee_id = ${l(op.assignee)} where id = ${l(op.id)}`;
    case "moveQueue":
      return `update tickets set queue_id = ${l(op.queue)} where id = ${l(op.id)}`;
    case "touch":
      return `update tickets set title = title where id = ${l(op.id)}`;
    case "deleteTicket":
      return `delete from tickets where id = ${l(op.id)}`;
    case "renamePerson":
      return `update people set name = ${l(op.name)} where id = ${l(op.id)}`;
    case "renameQueue":
      return `update queues set name = ${l(op.name)} where id = ${l(op.id)}`;
    case "bulkPriority":
      return `update tickets set priority = priority + ${l(op.by)} where queue_id = ${l(op.queue)}`;
    case "bulkStatus":
      return `update tickets set status = ${l(op.to)} where queue_id = ${l(op.queue)} and status = ${l(op.from)}`;
    case "bulkDelete":
      return `delete from tickets where queue_id = ${l(op.queue)} and status = ${l(op.status)}`;
    case "upsertTicket":
      return `insert into tickets (${ticketColumns}) values (${ticketValues(op)}) on conflict (id) do update set queue_id = excluded.queue_id, title = excluded.title, status = excluded.status, priority = excluded.priority, assignee_id = excluded.assignee_id`;
    case "replaceTicket":
      if (dialect === "sqlite") return `replace into tickets (${ticketColumns}) values (${ticketValues(op)})`;
      return `merge into tickets t using (values (${l(op.id)}::integer, ${l(op.queue)}::integer, ${l(op.title)}::text, ${l(op.status)}::text, ${l(op.priority)}::integer, ${l(op.assignee)}::integer)) as s (id, queue_id, title, status, priority, assignee_id) on t.id = s.id when matched then update set queue_id = s.queue_id, title = s.title, status = s.status, priority = s.priority, assignee_id = s.assignee_id when not matched then insert (${ticketColumns}) overriding system value values (s.id, s.queue_id, s.title, s.status, s.priority, s.assignee_id)`;
    case "tag":
      return `insert into tags (ticket_id, tag, color) values (${l(op.ticket)}, ${l(op.tag)}, ${l(op.color)}) on conflict (ticket_id, tag) do update set color = excluded.color`;
    case "replaceTag":
      if (dialect === "sqlite")
        return `replace into tags (ticket_id, tag, color) values (${l(op.ticket)}, ${l(op.tag)}, ${l(op.color)})`;
      return `merge into tags t using (values (${l(op.ticket)}::integer, ${l(op.tag)}::text, ${l(op.color)}::text)) as s (ticket_id, tag, color) on t.ticket_id = s.ticket_id and t.tag = s.tag when matched then update set color = s.color when not matched then insert (ticket_id, tag, color) values (s.ticket_id, s.tag, s.color)`;
    case "untag":
      return `delete from tags where ticket_id = ${l(op.ticket)} and tag = ${l(op.tag)}`;
    case "addNote":
      return `insert into notes (owner, ticket_id, body) values (${l(op.owner)}, ${l(op.ticket)}, ${l(op.body)})`;
    case "editNote":
      return `update notes set body = ${l(op.body)} where id = ${l(op.id)}`;
    case "deleteNote":
      return `delete from notes where id = ${l(op.id)}`;
    case "truncate":
      return dialect === "postgres" ? `truncate table ${op.table}` : `delete from ${op.table}`;
  }
}

type Db = Kysely<Database> | Transaction<Database>;

/** The op through the app's captured Kysely (what its POST route runs). */
export async function runKysely(db: Db, dialect: Dialect, op: Op): Promise<void> {
  switch (op.kind) {
    case "insertTicket":
      await db
        .insertInto("tickets")
        .values({
          queue_id: op.queue,
          title: op.title,
          status: op.status,
          priority: op.priority,
          assignee_id: op.assignee,
        } as never)
        .execute();
      return;
    case "retitle":
      await db.updateTable("tickets").set({ title: op.title }).where("id", "=", op.id).execute();
      return;
    case "reprioritize":
      await db.updateTable("tickets").set({ priority: op.priority }).where("id", "=", op.id).execute();
      return;
    case "setStatus":
      await db.updateTable("tickets").set({ status: op.status }).where("id", "=", op.id).execute();
      return;
    case "reassign":
      await db.updateTable("tickets").set({ assignee_id: op.assignee }).where("id", "=", op.id).execute();
      return;
    case "moveQueue":
      await db.updateTable("tickets").set({ queue_id: op.queue }).where("id", "=", op.id).execute();
      return;
    case "touch":
      await db
        .updateTable("tickets")
        .set((eb) => ({ title: eb.ref("title") }))
        .where("id", "=", op.id)
        .execute();
      return;
    case "deleteTicket":
      await db.deleteFrom("tickets").where("id", "=", op.id).execute();
      return;
    case "renamePerson":
      await db.updateTable("people").set({ name: op.name }).where("id", "=", op.id).execute();
      return;
    case "renameQueue":
      await db.updateTable("queues").set({ name: op.name }).where("id", "=", op.id).execute();
      return;
    case "bulkPriority":
      await db
        .updateTable("tickets")
        .set((eb) => ({ priority: eb("priority", "+", op.by) }))
        .where("queue_id", "=", op.queue)
        .execute();
      return;
    case "bulkStatus":
      await db
        .updateTable("tickets")
        .set({ status: op.to })
        .where("queue_id", "=", op.queue)
        .where("status", "=", op.from)
        .execute();
      return;
    case "bulkDelete":
      await db.deleteFrom("tickets").where("queue_id", "=", op.queue).where("status", "=", op.status).execute();
      return;
    case "upsertTicket": {
      const row = {
        id: op.id,
        queue_id: op.queue,
        title: op.title,
        status: op.status,
        priority: op.priority,
        assignee_id: op.assignee,
      };
      await db
        .insertInto("tickets")
        .values(row)
        .onConflict((oc) =>
          oc.column("id").doUpdateSet((eb) => ({
            queue_id: eb.ref("excluded.queue_id"),
            title: eb.ref("excluded.title"),
            status: eb.ref("excluded.status"),
            priority: eb.ref("excluded.priority"),
            assignee_id: eb.ref("excluded.assignee_id"),
          })),
        )
        .execute();
      return;
    }
    case "replaceTicket":
    case "replaceTag":
    case "truncate":
      // Forms Kysely has no portable builder for: the same statement as the shell's, through the app's connection.
      await sql.raw(opSql(dialect, op)).execute(db);
      return;
    case "tag":
      await db
        .insertInto("tags")
        .values({ ticket_id: op.ticket, tag: op.tag, color: op.color })
        .onConflict((oc) => oc.columns(["ticket_id", "tag"]).doUpdateSet((eb) => ({ color: eb.ref("excluded.color") })))
        .execute();
      return;
    case "untag":
      await db.deleteFrom("tags").where("ticket_id", "=", op.ticket).where("tag", "=", op.tag).execute();
      return;
    case "addNote":
      await db
        .insertInto("notes")
        .values({ owner: op.owner, ticket_id: op.ticket, body: op.body } as never)
        .execute();
      return;
    case "editNote":
      await db.updateTable("notes").set({ body: op.body }).where("id", "=", op.id).execute();
      return;
    case "deleteNote":
      await db.deleteFrom("notes").where("id", "=", op.id).execute();
      return;
  }
}
