/** @jsxImportSource react */
import { Link } from "@inertiajs/react";
import type { BoardProps, OtherProps } from "../types.ts";

export function Board({ board, cards, mine, viewer, stats }: BoardProps) {
  return (
    <main>
      <h1 id="board-name">{board.name}</h1>
      <ul id="cards">
        {cards.map((card) => (
          <li key={card.id} data-id={card.id}>
            {card.title}
          </li>
        ))}
      </ul>
      <p id="viewer">{viewer ?? "anonymous"}</p>
      <ul id="mine">
        {mine.map((note) => (
          <li key={note.id}>{note.body}</li>
        ))}
      </ul>
      <p id="stats">{stats === undefined ? "…" : `${stats.cards} cards`}</p>
      <Link id="to-other" href="/react/other">
        Other page
      </Link>
    </main>
  );
}

export function Other({ count }: OtherProps) {
  return (
    <main>
      <p id="count">{count}</p>
      <Link id="to-board" href="/react/boards/1">
        Board
      </Link>
    </main>
  );
}
