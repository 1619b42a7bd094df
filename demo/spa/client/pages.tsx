/** @jsxImportSource react */
// The SPA demo's pages. Writes are ordinary Inertia form posts; what keeps every open browser current is live() in
// main.tsx: the server pushes each changed column (or a patch of it) into the page's props.
import { Link, router } from "@inertiajs/react";
import { type FormEvent, useState } from "react";

/** Where the server mounts the SPA (demo/spa/app.ts), set by the build. */
declare const __SPA_PREFIX__: string;
const SPA_PREFIX = __SPA_PREFIX__;

type Status = "todo" | "doing" | "done";
interface Card {
  id: number;
  title: string;
  status: Status;
  position: number;
  board_id: number;
}
const LABELS: Record<Status, string> = { todo: "To do", doing: "Doing", done: "Done" };
const STATUSES: Status[] = ["todo", "doing", "done"];

function Greeting({ viewer }: { viewer: string | null }) {
  const [name, setName] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    router.post(`${SPA_PREFIX}/viewer`, { name });
  };
  return (
    <form className="viewer" onSubmit={submit}>
      <span id="greeting">Signed in as {viewer ?? "guest"}</span>{" "}
      <input aria-label="Your name" value={name} onChange={(e) => setName(e.target.value)} placeholder="name" />
      <button type="submit">Sign in</button>
    </form>
  );
}

export function Boards({
  boards,
  viewer,
}: {
  boards: { id: number; name: string; cards: number }[];
  viewer: string | null;
}) {
  return (
    <main>
      <Greeting viewer={viewer} />
      <h1>Boards</h1>
      <ul id="boards">
        {boards.map((board) => (
          <li key={board.id}>
            <Link href={`${SPA_PREFIX}/boards/${board.id}`}>{board.name}</Link>{" "}
            <span className="count">{board.cards}</span>
          </li>
        ))}
      </ul>
    </main>
  );
}

function CardItem({ card }: { card: Card }) {
  const post = (path: string, data: Record<string, string> = {}) =>
    router.post(`${SPA_PREFIX}/cards/${card.id}/${path}`, data, { preserveScroll: true });
  return (
    <li id={`card_${card.id}`} className="card">
      <span className="title">{card.title}</span>
      <span className="actions">
        {STATUSES.filter((s) => s !== card.status).map((status) => (
          <button key={status} type="button" onClick={() => post("move", { status })}>
            → {LABELS[status]}
          </button>
        ))}
        <button
          type="button"
          onClick={() => {
            const title = prompt("New title", card.title);
            if (title) post("rename", { title });
          }}
        >
          Rename
        </button>
        <button type="button" onClick={() => post("delete")}>
          Delete
        </button>
      </span>
    </li>
  );
}

function Column({ board, status, cards }: { board: number; status: Status; cards: Card[] }) {
  const [title, setTitle] = useState("");
  const add = (e: FormEvent) => {
    e.preventDefault();
    if (!title) return;
    router.post(`${SPA_PREFIX}/boards/${board}/cards`, { title, status }, { preserveScroll: true });
    setTitle("");
  };
  return (
    <section className="column" id={`column_${status}`}>
      <h2>
        {LABELS[status]} <span className="count">{cards.length}</span>
      </h2>
      <ul className="cards" id={`cards_${status}`}>
        {cards.map((card) => (
          <CardItem key={card.id} card={card} />
        ))}
      </ul>
      <form onSubmit={add}>
        <input aria-label={`New card in ${LABELS[status]}`} value={title} onChange={(e) => setTitle(e.target.value)} />
        <button type="submit">Add</button>
      </form>
    </section>
  );
}

export function Board(props: {
  board: { id: number; name: string } | null;
  boards: { id: number; name: string }[];
  todo: Card[];
  doing: Card[];
  done: Card[];
  viewer: string | null;
}) {
  const { board, boards, viewer } = props;
  if (!board) return <p>No such board.</p>;
  return (
    <main>
      <Greeting viewer={viewer} />
      <nav>
        <Link href={SPA_PREFIX}>All boards</Link>
        {boards.map((b) => (
          <span key={b.id}>
            {" · "}
            <Link href={`${SPA_PREFIX}/boards/${b.id}`}>{b.name}</Link>
          </span>
        ))}
      </nav>
      <h1 id="board-name">{board.name}</h1>
      <div className="columns">
        {STATUSES.map((status) => (
          <Column key={status} board={board.id} status={status} cards={props[status]} />
        ))}
      </div>
    </main>
  );
}
