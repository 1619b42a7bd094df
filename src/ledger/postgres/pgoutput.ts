// A decoder for PostgreSQL's built-in `pgoutput` logical decoding plugin, protocol version 1 (PostgreSQL 10 and
// later; the message formats are documented in "Logical Replication Message Formats"). Column values arrive as
// their text output, exactly as the type's output function renders them; images.ts turns them into row images.
import type { Operation } from "../types.ts";
import { TRUNCATE_MESSAGE_PREFIX } from "./partitions.ts";

export interface RelationColumn {
  name: string;
  type: number;
}

/** A table as the decoded stream describes it (a Relation message), valid from that point of the stream on. */
export interface Relation {
  id: number;
  schema: string;
  name: string;
  columns: RelationColumn[];
}

/** A column's value: text, null, or undefined for an unchanged TOASTed value the message left out. */
export type TupleValue = string | null | undefined;

export interface Change {
  relation: Relation;
  op: Operation;
  /** The old row (REPLICA IDENTITY FULL: every column) or only its key ('K'), or null when not logged. */
  old: TupleValue[] | null;
  oldIsKeyOnly: boolean;
  new: TupleValue[] | null;
  /** Set when the message was larger than the image bound and only its head was read: its size in bytes. */
  oversized?: number;
}

/** What a transaction's Begin message says: it is committed (pgoutput sends only committed transactions). */
export interface TransactionHead {
  xid: number;
  /** The commit record's position. Every transaction committed before this one ends at or before it, and this one
   *  ends after it: a transaction was appended already iff this is below the ledger's `lsn` (consumer.ts). */
  commitLsn: bigint;
  commitTime: Date;
}

/** A decoded message that matters to the ledger, in stream order. */
export type Decoded =
  | { kind: "begin"; head: TransactionHead }
  | { kind: "change"; change: Change }
  /** `endLsn`: the commit record's end, the position a consumer confirms once the transaction's facts are durable. */
  | { kind: "commit"; endLsn: bigint };

/** Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01). */
const PG_EPOCH_US = 946_684_800_000_000n;

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function parseLsn(text: string): bigint {
  const [hi, lo] = text.split("/");
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

class Reader {
  offset = 0;
  readonly buffer: Buffer;
  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }
  byte(): number {
    return this.buffer.readUInt8(this.offset++);
  }
  int16(): number {
    const v = this.buffer.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  int32(): number {
    const v = this.buffer.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  uint32(): number {
    const v = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  int64(): bigint {
    const v = this.buffer.readBigInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  string(): string {
    const end = this.buffer.indexOf(0, this.offset);
    const s = this.buffer.toString("utf8", this.offset, end);
    this.offset = end + 1;
    return s;
  }
  tuple(): TupleValue[] {
    const count = this.int16();
    const values: TupleValue[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const kind = this.byte();
      if (kind === 0x6e /* n */) values[i] = null;
      else if (kind === 0x75 /* u */) values[i] = undefined;
      else if (kind === 0x74 /* t */) {
        const length = this.int32();
        values[i] = this.buffer.toString("utf8", this.offset, this.offset + length);
        this.offset += length;
      } else throw new Error(`pgoutput: unsupported tuple value kind ${String.fromCharCode(kind)}`);
    }
    return values;
  }
}

/**
 * Feeds on pgoutput messages in stream order and returns what each says: a transaction's Begin, each of its changes
 * as it arrives, its Commit. Nothing is held between messages except the tables' definitions, so a transaction of
 * any size passes through in constant memory (the consumer decides how much it holds). Relation messages precede
 * the first change of a table in every decoding session and after its definition changes, so each change is
 * decoded against the table's definition at that point of the stream.
 */
export class PgoutputDecoder {
  readonly relations = new Map<number, Relation>();
  #open = false;

  /** True between a transaction's Begin and its Commit. */
  get open(): boolean {
    return this.#open;
  }

  /**
   * `size` is the message's full size when `data` is only its head (the consumer does not fetch messages larger
   * than the image bound): an Insert, Update or Delete is then returned without its rows.
   */
  push(data: Buffer, size = data.length): Decoded[] {
    const r = new Reader(data);
    const tag = r.byte();
    if (size > data.length) {
      const op = tag === 0x49 ? "insert" : tag === 0x55 ? "update" : tag === 0x44 ? "delete" : undefined;
      if (!op) throw new Error(`pgoutput: a message of ${size} bytes (${String.fromCharCode(tag)}) was not read`);
      const relation = this.#relation(r.uint32());
      return [this.#change({ relation, op, old: null, oldIsKeyOnly: false, new: null, oversized: size })];
    }
    switch (tag) {
      case 0x42 /* B */:
        {
          const commitLsn = r.int64();
          const us = r.int64();
          this.#open = true;
          return [
            {
              kind: "begin",
              head: { xid: r.uint32(), commitLsn: BigInt.asUintN(64, commitLsn), commitTime: pgTime(us) },
            },
          ];
        }
      case 0x43 /* C */:
        {
          r.byte();
          r.int64(); // commit LSN (the Begin message had it)
          if (!this.#open) throw new Error("pgoutput: Commit without Begin");
          this.#open = false;
          return [{ kind: "commit", endLsn: BigInt.asUintN(64, r.int64()) }];
        }
      case 0x52 /* R */:
        {
          const id = r.uint32();
          const schema = r.string();
          const name = r.string();
          r.byte(); // replica identity
          const count = r.int16();
          const columns: RelationColumn[] = [];
          for (let i = 0; i < count; i++) {
            r.byte(); // flags (part of the key)
            const column = r.string();
            columns.push({ name: column, type: r.uint32() });
            r.int32(); // typmod
          }
          this.relations.set(id, { id, schema, name, columns });
          return [];
        }
      case 0x49 /* I */:
        {
          const relation = this.#relation(r.uint32());
          r.byte(); // 'N'
          return [this.#change({ relation, op: "insert", old: null, oldIsKeyOnly: false, new: r.tuple() })];
        }
      case 0x55 /* U */:
        {
          const relation = this.#relation(r.uint32());
          let kind = r.byte();
          let old: TupleValue[] | null = null;
          let oldIsKeyOnly = false;
          if (kind === 0x4b /* K */ || kind === 0x4f /* O */) {
            oldIsKeyOnly = kind === 0x4b;
            old = r.tuple();
            kind = r.byte(); // 'N'
          }
          return [this.#change({ relation, op: "update", old, oldIsKeyOnly, new: r.tuple() })];
        }
      case 0x44 /* D */:
        {
          const relation = this.#relation(r.uint32());
          const kind = r.byte();
          return [this.#change({ relation, op: "delete", old: r.tuple(), oldIsKeyOnly: kind === 0x4b, new: null })];
        }
      case 0x54 /* T */:
        {
          const count = r.int32();
          r.byte(); // options (CASCADE, RESTART IDENTITY)
          const out: Decoded[] = [];
          for (let i = 0; i < count; i++) {
            const relation = this.#relation(r.uint32());
            out.push(this.#change({ relation, op: "truncate", old: null, oldIsKeyOnly: false, new: null }));
          }
          return out;
        }
      case 0x4d /* M */:
        {
          // A logical decoding message: Upkeep's triggers say a partition was truncated (partitions.ts).
          const transactional = (r.byte() & 1) === 1;
          r.int64(); // its LSN
          const prefix = r.string();
          const length = r.int32();
          if (!transactional || prefix !== TRUNCATE_MESSAGE_PREFIX) return [];
          const named = JSON.parse(data.toString("utf8", r.offset, r.offset + length)) as {
            schema: string;
            table: string;
          };
          const relation: Relation = { id: 0, schema: named.schema, name: named.table, columns: [] };
          return [this.#change({ relation, op: "truncate", old: null, oldIsKeyOnly: false, new: null })];
        }
      default:
        // Origin ('O') and Type ('Y') carry nothing a fact needs.
        return [];
    }
  }

  #relation(id: number): Relation {
    const relation = this.relations.get(id);
    if (!relation) throw new Error(`pgoutput: a change of relation ${id} before its Relation message`);
    return relation;
  }

  #change(change: Change): Decoded {
    if (!this.#open) throw new Error("pgoutput: a change outside a transaction");
    return { kind: "change", change };
  }
}

function pgTime(us: bigint): Date {
  return new Date(Number((us + PG_EPOCH_US) / 1000n));
}
