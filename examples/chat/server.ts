// `npm run example:chat`: the Express chat on embedded SQLite (./data/chat.sqlite), or DATABASE_URL=postgres://….
// Open http://127.0.0.1:3001 in two browsers, sign in as two people, and write.
import { createServer } from "node:http";
import { DatabaseSync } from "node:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import pg from "pg";
import { createUpkeep } from "../../src/index.ts";
import { CHAT_SCHEMA, createChatApp } from "./app.ts";

const database = process.env.DATABASE_URL ?? "file:./data/chat.sqlite";
const port = Number(process.env.PORT ?? 3001);
const hostname = process.env.HOST ?? "127.0.0.1";

export async function prepareChatDatabase(url: string): Promise<void> {
  const seed = "insert into rooms (name) select 'General' where not exists (select 1 from rooms); insert into rooms (name) select 'Random' where (select count(*) from rooms) = 1;";
  if (url.startsWith("postgres")) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(CHAT_SCHEMA.postgres);
    await client.query(seed);
    await client.end();
    return;
  }
  const path = url.replace(/^file:/, "");
  mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  db.exec(CHAT_SCHEMA.sqlite);
  db.exec(seed);
  db.close();
}

if (import.meta.main) {
  await prepareChatDatabase(database);
  const upkeep = await createUpkeep({
    database,
    secret: process.env.UPKEEP_SECRET ?? "upkeep-chat-development-secret-not-for-production",
    install: true,
  });
  const app = createChatApp(upkeep);
  const server = createServer(app);
  upkeep.attach(server, app);
  server.listen(port, hostname, () => console.log(`Upkeep chat (Express) listening on http://${hostname}:${port}`));
}
